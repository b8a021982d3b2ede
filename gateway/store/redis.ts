import { createHash } from 'node:crypto';
import { createClient, ErrorReply } from 'redis';
import type { Logger } from 'winston';
import { recordErrorReply } from './failure.ts';
import { StoreUnavailable, type Store } from './types.ts';

// isStoreFailure (failure.ts) knows Redis's error replies from here on: this module loads only for a redis store.
recordErrorReply(ErrorReply);

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
  /**
   * Runs a raw command (keys are not prefixed) with the store's timeout. Connection trouble and timeouts
   * reject with StoreUnavailable; an error *reply* (NOSCRIPT, WRONGTYPE, …) is passed through unchanged,
   * because libraries such as rate-limit-redis react to it (NOSCRIPT → load the script again).
   */
  command<T = unknown>(args: string[]): Promise<T>;
}

/**
 * A hung Redis never answers, so its replies pile up in the client: past this many outstanding commands
 * new ones fail at once instead of growing memory without bound.
 */
const MAX_OUTSTANDING_COMMANDS = 10_000;

interface Script {
  text: string;
  sha: string;
}
const script = (text: string): Script => ({ text, sha: createHash('sha1').update(text).digest('hex') });

// INCR and PEXPIRE-on-first-use in one atomic step, so no counter is ever left without a TTL.
const INCR = script(`local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('PTTL', KEYS[1])
return {c, t}`);

// Sliding-window log in a sorted set scored by Redis's own clock (TIME), so gateway instances with skewed
// clocks still agree. Refused hits are not recorded. replicate_commands() lets Redis < 5 accept a write
// after TIME (a no-op on newer servers).
const SLIDING = script(`redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. ':' .. count)
  redis.call('PEXPIRE', KEYS[1], window)
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = math.ceil(tonumber(oldest[2]) + window - now) end
return {count + 1, reset}`);

const isNoScript = (err: unknown) => err instanceof ErrorReply && err.message.startsWith('NOSCRIPT');

/**
 * Commands fail fast while disconnected (no offline queue) and are bounded by a timeout, so a dead or hung
 * Redis produces StoreUnavailable quickly and the caller's fail mode decides; the client keeps reconnecting
 * in the background with capped backoff.
 */
export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const prefix = opts.prefix ?? 'hcgw:';
  const timeoutMs = opts.commandTimeoutMs ?? 250;
  const client = createClient({
    url: opts.url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_OUTSTANDING_COMMANDS,
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
      if (err instanceof StoreUnavailable || err instanceof ErrorReply) throw err;
      throw new StoreUnavailable(undefined, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  };
  /** For the store's own operations every failure is StoreUnavailable: callers branch on one error. */
  const run = <T>(args: string[]): Promise<T> =>
    command<T>(args).catch((err: unknown) => {
      throw err instanceof StoreUnavailable ? err : new StoreUnavailable('shared store refused the command', { cause: err });
    });
  /** EVALSHA, and EVAL once when the server lost its script cache (a restart): the script travels only then. */
  const evalScript = <T>(s: Script, key: string, args: string[]): Promise<T> =>
    command<T>(['EVALSHA', s.sha, '1', key, ...args]).catch((err: unknown) => {
      if (isNoScript(err)) return run<T>(['EVAL', s.text, '1', key, ...args]);
      throw err instanceof StoreUnavailable ? err : new StoreUnavailable('shared store refused the command', { cause: err });
    });
  const k = (key: string) => prefix + key;

  return {
    kind: 'redis',
    client,
    prefix,
    command,
    async get(key) {
      const v = await run<string | null>(['GET', k(key)]);
      return v ?? undefined;
    },
    async set(key, value, o = {}) {
      const args = ['SET', k(key), value];
      if (o.ttlMs) args.push('PX', String(Math.ceil(o.ttlMs)));
      if (o.onlyIfAbsent) args.push('NX');
      return (await run<string | null>(args)) === 'OK';
    },
    async del(key) {
      await run(['DEL', k(key)]);
    },
    async incr(key, ttlMs) {
      const [count, ttl] = await evalScript<[number, number]>(INCR, k(key), [String(Math.ceil(ttlMs))]);
      return { count: Number(count), ttlMs: Number(ttl) };
    },
    async slidingHit(key, windowMs, limit) {
      const [count, reset] = await evalScript<[number, number]>(SLIDING, k(key), [String(Math.ceil(windowMs)), String(limit)]);
      return { count: Number(count), resetMs: Number(reset) };
    },
    async ping() {
      try {
        return (await run<string>(['PING'])) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      // Not close(): it waits for outstanding replies, which a hung Redis never sends. The gateway drains its
      // requests before closing the store, so nothing that still matters is pending here.
      if (client.isOpen) client.destroy();
    },
  };
}
