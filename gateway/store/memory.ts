import type { Store } from './types.ts';

interface Entry {
  value: string;
  expiresAt: number;
}

/** Embedded single-process store. Expired entries are dropped lazily and by a periodic unref'd sweep. */
export function createMemoryStore(opts: { now?: () => number; sweepMs?: number } = {}): Store {
  const now = opts.now ?? Date.now;
  const data = new Map<string, Entry>();
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
    async ping() {
      return true;
    },
    async close() {
      clearInterval(sweep);
      data.clear();
    },
  };
}
