import { createClient } from 'redis';
import type { Logger } from 'winston';
import { StoreUnavailable, type Store } from './types.ts';

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisStoreOptions {
  url: string;
  prefix?: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  logger?: Logger;
}

export interface RedisStore extends Store {
  readonly kind: 'redis';
  /** The single client shared by every user of the store (rate-limit-redis, idempotency, caches). */
  readonly client: RedisClient;
  readonly prefix: string;
  /** Runs a raw command with the store's timeout and error mapping. */
  command<T = unknown>(args: string[]): Promise<T>;
}

// INCR and PEXPIRE-on-first-use in one atomic step, so no counter is ever left without a TTL.
const INCR_SCRIPT = `local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('PTTL', KEYS[1])
return {c, t}`;

/**
 * Commands fail fast while disconnected (no offline queue) and are bounded by a timeout, so a dead Redis
 * produces StoreUnavailable quickly and the caller's fail mode decides; the client keeps reconnecting
 * in the background with capped backoff.
 */
export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const prefix = opts.prefix ?? 'hcgw:';
  const timeoutMs = opts.commandTimeoutMs ?? 250;
  const client = createClient({
    url: opts.url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: opts.connectTimeoutMs ?? 1000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
    },
  });
  let lastState = '';
  const note = (state: string, level: 'info' | 'warn', err?: unknown) => {
    if (state === lastState) return;
    lastState = state;
    opts.logger?.log(level, `redis store ${state}`, { error: err });
  };
  client.on('error', (err: unknown) => note('error', 'warn', err));
  client.on('ready', () => note('ready', 'info'));
  client.on('end', () => note('closed', 'info'));
  // Start connecting but do not wait: a gateway whose Redis is down at start still serves (fail modes).
  client.connect().catch((err: unknown) => note('connect-failed', 'warn', err));

  const command = async <T>(args: string[]): Promise<T> => {
    if (!client.isReady) throw new StoreUnavailable();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        client.sendCommand(args) as Promise<T>,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new StoreUnavailable('shared store timed out')), timeoutMs);
        }),
      ]);
    } catch (err) {
      throw err instanceof StoreUnavailable ? err : new StoreUnavailable(undefined, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  };
  const k = (key: string) => prefix + key;

  return {
    kind: 'redis',
    client,
    prefix,
    command,
    async get(key) {
      const v = await command<string | null>(['GET', k(key)]);
      return v ?? undefined;
    },
    async set(key, value, o = {}) {
      const args = ['SET', k(key), value];
      if (o.ttlMs) args.push('PX', String(Math.ceil(o.ttlMs)));
      if (o.onlyIfAbsent) args.push('NX');
      return (await command<string | null>(args)) === 'OK';
    },
    async del(key) {
      await command(['DEL', k(key)]);
    },
    async incr(key, ttlMs) {
      const [count, ttl] = await command<[number, number]>(['EVAL', INCR_SCRIPT, '1', k(key), String(Math.ceil(ttlMs))]);
      return { count: Number(count), ttlMs: Number(ttl) };
    },
    async ping() {
      try {
        return (await command<string>(['PING'])) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      if (client.isOpen) await client.quit().catch(() => client.destroy());
      else client.destroy();
    },
  };
}
