import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { problem, rawRequest, rawSocket, startGateway, startUpstream, type RawExchange, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Hostile HTTP framing: request smuggling, duplicate headers, oversized heads, slow clients. Each answer
 * must be a 4xx problem document, the upstream must never see a request the client smuggled, and a slow
 * client must be cut within a bound.
 */

const CLOSE = 'Connection: close\r\n';
/** A complete request that a smuggling attempt tries to hide inside the first one's body. */
const SMUGGLED = 'GET /system/ehr/Patient/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n';

function assertProblem(r: RawExchange, status: number) {
  assert.equal(r.status, status, r.text.slice(0, 200));
  assert.match(r.text, /\r\nContent-Type: application\/problem\+json/i);
  const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)) as { status: number; type: string };
  assert.equal(body.status, status);
  assert.match(body.type, /^https:\/\/hcgw\.dev\/problems\//);
}

describe('hostile HTTP framing', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`
version: 1
server: { requestTimeoutMs: 1000, headersTimeoutMs: 1000 }
upstreams:
  ehr: { url: ${up.url}/fhir }
routes:
  - id: observations
    layer: system
    match: { methods: [GET, POST], path: /system/ehr/Observation }
    target: { upstream: ehr, path: /Observation }
  - id: patient
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    target: { upstream: ehr, path: /Patient/:id }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('pipelined requests reach the upstream one by one (the counter the smuggling tests rely on)', async () => {
    const before = up.requests.length;
    const r = await rawSocket(gw.url, [
      'POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
      `GET /system/ehr/Patient/second HTTP/1.1\r\nHost: gw\r\n${CLOSE}\r\n`,
    ]);
    assert.equal(r.status, 200);
    assert.deepEqual(up.requests.slice(before).map((q) => `${q.method} ${q.url}`).sort(), ['GET /fhir/Patient/second', 'POST /fhir/Observation']);
  });

  const smuggling: Record<string, string> = {
    'TE + CL': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'CL + TE': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'CL.CL, different values': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    'CL.CL, equal values': 'POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}',
    'CL list': 'POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Length: 2, 2\r\n\r\n{}',
    'TE: xchunked': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'TE: chunked with obs-fold': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'TE: chunked, identity': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'TE with a space before the colon': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'two TE headers': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    'bare LF line endings': `POST /system/ehr/Observation HTTP/1.1\nHost: gw\nTransfer-Encoding: chunked\n\n0\n\n${SMUGGLED}`,
    'chunk size overflow': `POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n${SMUGGLED}`,
  };
  for (const [name, payload] of Object.entries(smuggling)) {
    test(`smuggling attempt refused: ${name}`, async () => {
      const before = up.requests.length;
      const r = await rawSocket(gw.url, [payload]);
      assertProblem(r, 400);
      assert.ok(r.closed, 'the connection is closed, so nothing after the refused request is parsed');
      assert.deepEqual(up.requests.slice(before), [], 'the upstream saw neither request');
    });
  }

  test('two Authorization, Host or Content-Type headers → 400 problem, upstream not called', async () => {
    const before = up.requests.length;
    for (const twice of ['Authorization: Bearer a\r\nAuthorization: Bearer b', 'Host: b.example', 'Content-Type: application/json\r\nContent-Type: text/plain']) {
      assertProblem(await rawSocket(gw.url, [`POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\n${twice}\r\nContent-Length: 2\r\n${CLOSE}\r\n{}`]), 400);
    }
    assert.equal(up.requests.length, before);
  });

  test('HTTP/1.1 without Host → 400 problem+json (not node’s bare 400)', async () => {
    assertProblem(await rawSocket(gw.url, [`GET /system/ehr/Observation HTTP/1.1\r\n${CLOSE}\r\n`]), 400);
  });

  test('control characters, NUL and absolute-form targets are refused', async () => {
    const before = up.requests.length;
    for (const head of ['GET /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nX-A: a\u0000b\r\n', 'GET /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nX-A: a\rb\r\n', 'GET http://evil.example/system/ehr/Observation HTTP/1.1\r\nHost: gw\r\n']) {
      assertProblem(await rawSocket(gw.url, [`${head}${CLOSE}\r\n`]), 400);
    }
    assert.equal(up.requests.length, before);
  });

  test('URL over 8 KiB → 414; header block over 16 KiB or thousands of headers → 431', async () => {
    const before = up.requests.length;
    assertProblem(await rawSocket(gw.url, [`GET /system/ehr/Observation?q=${'a'.repeat(9000)} HTTP/1.1\r\nHost: gw\r\n${CLOSE}\r\n`]), 414);
    assertProblem(await rawSocket(gw.url, [`GET /system/ehr/Observation?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: gw\r\n\r\n`]), 431);
    assertProblem(await rawSocket(gw.url, [`GET /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]), 431);
    const many = Array.from({ length: 3000 }, (_, i) => `X-H${i}: 1\r\n`).join('');
    assertProblem(await rawSocket(gw.url, [`GET /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\n${many}\r\n`]), 431);
    assert.equal(up.requests.length, before);
    // A URL just under the limit is served: the limit is the only reason for the 414.
    const ok = await rawSocket(gw.url, [`GET /system/ehr/Observation?q=${'a'.repeat(7000)} HTTP/1.1\r\nHost: gw\r\n${CLOSE}\r\n`]);
    assert.equal(ok.status, 200);
  });

  // requestTimeoutMs and headersTimeoutMs are 1000 ms; node checks every second, so a cut comes within ~2 s.
  const SLOW_BOUND_MS = 4000;
  const drip = (piece: string, times: number) => Array.from({ length: times }, () => [300, piece]).flat();

  test('slowloris headers (one header line every 300 ms) → 408 and closed within the bound', async () => {
    const r = await rawSocket(gw.url, ['GET /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\n', ...drip('X-Slow: 1\r\n', 30)], SLOW_BOUND_MS + 2000);
    assertProblem(r, 408);
    assert.ok(r.closed && r.ms < SLOW_BOUND_MS, `cut after ${r.ms} ms`);
  });

  test('slow body (Content-Length) and slow chunked body → 408 within the bound, upstream never called', async () => {
    const before = up.requests.length;
    const declared = await rawSocket(gw.url, ['POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{', ...drip('"a', 30)], SLOW_BOUND_MS + 2000);
    assertProblem(declared, 408);
    assert.ok(declared.closed && declared.ms < SLOW_BOUND_MS, `cut after ${declared.ms} ms`);
    const chunked = await rawSocket(gw.url, ['POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', ...drip('1\r\n[\r\n', 30)], SLOW_BOUND_MS + 2000);
    assertProblem(chunked, 408);
    assert.ok(chunked.closed && chunked.ms < SLOW_BOUND_MS, `cut after ${chunked.ms} ms`);
    assert.equal(up.requests.length, before);
  });

  test('a declared body that never comes → 408, not a hung connection', async () => {
    const r = await rawSocket(gw.url, ['POST /system/ehr/Observation HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{'], SLOW_BOUND_MS + 2000);
    assertProblem(r, 408);
    assert.ok(r.closed && r.ms < SLOW_BOUND_MS);
  });

  test('a request id with markup is replaced, never echoed', async () => {
    const res = await rawRequest(`${gw.url}/system/ehr/Observation`, { headers: { 'x-request-id': '<script>alert(1)</script>' } });
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.ok(!res.body.includes('<script>'));
  });

  test('an unknown route answers a problem that echoes nothing of the path', async () => {
    const res = await fetch(`${gw.url}/%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
    const body = JSON.stringify(await problem(res));
    assert.ok(res.status === 400 || res.status === 404);
    assert.ok(!/script|alert/i.test(body), body);
  });
});
