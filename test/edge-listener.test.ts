import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawHttp, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * node's request listener hands routed requests straight to the compiled router (gateway/http/server.ts),
 * not through express's middleware stack. Both ways must answer alike: the paths express owns are matched
 * as its router matches them, and routed answers carry the same security headers and request id.
 */

describe('routed requests skip express, health endpoints do not', () => {
  let up: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`version: 1
server: { trustProxy: loopback }
upstreams:
  up: { url: "${up.url}" }
routes:
  - { id: echo, layer: system, match: { methods: [GET], path: /api/echo }, target: { upstream: up, path: /echo } }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const HELMET = ['content-security-policy', 'x-content-type-options', 'strict-transport-security', 'x-frame-options', 'referrer-policy'];

  for (const path of ['/healthz', '/HEALTHZ', '/healthz/', '/Readyz']) {
    test(`${path} is answered by the health endpoint, as express's router matches it`, async () => {
      const res = await fetch(`${gw.url}${path}`);
      assert.equal(res.status, 200);
      assert.match((await res.json() as { status: string }).status, /^(ok|ready)$/);
      for (const h of HELMET) assert.ok(res.headers.get(h), `${path}: ${h}`);
    });
  }

  test('an absolute-form request target reaches the health endpoint too', async () => {
    const out = await rawHttp(gw.url, `GET ${gw.url}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.match(out, /"status":"ok"/);
  });

  test('POST /healthz falls through to the router: 404 problem, as before', async () => {
    const res = await fetch(`${gw.url}/healthz`, { method: 'POST' });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
  });

  test('routed answers and router refusals carry the security headers and a request id', async () => {
    for (const [path, status] of [['/api/echo', 200], ['/api/nothing-here', 404]] as const) {
      const res = await fetch(`${gw.url}${path}`);
      assert.equal(res.status, status, path);
      for (const h of HELMET) assert.ok(res.headers.get(h), `${path}: ${h}`);
      assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
      assert.equal(res.headers.get('x-powered-by'), null);
    }
  });

  test('trust proxy still governs the client address a routed request forwards (req.ip from express)', async () => {
    await fetch(`${gw.url}/api/echo`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    const seen = up.requests.at(-1)!;
    assert.match(String(seen.headers['x-forwarded-for']), /203\.0\.113\.9/);
  });
});
