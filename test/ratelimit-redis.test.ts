import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createTestIssuer,
  problem,
  requireSharedRedis,
  spawnGateway,
  startGateway,
  startRedisServer,
  startUpstream,
  uniquePrefix,
  waitFor,
  writeConfig,
  type GatewayProcess,
  type RedisChild,
  type TestGateway,
  type TestUpstream,
} from './helpers.ts';

const LIMIT = 20;

describe('rate-limit across three gateway processes sharing Redis', () => {
  let up: TestUpstream;
  let gateways: GatewayProcess[] = [];
  let token: string;
  before(async () => {
    const redisUrl = await requireSharedRedis();
    up = await startUpstream();
    const idp = await createTestIssuer();
    token = await idp.mint({ clientId: 'bulk-exporter' });
    const file = writeConfig(`
version: 1
store: { kind: redis, url: ${redisUrl}, prefix: "${uniquePrefix('exact')}" }
identity:
  issuers:
    - ${idp.yaml}
upstreams:
  up: { url: ${up.url} }
routes:
${['fixed', 'sliding']
  .map(
    (algorithm) => `
  - id: ${algorithm}
    layer: system
    match: { path: /${algorithm} }
    target: { upstream: up, path: /x }
    policies:
      - jwt: { issuers: [test-idp] }
      - rate-limit: { key: client, algorithm: ${algorithm}, limit: ${LIMIT}, window: 1m }`,
  )
  .join('')}
`);
    gateways = await Promise.all([1, 2, 3].map(() => spawnGateway(file)));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await up?.close();
  });

  for (const algorithm of ['fixed', 'sliding']) {
    test(`${algorithm} window: 10× the limit at once, spread over 3 instances → exactly the limit admitted`, async () => {
      const results = await Promise.all(
        Array.from({ length: 10 * LIMIT }, async (_, i) => {
          const gw = gateways[i % gateways.length];
          const res = await fetch(`${gw.url}/${algorithm}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) });
          await res.arrayBuffer();
          return { status: res.status, instance: i % gateways.length };
        }),
      );
      const admitted = results.filter((r) => r.status === 200);
      assert.equal(admitted.length, LIMIT, `admitted ${admitted.length}`);
      assert.equal(results.filter((r) => r.status === 429).length, 9 * LIMIT, 'every other request refused');
      assert.equal(new Set(results.filter((r) => r.status === 429).map((r) => r.instance)).size, 3, 'every instance refused some: they share one count');
    });
  }
});

describe('rate-limit fail modes while Redis is down, hung, and back', () => {
  let redis: RedisChild;
  let up: TestUpstream;
  let gw: TestGateway;
  const hit = async (path: string) => {
    const t0 = performance.now();
    const res = await fetch(gw.url + path, { signal: AbortSignal.timeout(10_000) });
    return { res, ms: performance.now() - t0 };
  };
  const statuses = async (path: string, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const { res } = await hit(path);
      await res.arrayBuffer();
      out.push(res.status);
    }
    return out;
  };
  const storeReady = async () => ((await (await fetch(`${gw.url}/readyz`)).json()) as { store: { ok: boolean } }).store.ok;
  const expectOpen = async (path: string) => {
    const { res, ms } = await hit(path);
    await res.arrayBuffer();
    assert.equal(res.status, 200, `${path} fails open`);
    assert.equal(res.headers.get('ratelimit'), null, 'no limit information when none could be read');
    assert.ok(ms < 2000, `${path} answered in ${ms}ms`);
  };
  const expectClosed = async (path: string) => {
    const { res, ms } = await hit(path);
    assert.equal(res.status, 503, `${path} fails closed`);
    assert.ok(ms < 2000, `${path} answered in ${ms}ms`);
    assert.equal(res.headers.get('retry-after'), '1');
    const body = await problem(res);
    assert.equal(body.type, 'https://hcgw.dev/problems/unavailable');
  };
  const expectLimited = async () => {
    assert.deepEqual(await statuses('/open', 3), [200, 200, 429]);
    assert.deepEqual(await statuses('/closed', 3), [200, 200, 429]);
    assert.deepEqual(await statuses('/closed-sliding', 3), [200, 200, 429]);
  };

  before(async () => {
    redis = await startRedisServer();
    await redis.stop(); // the gateway starts while its Redis is down
    up = await startUpstream();
    const route = (id: string, policy: string) => `
  - id: ${id}
    layer: system
    match: { path: /${id} }
    target: { upstream: up, path: /x }
    policies:
      - rate-limit: ${policy}`;
    gw = await startGateway(`
version: 1
store: { kind: redis, url: ${redis.url}, prefix: "${uniquePrefix('failmode')}", commandTimeoutMs: 200 }
upstreams:
  up: { url: ${up.url} }
routes:${route('open', '{ key: [ip, route], limit: 2, window: 1m, failMode: open }')}${route('closed', '{ key: [ip, route], limit: 2, window: 1m, failMode: closed }')}${route('closed-sliding', '{ key: [ip, route], algorithm: sliding, limit: 2, window: 1m, failMode: closed }')}
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
    redis?.resume();
    await redis?.stop();
  });

  test('started without Redis: open admits, closed answers 503, both at once', async () => {
    await expectOpen('/open');
    await expectClosed('/closed');
    await expectClosed('/closed-sliding');
  });

  test('Redis comes up: limits apply (limiters built while it was down recover)', async () => {
    await redis.start();
    await waitFor(storeReady, 10_000, 'the store to connect');
    await expectLimited();
  });

  test('Redis killed mid-traffic: fail modes apply, metric counted, warning logged', async () => {
    await redis.stop();
    await waitFor(async () => !(await storeReady()), 5000, 'the store to notice');
    for (let i = 0; i < 3; i++) await expectOpen('/open');
    await expectClosed('/closed');
    await expectClosed('/closed-sliding');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /hcgw_store_failures_total\{policy="rate-limit",mode="open"\} [1-9]/);
    assert.match(metrics, /hcgw_store_failures_total\{policy="rate-limit",mode="closed"\} [1-9]/);
    assert.ok(gw.lines.some((l) => l.includes('"level":"warn"') && l.includes('failing open') && l.includes('"route":"open"')));
  });

  test('Redis restarted empty (no counters, no scripts): the client reconnects and limits apply again', async () => {
    await redis.start();
    await waitFor(storeReady, 10_000, 'the store to reconnect');
    await expectLimited();
  });

  test('a hung Redis (accepts, never answers): requests still finish within the command timeout', async () => {
    redis.pause();
    try {
      await expectOpen('/open');
      await expectClosed('/closed');
      await expectClosed('/closed-sliding');
    } finally {
      redis.resume();
    }
  });
});
