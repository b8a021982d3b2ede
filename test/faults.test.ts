import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, generateKeyPair } from 'jose';
import { EPHEMERAL_PORTS, startIdp, startSandbox, type DevIdp, type Sandbox } from '../gateway/sandbox/index.ts';
import {
  deadPort,
  metricValue,
  problem,
  sandboxPreamble,
  startGateway,
  startRedisServer,
  startUpstream,
  uniquePrefix,
  waitFor,
  type RedisChild,
  type TestGateway,
  type TestUpstream,
} from './helpers.ts';

/**
 * The fault matrix of docs/security.md: for each outside failure the behaviour a caller sees and the
 * metric an operator sees. Nothing here may answer 500: every fault is a documented 4xx/5xx problem.
 */

describe('faults: upstreams down, reset mid-response, slow; circuit breaker', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  let token: string;
  before(async () => {
    const dead = await deadPort();
    sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    // sandboxPreamble ends inside `upstreams:`, so the extra upstreams (own timeouts, a breaker) follow it.
    gw = await startGateway(`${sandboxPreamble(sb)}  fast-timeout: { url: "${sb.urls.erp}", timeoutMs: 300 }
  down: { url: "http://127.0.0.1:${dead}" }
  fragile: { url: "http://127.0.0.1:${dead}", circuitBreaker: { failures: 2, windowMs: 60000, openMs: 60000 } }
minimization:
  profiles:
    clinical: { resources: { Patient: [id, name, birthDate] } }
routes:
  - { id: streamed, layer: system, match: { path: "/streamed/Patient/:id" }, target: { upstream: ehr, path: "/Patient/:id" }, policies: [ { jwt: { issuers: [sandbox-idp] } } ] }
  - id: minimized
    layer: system
    match: { path: "/minimized/Patient/:id" }
    target: { upstream: ehr, path: "/Patient/:id" }
    policies: [ { jwt: { issuers: [sandbox-idp] } }, { minimize: { select: [ { profile: clinical } ] } } ]
  - { id: slow, layer: system, match: { path: "/slow/items" }, target: { upstream: fast-timeout, path: /items }, policies: [ { jwt: { issuers: [sandbox-idp] } } ] }
  - { id: down, layer: system, match: { path: /down }, target: { upstream: down, path: /x }, policies: [ { jwt: { issuers: [sandbox-idp] } } ] }
  - { id: fragile, layer: system, match: { path: /fragile }, target: { upstream: fragile, path: /x }, policies: [ { jwt: { issuers: [sandbox-idp] } } ] }
`);
    token = await sb.idp.mint({ clientId: 'clinician-app', scopes: 'user/*.rs' });
  });
  after(async () => {
    await gw.close();
    await sb.close();
  });
  const get = (path: string) => fetch(gw.url + path, { headers: { authorization: `Bearer ${token}` } });

  test('upstream down → 502 bad-gateway; hcgw_upstream_errors_total{kind="connect"}', async () => {
    const res = await get('/down');
    assert.equal(res.status, 502);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/bad-gateway');
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'down', kind: 'connect' }), 1);
  });

  test('reset mid-response on a route without response policies: never a short "success" (JSON is buffered for URL rewriting → 502)', async () => {
    sb.upstreams.ehr.setFault({ reset: true, path: '/Patient', count: 1 });
    const res = await get('/streamed/Patient/p1');
    assert.equal(res.status, 502, 'JSON bodies are buffered on every route (issue 12, class 7), so the cut is seen before anything is sent');
    await problem(res);
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'ehr', kind: 'reset' }), 1);
  });

  test('reset mid-response on a buffered route (minimize) → 502 problem', async () => {
    sb.upstreams.ehr.setFault({ reset: true, path: '/Patient', count: 1 });
    const res = await get('/minimized/Patient/p1');
    assert.equal(res.status, 502);
    await problem(res);
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'ehr', kind: 'reset' }), 2);
    const healthy = await get('/minimized/Patient/p1');
    assert.equal(healthy.status, 200, 'the next request is served normally');
    await healthy.arrayBuffer();
  });

  test('slow upstream → 504 within its timeoutMs; hcgw_upstream_errors_total{kind="timeout"}', async () => {
    sb.upstreams.erp.setFault({ delayMs: 3000, path: '/items', count: 1 });
    const started = Date.now();
    const res = await get('/slow/items');
    assert.equal(res.status, 504);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/upstream-timeout');
    assert.ok(Date.now() - started < 2500, 'answered long before the upstream would have');
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'fast-timeout', kind: 'timeout' }), 1);
  });

  test('an upstream that keeps failing opens its breaker → 503 at once, no call; hcgw_circuit_state 2', async () => {
    for (let i = 0; i < 2; i++) (await get('/fragile')).body?.cancel();
    const res = await get('/fragile');
    assert.equal(res.status, 503);
    assert.ok(res.headers.get('retry-after'));
    await problem(res);
    assert.equal(await metricValue(gw.url, 'hcgw_circuit_state', { upstream: 'fragile' }), 2);
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'fragile', kind: 'connect' }), 2);
  });
});

describe('faults: JWKS endpoint down (warm and cold key caches)', () => {
  let warmIdp: DevIdp;
  let coldIdp: DevIdp;
  let up: TestUpstream;
  let gw: TestGateway;
  let warmToken: string;
  let coldToken: string;
  before(async () => {
    [warmIdp, coldIdp, up] = await Promise.all([startIdp({ port: 0 }), startIdp({ port: 0 }), startUpstream()]);
    const issuer = (name: string, idp: DevIdp) => `    - { name: ${name}, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [${idp.audience}], algorithms: [RS256], jwksTimeoutMs: 500 }\n`;
    gw = await startGateway(`
version: 1
identity:
  issuers:
${issuer('warm', warmIdp)}${issuer('cold', coldIdp)}upstreams:
  app: { url: "${up.url}" }
routes:
  - { id: records, layer: system, match: { path: /records }, target: { upstream: app, path: /x }, policies: [ { jwt: { issuers: [warm, cold] } } ] }
`);
    warmToken = await warmIdp.mint({ clientId: 'clinician-app' });
    coldToken = await coldIdp.mint({ clientId: 'clinician-app' });
    const first = await fetch(`${gw.url}/records`, { headers: { authorization: `Bearer ${warmToken}` } });
    assert.equal(first.status, 200, 'the warm issuer’s keys are fetched once while its IdP is up');
    await first.arrayBuffer();
    await Promise.all([warmIdp.close(), coldIdp.close()]);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });
  const call = (token: string) => fetch(`${gw.url}/records`, { headers: { authorization: `Bearer ${token}` } });

  test('warm cache: known kids keep verifying while the IdP is down', async () => {
    for (const token of [warmToken, await warmIdp.mint({ clientId: 'erp-batch' })]) {
      const res = await call(token);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
  });

  test('warm cache, unknown kid: 401 invalid_token (unknown-kid), never 500', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'not-in-the-jwks' }).setIssuer(warmIdp.issuer).setAudience(warmIdp.audience).setExpirationTime('5m').sign(privateKey);
    const res = await call(forged);
    assert.equal(res.status, 401);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/invalid-token');
    assert.equal(await metricValue(gw.url, 'hcgw_policy_denials_total', { policy: 'jwt', reason: 'unknown-kid' }), 1);
  });

  test('cold cache: fails closed with 503 "keys unavailable" (the token is not called invalid), counted', async () => {
    const res = await call(coldToken);
    assert.equal(res.status, 503);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/unavailable');
    assert.ok(!JSON.stringify(p).includes(coldToken.split('.')[1]), 'no token text in the answer');
    assert.equal(await metricValue(gw.url, 'hcgw_policy_denials_total', { policy: 'jwt', reason: 'keys-unavailable' }), 1);
    assert.ok(gw.lines.some((l) => l.includes('token verification unavailable')));
  });
});

describe('faults: Redis down at start and mid-run (own redis-server)', () => {
  let redis: RedisChild;
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    redis = await startRedisServer();
    await redis.stop();
    up = await startUpstream();
    const route = (id: string, fail: string) => `  - { id: ${id}, layer: system, match: { path: /${id} }, target: { upstream: app, path: /x }, policies: [ { rate-limit: { key: ip, limit: 2, window: 1m, fail: ${fail} } } ] }\n`;
    gw = await startGateway(`
version: 1
store: { kind: redis, url: "${redis.url}", prefix: "${uniquePrefix('faults')}", connectTimeoutMs: 200, commandTimeoutMs: 200 }
upstreams:
  app: { url: "${up.url}" }
routes:
${route('open', 'open')}${route('closed', 'closed')}`);
  });
  after(async () => {
    await gw.close();
    await up.close();
    await redis.stop();
  });
  const status = async (path: string) => {
    const res = await fetch(gw.url + path);
    await res.arrayBuffer();
    return res.status;
  };
  const ready = async () => (await fetch(`${gw.url}/readyz`)).status === 200;

  test('down at start: the gateway starts, /readyz 503, fail-open admits, fail-closed 503; both counted', async () => {
    assert.equal(await ready(), false);
    assert.deepEqual([await status('/open'), await status('/open'), await status('/open')], [200, 200, 200], 'no limit can be counted: admitted');
    assert.equal(await status('/closed'), 503);
    assert.ok((await metricValue(gw.url, 'hcgw_store_failures_total', { policy: 'rate-limit', mode: 'open' })) >= 3);
    assert.ok((await metricValue(gw.url, 'hcgw_store_failures_total', { policy: 'rate-limit', mode: 'closed' })) >= 1);
  });

  test('Redis comes up: /readyz 200 and limits apply again', async () => {
    await redis.start();
    await waitFor(ready, 10_000, 'the store to connect');
    assert.deepEqual([await status('/open'), await status('/open'), await status('/open')], [200, 200, 429]);
  });

  test('killed mid-run: the same fail modes, more failures counted, /readyz 503 again', async () => {
    const before = await metricValue(gw.url, 'hcgw_store_failures_total', { policy: 'rate-limit' });
    await redis.stop();
    await waitFor(async () => !(await ready()), 5000, 'the store to notice');
    assert.equal(await status('/open'), 200);
    assert.equal(await status('/closed'), 503);
    assert.ok((await metricValue(gw.url, 'hcgw_store_failures_total', { policy: 'rate-limit' })) >= before + 2);
  });
});

describe('faults: audit sink failing (SIEM unreachable)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(`
version: 1
audit:
  hashKey: fault-test-audit-hash-key-0123456789abcdef
  flushIntervalMs: 10
  sinks: [ { kind: http, url: "http://127.0.0.1:${await deadPort()}/ingest", timeoutMs: 500, retryInitialMs: 20, retryMaxMs: 50, closeTimeoutMs: 200 } ]
upstreams:
  app: { url: "${up.url}" }
routes:
  - { id: audited, layer: system, match: { path: /audited }, target: { upstream: app, path: /x }, policies: [ { audit: {} } ] }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('requests are still served; delivery failures are counted; undelivered records are counted at shutdown', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/audited`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    await waitFor(async () => (await metricValue(gw.url, 'hcgw_audit_sink_failures_total', { sink: 'http', kind: 'network' })) >= 2, 5000, 'sink failures to be counted');
    const registry = gw.gw.metrics.registry;
    await gw.close();
    const dropped = (await registry.getSingleMetricAsString('hcgw_audit_records_dropped_total')).match(/reason="shutdown"\} (\d+)/);
    assert.equal(Number(dropped?.[1]), 3, 'the three records that never reached the SIEM are accounted for');
  });
});
