import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Class 6 of issue 12: client X-Forwarded-* / Forwarded / X-Real-IP headers never reach an upstream. The
 * gateway sets X-Forwarded-For/-Proto/-Host and Forwarded itself from what `server.trustProxy` trusts,
 * replacing (never appending to) what came in, also on retries and on the gateway's own calls.
 */
const FORGED = {
  'x-forwarded-for': '6.6.6.6, 10.9.9.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-port': '443',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-server': 'evil',
  forwarded: 'for=6.6.6.6;proto=https;host=evil.example',
  'x-real-ip': '6.6.6.6',
  'x-client-ip': '6.6.6.6',
  'true-client-ip': '6.6.6.6',
  'x-original-url': '/admin',
};
const FORGED_NAMES = ['x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server', 'x-real-ip', 'x-client-ip', 'true-client-ip', 'x-original-url'];

function config(upUrl: string, trustProxy: string, extra = '') {
  return `version: 1
server: { trustProxy: ${trustProxy} }
upstreams:
  up: { url: "${upUrl}", retries: 2, retryBackoffMs: 1 }
routes:
  - { id: streamed, layer: system, match: { methods: [GET, POST], path: /s }, target: { upstream: up, path: /s } }
  - id: composed
    layer: process
    match: { methods: [GET], path: /p }
    target: { compose: [{ name: a, upstream: up, path: /a }, { name: b, upstream: up, path: /b }] }
  - { id: view, layer: experience, match: { methods: [GET], path: /e }, target: { upstream: up, path: /e }, project: { ok: ok } }
${extra}`;
}

describe('forwarding headers are the gateway’s own (issue 12, class 6)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let resetNext = 0;

  before(async () => {
    up = await startUpstream((req, res) => {
      if (resetNext > 0) {
        resetNext--;
        return req.socket.destroy();
      }
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    gw = await startGateway(config(up.url, 'false'));
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const host = () => new URL(gw.url).host;
  const assertOwn = (h: Record<string, unknown>, where: string, expected = { for: '127.0.0.1', proto: 'http', host: host() }) => {
    assert.equal(h['x-forwarded-for'], expected.for, `${where}: X-Forwarded-For`);
    assert.equal(h['x-forwarded-proto'], expected.proto, `${where}: X-Forwarded-Proto`);
    assert.equal(h['x-forwarded-host'], expected.host, `${where}: X-Forwarded-Host`);
    for (const n of FORGED_NAMES) assert.equal(h[n], undefined, `${where}: ${n} passed on`);
    assert.doesNotMatch(JSON.stringify(h), /6\.6\.6\.6|evil|10\.9\.9\.9/, `${where}: a forged value reached the upstream`);
  };

  test('trustProxy false, streamed GET: every forged header replaced or removed', async () => {
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}/s`, { headers: FORGED });
    assert.equal(res.status, 200);
    const h = up.requests.slice(before)[0].headers;
    assertOwn(h, 'GET /s');
    assert.equal(h.forwarded, `for=127.0.0.1;proto=http;host="${host()}"`, 'host:port is a quoted-string in RFC 7239');
  });

  test('trustProxy false, POST with a body (the copied-headers path)', async () => {
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}/s`, { method: 'POST', headers: { ...FORGED, 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(res.status, 200);
    assertOwn(up.requests.slice(before)[0].headers, 'POST /s');
  });

  test('mixed-case and repeated forged headers are removed too', async () => {
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}/s`, { headers: { 'X-Forwarded-For': ['6.6.6.6', '7.7.7.7'], 'X-REAL-IP': '6.6.6.6', Forwarded: ['for=6.6.6.6', 'for=7.7.7.7'] } });
    assert.equal(res.status, 200);
    const h = up.requests.slice(before)[0].headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.doesNotMatch(JSON.stringify(h), /6\.6\.6\.6|7\.7\.7\.7/);
  });

  test('retries set the headers again, never append: one address after two resets', async () => {
    resetNext = 2;
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}/s`, { headers: FORGED });
    assert.equal(res.status, 200);
    const seen = up.requests.slice(before);
    assert.equal(seen.length, 3, 'two reset attempts, then the answered one');
    seen.forEach((r, i) => assertOwn(r.headers, `attempt ${i + 1}`));
  });

  test('the gateway’s own calls (process steps, experience sources) carry the same headers', async () => {
    for (const path of ['/p', '/e']) {
      const before = up.requests.length;
      const res = await rawRequest(`${gw.url}${path}`, { headers: FORGED });
      assert.equal(res.status, 200, path);
      const seen = up.requests.slice(before);
      assert.ok(seen.length >= 1);
      for (const r of seen) assertOwn(r.headers, `${path} → ${r.url}`);
    }
  });
});

describe('forwarding headers behind a trusted proxy (issue 12, class 6)', () => {
  let up: TestUpstream;
  let trusted: TestGateway;
  let other: TestGateway;

  before(async () => {
    up = await startUpstream();
    trusted = await startGateway(config(up.url, '[loopback]'));
    other = await startGateway(config(up.url, '[10.0.0.1]'));
  });
  after(async () => {
    await Promise.all([trusted?.close(), other?.close()]);
    await up?.close();
  });

  test('the trusted proxy’s chain is kept, the gateway’s peer appended once; its proto and host are used', async () => {
    const before = up.requests.length;
    const res = await rawRequest(`${trusted.url}/s`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.hospital.example', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6' } });
    assert.equal(res.status, 200);
    const h = up.requests.slice(before)[0].headers;
    assert.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'api.hospital.example');
    assert.equal(h.forwarded, 'for=203.0.113.7;proto=https;host=api.hospital.example, for=127.0.0.1');
    assert.equal(h['x-real-ip'], undefined);
  });

  test('an address chain through an untrusted hop stops at it', async () => {
    const before = up.requests.length;
    // loopback is trusted, 198.51.100.9 is not: what it claims (6.6.6.6) is not believed.
    await rawRequest(`${trusted.url}/s`, { headers: { 'x-forwarded-for': '6.6.6.6, 198.51.100.9' } });
    assert.equal(up.requests.slice(before)[0].headers['x-forwarded-for'], '198.51.100.9, 127.0.0.1');
  });

  test('a proxy list that does not include the caller: the caller’s headers are not believed', async () => {
    const before = up.requests.length;
    await rawRequest(`${other.url}/s`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' } });
    const h = up.requests.slice(before)[0].headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], new URL(other.url).host);
  });
});
