import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { StoreUnavailable } from '../gateway/store/index.ts';
import { captureLogger, configIssues, createTestIssuer, problem, startGateway, startUpstream, writeConfig, type TestGateway, type TestIssuer, type TestUpstream } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function route(id: string, policies: string, jwt = true): string {
  return `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: /${id} }
    target: { upstream: up, path: /${id} }
    policies:${jwt ? '\n      - jwt: { issuers: [test-idp] }' : ''}
      - rate-limit: ${policies}`;
}

describe('rate-limit policy (embedded store)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let idp: TestIssuer;
  const tokens = new Map<string, string>();
  const call = async (path: string, clientId?: string) => {
    const headers: Record<string, string> = {};
    if (clientId) {
      if (!tokens.has(clientId)) tokens.set(clientId, await idp.mint({ clientId }));
      headers.authorization = `Bearer ${tokens.get(clientId)}`;
    }
    return fetch(gw.url + path, { headers });
  };
  const statuses = async (path: string, clientId: string | undefined, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const res = await call(path, clientId);
      await res.arrayBuffer();
      out.push(res.status);
    }
    return out;
  };

  before(async () => {
    up = await startUpstream();
    idp = await createTestIssuer();
    gw = await startGateway(`
version: 1
identity:
  issuers:
    - ${idp.yaml}
upstreams:
  up: { url: ${up.url} }
routes:${route('client', '{ key: client, limit: 3, window: 1m, overrides: { vip: { limit: 5 } } }')}
${route('by-ip', '{ key: ip, limit: 2, window: 1m }', false)}
${route('shared-a', '{ key: client, limit: 2, window: 1h }')}
${route('shared-b', '{ key: client, limit: 2, window: 1h }')}
${route('split-a', '{ key: [client, route], limit: 2, window: 1h }')}
${route('split-b', '{ key: [client, route], limit: 2, window: 1h }')}
${route('multi', '{ limits: [{ limit: 2, window: 1s }, { limit: 3, window: 1h }] }')}
${route('sliding', '{ algorithm: sliding, limit: 2, window: 3s }')}
${route('fixed', '{ algorithm: fixed, limit: 2, window: 3s }')}
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  test('admitted responses carry RateLimit and RateLimit-Policy (IETF draft 8)', async () => {
    const res = await call('/client', 'app-headers');
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(res.headers.get('ratelimit'), '"3-per-1m"; r=2; t=60');
    assert.match(res.headers.get('ratelimit-policy') ?? '', /^"3-per-1m"; q=3; w=60; pk=:[A-Za-z0-9+/=]+:$/);
    assert.equal(res.headers.get('retry-after'), null);
    const second = await call('/client', 'app-headers');
    await second.arrayBuffer();
    assert.match(second.headers.get('ratelimit') ?? '', /^"3-per-1m"; r=1; t=(59|60)$/);
  });

  test('over the limit: 429 problem+json with Retry-After and RateLimit, upstream not called', async () => {
    assert.deepEqual(await statuses('/client', 'app-429', 3), [200, 200, 200]);
    const before = up.requests.length;
    const res = await call('/client', 'app-429');
    assert.equal(res.status, 429);
    assert.equal(up.requests.length, before, 'the upstream never saw the refused request');
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.match(res.headers.get('ratelimit') ?? '', /^"3-per-1m"; r=0; t=\d+$/);
    assert.ok(res.headers.get('ratelimit-policy'));
    const body = await problem(res);
    assert.equal(body.type, 'https://hcgw.dev/problems/rate-limited');
    assert.equal(body.status, 429);
    assert.ok(!JSON.stringify(body).includes('app-429'), 'no caller identifiers echoed');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /hcgw_rate_limited_total\{route="client",limit="3-per-1m"\} [1-9]/);
    assert.match(metrics, /hcgw_policy_denials_total\{policy="rate-limit",reason="rate-limited"\} [1-9]/);
  });

  test('each client has its own budget; an override replaces the limit for that client', async () => {
    assert.deepEqual(await statuses('/client', 'app-one', 4), [200, 200, 200, 429]);
    assert.deepEqual(await statuses('/client', 'app-two', 1), [200], 'another client is unaffected');
    assert.deepEqual(await statuses('/client', 'vip', 6), [200, 200, 200, 200, 200, 429]);
    const res = await call('/client', 'vip');
    await res.arrayBuffer();
    assert.match(res.headers.get('ratelimit') ?? '', /^"5-per-1m"; r=0/);
  });

  test('callers without a principal are counted by IP', async () => {
    assert.deepEqual(await statuses('/by-ip', undefined, 3), [200, 200, 429]);
  });

  test('key client shares one count across routes with the same limit; [client, route] splits it', async () => {
    assert.deepEqual([...(await statuses('/shared-a', 'app-share', 1)), ...(await statuses('/shared-b', 'app-share', 2))], [200, 200, 429]);
    assert.deepEqual([...(await statuses('/split-a', 'app-share', 2)), ...(await statuses('/split-b', 'app-share', 2))], [200, 200, 200, 200]);
    assert.deepEqual(await statuses('/split-a', 'app-share', 1), [429]);
  });

  test('several limits all apply and all appear in the headers', async () => {
    assert.deepEqual(await statuses('/multi', 'app-multi', 3), [200, 200, 429], 'the per-second limit refuses the third');
    const res = await call('/multi', 'app-multi');
    await res.arrayBuffer();
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter >= 0 && retryAfter <= 1, `per-second Retry-After ${retryAfter}`);
    await sleep(1100);
    assert.deepEqual(await statuses('/multi', 'app-multi', 1), [200], 'the next second admits again (3rd of the hour)');
    const hourly = await call('/multi', 'app-multi');
    assert.equal(hourly.status, 429, 'the hourly limit refuses the 4th');
    await hourly.arrayBuffer();
    assert.match(hourly.headers.get('ratelimit') ?? '', /^"2-per-1s"; r=0; t=[01], "3-per-1h"; r=0; t=\d+$/);
    assert.ok(Number(hourly.headers.get('retry-after')) > 3000, 'Retry-After names the hourly reset');
  });

  test('sliding windows count any window-long span; fixed windows start over at the boundary', async () => {
    const t0 = Date.now();
    const first = await Promise.all([statuses('/sliding', 'app-window', 1), statuses('/fixed', 'app-window', 1)]);
    const t1 = Date.now();
    assert.deepEqual(first, [[200], [200]]);
    await sleep(1500 - (Date.now() - t1));
    assert.deepEqual(await Promise.all([statuses('/sliding', 'app-window', 2), statuses('/fixed', 'app-window', 2)]), [[200, 429], [200, 429]]);
    // 3.2s after the first hits: the fixed window has restarted; the sliding window still holds the hit made at 1.5s.
    await sleep(3200 - (Date.now() - t1));
    const [sliding, fixed] = await Promise.all([statuses('/sliding', 'app-window', 2), statuses('/fixed', 'app-window', 2)]);
    assert.ok(Date.now() - t0 < 4500, 'the checks ran before the 1.5s hit could leave the sliding window');
    assert.deepEqual(fixed, [200, 200]);
    assert.deepEqual(sliding, [200, 429]);
  });

  test('express-rate-limit found nothing to warn about (no double counting, no misconfiguration)', () => {
    assert.ok(up.requests.length > 0);
    const complaints = gw.lines.filter((l) => /ERR_ERL_|WRN_ERL_|rate limiter (warning|error)/.test(l));
    assert.deepEqual(complaints, []);
  });
});

describe('rate-limit config errors stop start-up with every problem listed', () => {
  const load = async (policy: string) => {
    const file = writeConfig(`
version: 1
upstreams: { up: { url: http://127.0.0.1:9 } }
routes:
  - id: r
    layer: system
    match: { path: /r }
    target: { upstream: up, path: /r }
    policies:
      - rate-limit: ${policy}
`);
    return configIssues({ file });
  };
  const at = 'routes[0].policies[0].rate-limit'.replace(/[.[\]]/g, '\\$&');

  test('valid configs compile, with defaults filled in', async () => {
    assert.deepEqual(await load('{ limit: 100, window: 1m }'), []);
    assert.deepEqual(await load('{ key: [client, route], limits: [{ limit: 10, window: 1s }, { limit: 1000, window: 1h }], algorithm: sliding, failMode: closed, overrides: { partner: { limits: [{ limit: 20, window: 1s }] } } }'), []);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['limit without window', '{ limit: 10 }', new RegExp(`^${at}\\.window: .*needs a .window.`)],
    ['no limit at all', '{ key: ip }', new RegExp(`^${at}: needs .limit.`)],
    ['both forms', '{ limit: 1, window: 1s, limits: [{ limit: 2, window: 1m }] }', new RegExp(`^${at}\\.limits: use either`)],
    ['unknown key', '{ limit: 1, window: 1s, burst: 5 }', new RegExp(`^${at}\\.burst: unknown key`)],
    ['bad duration', '{ limit: 1, window: 10 }', new RegExp(`^${at}\\.window: must be string`)],
    ['window out of range', '{ limit: 1, window: 500ms }', new RegExp(`^${at}\\.window: window must be between 1s and 1d`)],
    ['same window twice', '{ limits: [{ limit: 1, window: 1s }, { limit: 5, window: 1s }] }', new RegExp(`^${at}\\.limits\\[1\\]\\.window: two limits with the same window`)],
    ['ambiguous override', '{ limits: [{ limit: 1, window: 1s }, { limit: 5, window: 1m }], overrides: { partner: { limit: 9 } } }', new RegExp(`^${at}\\.overrides\\.partner\\.limit: .limit. is ambiguous`)],
    ['empty override', '{ limit: 1, window: 1s, overrides: { partner: {} } }', new RegExp(`^${at}\\.overrides\\.partner: needs`)],
    ['unknown key part', '{ key: [client, cookie], limit: 1, window: 1s }', new RegExp(`^${at}\\.key`)],
    ['unknown fail mode', '{ limit: 1, window: 1s, fail: maybe }', new RegExp(`^${at}\\.fail: must be one of: open, closed`)],
  ];
  for (const [name, policy, expected] of cases) {
    test(name, async () => {
      const issues = await load(policy);
      assert.ok(issues.some((i) => expected.test(i)), `expected ${expected} in ${JSON.stringify(issues)}`);
    });
  }
});

describe('memory store bound under a flood of distinct callers', () => {
  test('counters beyond store.maxEntries are evicted least-recently-used first and counted in hcgw_store_evictions_total', async () => {
    const up = await startUpstream();
    const idp = await createTestIssuer();
    const gw = await startGateway(`version: 1
store: { kind: memory, maxEntries: 100 }
identity: { issuers: [${idp.yaml}] }
upstreams: { up: { url: ${up.url} } }
routes:${route('flood', '{ key: subject, limit: 1, window: 1m }')}
`);
    try {
      const call = async (sub: string) => (await fetch(`${gw.url}/flood`, { headers: { authorization: `Bearer ${await idp.mint({ sub })}` } })).status;
      assert.equal(await call('caller-0'), 200);
      assert.equal(await call('caller-0'), 429, 'limited while its counter is held');
      for (let i = 1; i <= 120; i++) assert.equal(await call(`caller-${i}`), 200);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      const evicted = Number(/hcgw_store_evictions_total (\d+)/.exec(metrics)?.[1]);
      assert.ok(evicted >= 20, `evictions counted: ${evicted}`);
      // The documented trade-off of a bounded embedded store: the oldest counter is gone, so is its limit.
      assert.equal(await call('caller-0'), 200);
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

describe('rate-limit: only a store failure takes the fail mode', () => {
  /** A store whose counting fails with `err`; the policy is built as the compiler builds it. */
  async function limiterFailingWith(err: Error, failMode: 'open' | 'closed') {
    const { rateLimitPolicy } = await import('../policies/rate-limit/index.ts');
    const { createMetrics } = await import('../gateway/ops/metrics.ts');
    const fail = async () => {
      throw err;
    };
    const store = { kind: 'memory', get: fail, set: fail, del: fail, incr: fail, slidingHit: fail, ping: async () => true, close: async () => undefined };
    const handler = rateLimitPolicy.create({ key: 'client', limit: 5, window: '1m', algorithm: 'fixed', overrides: {}, failMode } as never, {
      logger: captureLogger().logger,
      metrics: createMetrics(),
      store,
      route: { id: 'r' },
      now: Date.now,
    } as never);
    const req = new IncomingMessage(new Socket());
    req.headers = {};
    const ex = { req, res: new ServerResponse(req), principal: { clientId: 'c1' }, decisions: [], route: { id: 'r' }, ip: '127.0.0.1', params: {}, locals: new Map() };
    return { run: () => (handler as { onRequest(ex: unknown): Promise<void> }).onRequest(ex), ex };
  }

  test('store unavailable: open admits (with a decision saying so), closed refuses with 503', async () => {
    const open = await limiterFailingWith(new StoreUnavailable(), 'open');
    await open.run();
    assert.deepEqual(open.ex.decisions.at(-1), { policy: 'rate-limit', outcome: 'allow', reason: 'store-unavailable' });
    const closed = await limiterFailingWith(new StoreUnavailable(), 'closed');
    await assert.rejects(closed.run(), (e: { status?: number }) => e.status === 503);
  });

  test('any other fault is never admitted, not even under failMode: open', async () => {
    for (const err of [new TypeError("Cannot read properties of undefined (reading 'append')"), new RangeError('bad'), new Error('Expected result to be array of values')]) {
      const { run, ex } = await limiterFailingWith(err, 'open');
      await assert.rejects(run(), (e) => e === err, `${err.name} must propagate (a 500), not be taken for a store outage`);
      assert.equal(ex.decisions.length, 0);
    }
  });
});
