import type { Store } from './types.ts';

interface Entry {
  value: string;
  expiresAt: number;
}

/** Admitted hit times (ascending) of one sliding window. */
interface HitLog {
  hits: number[];
  windowMs: number;
}

/** Embedded single-process store. Expired entries are dropped lazily and by a periodic unref'd sweep. */
export function createMemoryStore(opts: { now?: () => number; sweepMs?: number } = {}): Store {
  const now = opts.now ?? Date.now;
  const data = new Map<string, Entry>();
  const logs = new Map<string, HitLog>();
  const live = (key: string): Entry | undefined => {
    const e = data.get(key);
    if (e && e.expiresAt <= now()) {
      data.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = setInterval(() => {
    const t = now();
    for (const [k, e] of data) if (e.expiresAt <= t) data.delete(k);
    for (const [k, l] of logs) if (!l.hits.length || l.hits[l.hits.length - 1] + l.windowMs <= t) logs.delete(k);
  }, opts.sweepMs ?? 30_000);
  sweep.unref();

  return {
    kind: 'memory',
    async get(key) {
      return live(key)?.value;
    },
    async set(key, value, o = {}) {
      if (o.onlyIfAbsent && live(key)) return false;
      data.set(key, { value, expiresAt: o.ttlMs ? now() + o.ttlMs : Infinity });
      return true;
    },
    async del(key) {
      data.delete(key);
    },
    async incr(key, ttlMs) {
      const e = live(key);
      if (!e) {
        data.set(key, { value: '1', expiresAt: now() + ttlMs });
        return { count: 1, ttlMs };
      }
      e.value = String(Number(e.value) + 1);
      return { count: Number(e.value), ttlMs: e.expiresAt - now() };
    },
    async slidingHit(key, windowMs, limit) {
      const t = now();
      let log = logs.get(key);
      if (!log) logs.set(key, (log = { hits: [], windowMs }));
      log.windowMs = windowMs;
      const hits = log.hits;
      let expired = 0;
      while (expired < hits.length && hits[expired] <= t - windowMs) expired++;
      if (expired) hits.splice(0, expired);
      const admitted = hits.length < limit;
      if (admitted) hits.push(t);
      return { count: admitted ? hits.length : hits.length + 1, resetMs: hits.length ? hits[0] + windowMs - t : windowMs };
    },
    async ping() {
      return true;
    },
    async close() {
      clearInterval(sweep);
      data.clear();
      logs.clear();
    },
  };
}
