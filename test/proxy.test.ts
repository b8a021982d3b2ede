import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deadPort, problem, rawRequest, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

describe('system API proxying', () => {
  let up: TestUpstream;
  let slow: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    slow = await startUpstream((_req, res) => {
      setTimeout(() => res.end('{}'), 1500).unref();
    });
    const dead = await deadPort();
    gw = await startGateway(`
version: 1
server: { bodyLimit: 2kb }
upstreams:
  ehr: { url: ${up.url}/fhir, timeoutMs: 2000 }
  slow: { url: ${slow.url}, timeoutMs: 300 }
  down: { url: http://127.0.0.1:${dead} }
routes:
  - id: patient-read
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    target: { upstream: ehr, path: /Patient/:id }
  - id: observation-create
    layer: system
    match: { methods: [POST], path: /system/ehr/Observation }
    target: { upstream: ehr, path: /Observation }
  - id: slow
    layer: system
    match: { methods: [GET], path: /slow }
    target: { upstream: slow, path: /x }
  - id: down
    layer: system
    match: { methods: [GET], path: /down }
    target: { upstream: down, path: /x }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
    await slow.close();
  });

  test('maps params into the upstream path and keeps the query', async () => {
    const res = await fetch(`${gw.url}/system/ehr/Patient/p1?_elements=name`);
    assert.equal(res.status, 200);
    const echo = (await res.json()) as { url: string };
    assert.equal(echo.url, '/fhir/Patient/p1?_elements=name');
  });

  test('encodes params so they cannot add upstream path segments', async () => {
    const res = await fetch(`${gw.url}/system/ehr/Patient/a%20b`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, '/fhir/Patient/a%20b');
  });

  test('request id: generated, passed through, and sent upstream with traceparent', async () => {
    const res = await fetch(`${gw.url}/system/ehr/Patient/p1`, {
      headers: { 'x-request-id': 'abc-123', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    assert.equal(res.headers.get('x-request-id'), 'abc-123');
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    assert.equal(headers['x-request-id'], 'abc-123');
    assert.match(headers.traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    assert.notEqual(headers.traceparent.split('-')[2], 'b7ad6b7169203331', 'the gateway is a new span');
    const gen = await fetch(`${gw.url}/system/ehr/Patient/p1`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(gen.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    await gen.arrayBuffer();
  });

  test('strips hop-by-hop headers and Authorization, keeps end-to-end headers', async () => {
    const res = await rawRequest(`${gw.url}/system/ehr/Patient/p1`, {
      headers: { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'proxy-authorization': 'Basic Zm9v', authorization: 'Bearer abc', accept: 'application/fhir+json' },
    });
    const { headers } = res.json() as { headers: Record<string, string> };
    assert.equal(headers['x-hop'], undefined);
    assert.equal(headers['proxy-authorization'], undefined);
    assert.equal(headers.authorization, undefined);
    assert.equal(headers.accept, 'application/fhir+json');
  });

  test('forwards bodies and security headers come back from helmet', async () => {
    const body = JSON.stringify({ resourceType: 'Observation', status: 'final' });
    const res = await fetch(`${gw.url}/system/ehr/Observation`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body });
    assert.equal(res.status, 200);
    const echo = (await res.json()) as { body: string; method: string };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, body);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(res.headers.get('strict-transport-security'));
  });

  test('body over the limit → 413 problem+json, upstream not called', async () => {
    const before = up.requests.length;
    const res = await fetch(`${gw.url}/system/ehr/Observation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(5000) });
    assert.equal(res.status, 413);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/payload-too-large');
    assert.equal(up.requests.length, before);
  });

  test('unknown route → 404 problem+json; wrong method → 405 with Allow', async () => {
    const res = await fetch(`${gw.url}/nope`);
    assert.equal(res.status, 404);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/route-not-found');
    assert.equal(p.status, 404);
    const res2 = await fetch(`${gw.url}/system/ehr/Patient/p1`, { method: 'DELETE' });
    assert.equal(res2.status, 405);
    assert.match(res2.headers.get('allow') ?? '', /GET/);
    await res2.arrayBuffer();
  });

  test('mixed case and traversal tricks do not match or reach the upstream', async () => {
    const before = up.requests.length;
    for (const p of ['/System/ehr/Patient/p1', '/system/ehr/Patient/..%2Fadmin', '/system/ehr/Patient/%2e%2e', '/system/ehr/Patient/a%2Fb']) {
      const res = await fetch(gw.url + p);
      assert.ok(res.status === 404 || res.status === 400, `${p} → ${res.status}`);
      await problem(res);
    }
    assert.equal(up.requests.length, before);
  });

  test('upstream down → 502 problem+json', async () => {
    const res = await fetch(`${gw.url}/down`);
    assert.equal(res.status, 502);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/bad-gateway');
  });

  test('upstream too slow → 504 problem+json within the timeout', async () => {
    const t0 = Date.now();
    const res = await fetch(`${gw.url}/slow`);
    assert.equal(res.status, 504);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/upstream-timeout');
    assert.ok(Date.now() - t0 < 1400, 'answered before the upstream would have');
  });

  test('health endpoints answer outside the chains', async () => {
    const h = await fetch(`${gw.url}/healthz`);
    assert.equal(h.status, 200);
    const r = await fetch(`${gw.url}/readyz`);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { config: { version: string } };
    assert.match(body.config.version, /^[0-9a-f]{16}$/);
  });
});
