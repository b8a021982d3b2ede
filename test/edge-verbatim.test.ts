import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Routes whose chain neither reads nor reshapes the body send the upstream's JSON bytes as they came
 * (gateway/pipeline/dispatch.ts), but only when the bytes cannot hold an upstream address in any
 * spelling: every escaped, upper-cased or always-rewritten case still goes through the rewrite and
 * never reaches the client.
 */
describe('verbatim JSON passthrough on routes without response policies', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let self = '';
  const bodies: Record<string, Buffer | string> = {};

  before(async () => {
    up = await startUpstream((req, res) => {
      // `sliced/NAME`: the same body written a few bytes at a time, so it reaches the gateway in many chunks.
      const [, sliced, name] = /^\/fhir\/(sliced\/)?(.*)$/.exec(req.url ?? '') ?? [];
      const body = bodies[name];
      if (body === undefined) return void res.writeHead(404).end();
      res.setHeader('content-type', 'application/fhir+json');
      res.setHeader('etag', 'W/"7"');
      if (!sliced) return void res.end(body);
      const bytes = Buffer.from(body);
      res.setHeader('content-length', bytes.length);
      void (async () => {
        for (let i = 0; i < bytes.length; i += 7) {
          res.write(bytes.subarray(i, i + 7));
          await sleep(1);
        }
        res.end();
      })();
    });
    // `localhost` names the upstream by a host with letters (the case-folding scan); 127.0.0.1 by digits.
    self = `${up.url.replace('127.0.0.1', 'localhost')}/fhir`;
    const port = new URL(up.url).port;
    Object.assign(bodies, {
      plain: '{\n  "resourceType": "Patient",\n  "id": "p1",\n  "identifier": [{ "system": "http://hl7.org/fhir/sid/us-ssn", "value": "1.50" }]\n}',
      escapedSlashes: JSON.stringify({ resourceType: 'Patient', id: 'p2', text: 'x' }).replace('"x"', `"see http:\\/\\/localhost:${port}\\/fhir\\/Patient\\/p2"`),
      unicodeEscape: JSON.stringify({ resourceType: 'Patient', id: 'p3', text: 'x' }).replace('"x"', `"see http://\\u006cocalhost:${port}/fhir/Patient/p3"`),
      upperCase: JSON.stringify({ resourceType: 'Patient', id: 'p4', text: `see HTTP://LOCALHOST:${port}/fhir/Patient/p4` }),
      ipHost: JSON.stringify({ resourceType: 'Patient', id: 'p5', text: `see ${up.url}/fhir/Patient/p5` }),
      foreignFullUrl: JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry: [{ fullUrl: 'http://elsewhere.example/fhir/Patient/x', resource: { resourceType: 'Patient', id: 'x' } }] }),
      malformed: '{"resourceType": "Patient", "id": ',
      badUtf8: Buffer.concat([Buffer.from('{"resourceType":"Patient","id":"p6","text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
      // Two spaces the re-serialisation drops, one invalid byte it turns into three (U+FFFD): the same length.
      sameLengthBadUtf8: Buffer.concat([Buffer.from('{"resourceType":"Patient","id":"p7",  "text":"'), Buffer.from([0xff]), Buffer.from('"}')]),
      multibyte: `{ "resourceType": "Bundle", "type": "searchset", "entry": [{ "fullUrl": "${self}/Patient/p8", "resource": { "resourceType": "Patient", "id": "p8", "name": [{ "family": "Ñúñez-日本", "given": ["Zoë 🩺"] }] } }] }`,
    });
    gw = await startGateway(`version: 1
upstreams:
  ehr: { url: "${self}" }
  ehr-ip: { url: "${up.url}/fhir" }
routes:
  - { id: read, layer: system, match: { methods: [GET], path: "/api/:name" }, target: { upstream: ehr, path: "/:name" } }
  - { id: read-sliced, layer: system, match: { methods: [GET], path: "/api/sliced/:name" }, target: { upstream: ehr, path: "/sliced/:name" } }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const get = async (name: string) => {
    const res = await fetch(`${gw.url}/api/${name}`);
    return { res, text: await res.text() };
  };

  test('a body naming no upstream: the upstream bytes, Content-Length and ETag as sent', async () => {
    const { res, text } = await get('plain');
    assert.equal(res.status, 200);
    assert.equal(text, bodies.plain, 'whitespace kept: the bytes were not re-serialised');
    assert.equal(res.headers.get('content-length'), String(Buffer.byteLength(String(bodies.plain))));
    assert.equal(res.headers.get('etag'), 'W/"7"', 'unchanged bytes keep the upstream validator');
  });

  for (const name of ['escapedSlashes', 'unicodeEscape', 'upperCase', 'ipHost']) {
    test(`an upstream address spelled ${name} is still rewritten, never passed through`, async () => {
      const { res, text } = await get(name);
      assert.equal(res.status, 200);
      const parsed = JSON.parse(text) as { text: string };
      assert.ok(!parsed.text.toLowerCase().includes(new URL(up.url).port), `upstream address leaked: ${parsed.text}`);
      assert.match(parsed.text, /^see \[removed\]$/);
      assert.notEqual(res.headers.get('etag'), 'W/"7"', 'a changed body gets its own validator');
    });
  }

  test('fullUrl is rewritten whatever it names: a foreign one is removed as before', async () => {
    const { text } = await get('foreignFullUrl');
    assert.deepEqual(JSON.parse(text), { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: { resourceType: 'Patient', id: 'x' } }] });
  });

  test('malformed upstream JSON is still refused (502), not passed through', async () => {
    const { res, text } = await get('malformed');
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.ok(!text.includes('"id": '));
  });

  test('invalid UTF-8 is re-serialised as valid UTF-8, as before', async () => {
    const { res } = await get('badUtf8');
    const bytes = Buffer.from(await (await fetch(`${gw.url}/api/badUtf8`)).arrayBuffer());
    assert.equal(res.status, 200);
    assert.ok(!bytes.includes(Buffer.from([0xff, 0xfe])), 'no invalid bytes forwarded');
    assert.equal((JSON.parse(bytes.toString('utf8')) as { text: string }).text, '\ufffd\ufffd');
  });

  /** The weak validator the gateway gives a body it changed: of the bytes actually sent. */
  const weakTagOf = (bytes: Buffer) => `W/"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
  const bytesOf = async (path: string) => {
    const res = await fetch(`${gw.url}/api/${path}`);
    return { res, bytes: Buffer.from(await res.arrayBuffer()) };
  };

  test('a changed body of the same length as the upstream\'s invalid UTF-8 is still the re-encoded one', async () => {
    assert.equal(Buffer.byteLength(JSON.stringify(JSON.parse(Buffer.from(bodies.sameLengthBadUtf8).toString('utf8')))), Buffer.from(bodies.sameLengthBadUtf8).length, 'the case this test is about');
    const { res, bytes } = await bytesOf('sameLengthBadUtf8');
    assert.equal(res.status, 200);
    assert.ok(isUtf8(bytes), 'no invalid bytes forwarded');
    assert.deepEqual(bytes, Buffer.from('{"resourceType":"Patient","id":"p7","text":"\ufffd"}'));
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.equal(res.headers.get('etag'), weakTagOf(bytes), 'the validator of the bytes sent, not the upstream\'s');
  });

  test('a re-serialised body with multi-byte characters: Content-Length and ETag count its UTF-8 bytes', async () => {
    const { res, bytes } = await bytesOf('multibyte');
    assert.equal(res.status, 200);
    const parsed = JSON.parse(bytes.toString('utf8')) as { entry: { fullUrl?: string; resource: { name: { family: string; given: string[] }[] } }[] };
    assert.equal(parsed.entry[0].resource.name[0].family, 'Ñúñez-日本');
    assert.equal(parsed.entry[0].resource.name[0].given[0], 'Zoë 🩺');
    assert.ok(!bytes.toString('utf8').includes(self), 'the upstream address was rewritten');
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.ok(bytes.length > bytes.toString('utf8').length, 'the body holds multi-byte characters');
    assert.equal(res.headers.get('etag'), weakTagOf(bytes));
  });

  for (const name of ['multibyte', 'plain', 'badUtf8', 'ipHost', 'malformed']) {
    test(`a body that arrives in many small chunks (${name}) is answered exactly as one that arrives whole`, async () => {
      const whole = await bytesOf(name);
      const sliced = await bytesOf(`sliced/${name}`);
      assert.equal(sliced.res.status, whole.res.status);
      assert.equal(sliced.res.headers.get('content-type'), whole.res.headers.get('content-type'));
      // A refusal names its own request id; an answer is the same bytes.
      if (whole.res.status !== 200) return assert.equal(whole.res.status, 502);
      assert.deepEqual(sliced.bytes, whole.bytes);
      assert.equal(sliced.res.headers.get('content-length'), whole.res.headers.get('content-length'));
      assert.equal(sliced.res.headers.get('etag'), whole.res.headers.get('etag'));
    });
  }
});
