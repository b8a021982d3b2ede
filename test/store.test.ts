import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryStore } from '../gateway/store/memory.ts';
import { createRedisStore, type RedisStore } from '../gateway/store/redis.ts';
import { StoreUnavailable, type Store } from '../gateway/store/types.ts';
import { isStoreFailure } from '../gateway/store/index.ts';
import { execFileSync } from 'node:child_process';
import { requireSharedRedis, startRedisServer, uniquePrefix, waitFor, type RedisChild } from './helpers.ts';

const elapsed = async <T>(fn: () => Promise<T>): Promise<[PromiseSettledResult<T>, number]> => {
  const t0 = performance.now();
  const [r] = await Promise.allSettled([fn()]);
  return [r, performance.now() - t0];
};
const rejectedWith = (r: PromiseSettledResult<unknown>, cls: Function) => r.status === 'rejected' && r.reason instanceof cls;

describe('memory store', () => {
  let t = 0;
  const store = createMemoryStore({ now: () => t });
  after(() => store.close());

  test('incr counts within a fixed window and starts over after it', async () => {
    t = 0;
    assert.deepEqual(await store.incr('f', 1000), { count: 1, ttlMs: 1000 });
    t = 400;
    assert.deepEqual(await store.incr('f', 1000), { count: 2, ttlMs: 600 });
    t = 1000;
    assert.deepEqual(await store.incr('f', 1000), { count: 1, ttlMs: 1000 });
  });

  test('slidingHit admits `limit` per window-long span, does not record refusals, reports when a slot frees', async () => {
    t = 10_000;
    for (const [at, count] of [[10_000, 1], [10_100, 2], [10_200, 3]]) {
      t = at;
      assert.deepEqual(await store.slidingHit('s', 1000, 3), { count, resetMs: 10_000 + 1000 - at });
    }
    t = 10_300;
    assert.deepEqual(await store.slidingHit('s', 1000, 3), { count: 4, resetMs: 700 }, 'refused: 4th in the window');
    t = 10_999;
    assert.equal((await store.slidingHit('s', 1000, 3)).count, 4, 'still refused 1ms before the oldest hit leaves');
    t = 11_000;
    assert.deepEqual(await store.slidingHit('s', 1000, 3), { count: 3, resetMs: 100 }, 'the oldest left: admitted, refusals were not recorded');
    t = 11_050;
    assert.equal((await store.slidingHit('s', 1000, 3)).count, 4);
  });
});

describe('memory store bound', () => {
  test('holds at most maxEntries keys, evicts the least recently used first and counts each eviction', async () => {
    let evicted = 0;
    const store = createMemoryStore({ maxEntries: 100, onEvict: () => evicted++ });
    try {
      for (let i = 0; i < 100; i++) await store.set(`k${i}`, 'v', { ttlMs: 60_000 });
      assert.equal(await store.get('k0'), 'v', 'k0 read: now the most recently used');
      for (let i = 100; i < 150; i++) await store.set(`k${i}`, 'v', { ttlMs: 60_000 });
      assert.equal(evicted, 50);
      assert.equal(await store.get('k0'), 'v', 'the recently read key survived');
      assert.equal(await store.get('k1'), undefined, 'the least recently used went first');
      assert.equal(await store.get('k149'), 'v');
      let present = 0;
      for (let i = 0; i < 150; i++) if ((await store.get(`k${i}`)) !== undefined) present++;
      assert.equal(present, 100);
    } finally {
      await store.close();
    }
  });

  test('counters and sliding logs are bounded too: a flood of distinct callers cannot grow the heap without end', async () => {
    let evicted = 0;
    const store = createMemoryStore({ maxEntries: 100, onEvict: () => evicted++ });
    try {
      for (let i = 0; i < 1000; i++) {
        await store.incr(`c${i}`, 60_000);
        await store.slidingHit(`s${i}`, 60_000, 5);
      }
      assert.equal(evicted, 1800, '900 counters and 900 logs made room for newer ones');
      assert.equal((await store.incr('c999', 60_000)).count, 2, 'a recent counter kept counting');
    } finally {
      await store.close();
    }
  });

  test('expiry is not eviction: entries that time out are not counted', async () => {
    let t = 0;
    let evicted = 0;
    const store = createMemoryStore({ now: () => t, maxEntries: 100, onEvict: () => evicted++ });
    try {
      for (let i = 0; i < 50; i++) await store.set(`e${i}`, 'v', { ttlMs: 10 });
      t = 20;
      for (let i = 0; i < 50; i++) assert.equal(await store.get(`e${i}`), undefined);
      assert.equal(evicted, 0);
    } finally {
      await store.close();
    }
  });
});

describe('redis store (shared Redis)', () => {
  let store: RedisStore;
  before(async () => {
    const url = await requireSharedRedis();
    store = await createRedisStore({ url, prefix: uniquePrefix('store') });
    await waitFor(() => store.ping(), 5000, 'the shared Redis');
  });
  after(() => store?.close());

  test('get/set/del with prefix, TTL and onlyIfAbsent', async () => {
    assert.equal(await store.set('a', 'x', { ttlMs: 5000, onlyIfAbsent: true }), true);
    assert.equal(await store.set('a', 'y', { onlyIfAbsent: true }), false);
    assert.equal(await store.get('a'), 'x');
    assert.equal(await store.command(['GET', `${store.prefix}a`]), 'x', 'keys carry the store prefix');
    await store.del('a');
    assert.equal(await store.get('a'), undefined);
  });

  test('incr sets the window TTL on first use only', async () => {
    const first = await store.incr('w', 5000);
    assert.equal(first.count, 1);
    assert.ok(first.ttlMs > 4000 && first.ttlMs <= 5000);
    assert.equal((await store.incr('w', 99_000)).count, 2);
    assert.ok((await store.command<number>(['PTTL', `${store.prefix}w`])) <= 5000, 'a later call does not extend the window');
  });

  test('slidingHit is exact under concurrency and never records refused hits', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, () => store.slidingHit('burst', 60_000, 10)));
    assert.equal(results.filter((r) => r.count <= 10).length, 10, 'exactly the limit admitted');
    assert.deepEqual([...new Set(results.filter((r) => r.count <= 10).map((r) => r.count))].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(results.every((r) => r.count <= 10 || r.count === 11));
    assert.equal(await store.command(['ZCARD', `${store.prefix}burst`]), 10);
    const last = results.find((r) => r.count === 11)!;
    assert.ok(last.resetMs > 55_000 && last.resetMs <= 60_000, `resetMs ${last.resetMs}`);
  });

  test('slidingHit frees a slot when the oldest hit leaves the window', async () => {
    assert.equal((await store.slidingHit('slide', 1000, 1)).count, 1);
    const refused = await store.slidingHit('slide', 1000, 1);
    assert.equal(refused.count, 2);
    await new Promise((r) => setTimeout(r, refused.resetMs + 50));
    assert.equal((await store.slidingHit('slide', 1000, 1)).count, 1);
  });
});

describe('redis store against a Redis that dies, hangs and comes back', () => {
  let redis: RedisChild;
  let store: RedisStore;
  before(async () => {
    redis = await startRedisServer();
    store = await createRedisStore({ url: redis.url, prefix: uniquePrefix('outage'), commandTimeoutMs: 200 });
    await waitFor(() => store.ping(), 5000, 'the private Redis');
  });
  after(async () => {
    await store?.close();
    redis?.resume();
    await redis?.stop();
  });

  test('reloads its scripts when Redis lost them (restart without persistence)', async () => {
    assert.equal((await store.slidingHit('s', 60_000, 5)).count, 1);
    await store.command(['SCRIPT', 'FLUSH']);
    assert.equal((await store.slidingHit('s', 60_000, 5)).count, 2);
    assert.equal((await store.incr('i', 60_000)).count, 1);
  });

  test('a hung Redis (SIGSTOP) yields StoreUnavailable within the command timeout; close() does not hang', async () => {
    const other = await createRedisStore({ url: redis.url, prefix: uniquePrefix('hung'), commandTimeoutMs: 200 });
    await waitFor(() => other.ping(), 5000, 'second client');
    redis.pause();
    try {
      const [r, ms] = await elapsed(() => store.incr('h', 1000));
      assert.ok(rejectedWith(r, StoreUnavailable), 'StoreUnavailable');
      assert.ok(ms >= 150 && ms < 1500, `failed after ${ms}ms (timeout 200ms)`);
      assert.equal(await store.ping(), false);
      const [pending] = await elapsed(() => other.get('never-answered'));
      assert.ok(rejectedWith(pending, StoreUnavailable), 'the second client now has a reply outstanding');
      const [, closeMs] = await elapsed(() => other.close());
      assert.ok(closeMs < 1000, `close took ${closeMs}ms`);
    } finally {
      redis.resume();
    }
    await waitFor(() => store.ping(), 5000, 'Redis to answer again');
  });

  test('a dead Redis fails every operation fast; the client reconnects when it is back', async () => {
    await redis.stop();
    await waitFor(async () => !(await store.ping()), 5000, 'the store to notice');
    const ops: Array<[string, () => Promise<unknown>]> = [
      ['get', () => store.get('k')],
      ['set', () => store.set('k', 'v')],
      ['incr', () => store.incr('k', 1000)],
      ['slidingHit', () => store.slidingHit('k', 1000, 1)],
    ];
    for (const [name, op] of ops) {
      const [r, ms] = await elapsed(op);
      assert.ok(rejectedWith(r, StoreUnavailable), `${name}: StoreUnavailable`);
      assert.ok(ms < 500, `${name} failed after ${ms}ms`);
    }
    await redis.start();
    await waitFor(() => store.ping(), 10_000, 'the client to reconnect');
    assert.equal((await store.slidingHit('after-restart', 60_000, 5)).count, 1, 'scripts are loaded again on the fresh server');
  });

  test('a store created while Redis is down serves once Redis starts', async () => {
    await redis.stop();
    const late: Store = await createRedisStore({ url: redis.url, prefix: uniquePrefix('late'), commandTimeoutMs: 200 });
    try {
      const [r, ms] = await elapsed(() => late.incr('x', 1000));
      assert.ok(rejectedWith(r, StoreUnavailable));
      assert.ok(ms < 500);
      await redis.start();
      await waitFor(() => late.ping(), 10_000, 'first connection');
      assert.equal((await late.incr('x', 1000)).count, 1);
    } finally {
      await late.close();
    }
  });
});

describe('which errors are store failures (they alone take a policy\'s failMode)', () => {
  test('StoreUnavailable and Redis error replies are; faults and look-alikes are not', async () => {
    const { ErrorReply } = await import('redis');
    assert.equal(isStoreFailure(new StoreUnavailable('down')), true);
    assert.equal(isStoreFailure(new ErrorReply('OOM command not allowed when used memory > maxmemory')), true);
    class LookAlike extends Error {
      override name = 'ErrorReply';
    }
    for (const fault of [new TypeError('x is not a function'), new RangeError('bad'), new LookAlike('OOM'), { name: 'ErrorReply', message: 'OOM' }, 'StoreUnavailable', undefined, null]) {
      assert.equal(isStoreFailure(fault), false, String((fault as Error)?.name ?? fault));
    }
  });

  test('before a redis store is created no Redis error is one: the gateway never loaded that client', async () => {
    const url = await requireSharedRedis();
    // A fresh process, as a gateway on the memory store: the redis library another module might load is not the store's.
    const code = `
      const { isStoreFailure, createStore } = await import('./gateway/store/index.ts');
      const { ErrorReply } = await import('redis');
      const memory = await createStore({ kind: 'memory' });
      const before = isStoreFailure(new ErrorReply('OOM'));
      const redis = await createStore({ kind: 'redis', url: process.env.HCGW_TEST_REDIS });
      const after = isStoreFailure(new ErrorReply('OOM'));
      // Closed once connected: a client destroyed while it is still connecting keeps its socket (node-redis 5).
      for (let i = 0; i < 100 && !(await redis.ping()); i++) await new Promise((r) => setTimeout(r, 50));
      await Promise.all([memory.close(), redis.close()]);
      process.stdout.write(JSON.stringify({ before, after }));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { env: { ...process.env, HCGW_TEST_REDIS: url }, encoding: 'utf8', timeout: 30_000 });
    assert.deepEqual(JSON.parse(out), { before: false, after: true });
  });
});
