import { LRUCache } from 'lru-cache';
import { createHash } from 'node:crypto';
import type { Store } from '../store/types.ts';
import type { IssuerConfig } from '../config/types.ts';

/** The introspection endpoint could not give an answer (down, slow, refused our credentials, garbage). */
export class IntrospectionUnavailable extends Error {
  readonly code = 'ERR_INTROSPECTION_UNAVAILABLE';
  constructor(readonly why: string, options?: { cause?: unknown }) {
    super(`token introspection unavailable: ${why}`, options);
    this.name = 'IntrospectionUnavailable';
  }
}

/** Claims of an active token (RFC 7662 §2.2 response members), or null when the token is not active. */
export type IntrospectionAnswer = Record<string, unknown> | null;

export interface IntrospectionDeps {
  store: Store;
  now: () => number;
  /** Called when the shared cache fails; introspection then goes to the endpoint directly. */
  onCacheError?: (err: unknown) => void;
}

export interface Introspector {
  introspect(token: string, deps: IntrospectionDeps): Promise<IntrospectionAnswer>;
}

function localGet(cache: LRUCache<string, { value: string; expiresAt: number }>, key: string, now: number): string | undefined {
  const e = cache.get(key);
  if (e && e.expiresAt <= now) cache.delete(key);
  return e && e.expiresAt > now ? e.value : undefined;
}

/** RFC 6749 §2.3.1: client id and secret are form-urlencoded before going into HTTP Basic. */
const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');

/**
 * RFC 7662 client for one issuer. Answers are cached under a SHA-256 of the token (the token itself is
 * never a key or a value): in the shared store when it is Redis, so every instance benefits, otherwise
 * in a bounded in-process cache. Active answers live until the token's `exp` (at most cacheMaxTtlSec,
 * so a revocation is noticed); inactive ones for negativeCacheSec. Concurrent look-ups of one token
 * share one call.
 */
export function createIntrospector(c: IssuerConfig): Introspector {
  const cfg = c.introspection!;
  const authorization = `Basic ${Buffer.from(`${formEncode(cfg.clientId)}:${formEncode(cfg.clientSecret)}`).toString('base64')}`;
  const timeoutMs = cfg.timeoutMs ?? 2000;
  const maxTtlMs = (cfg.cacheMaxTtlSec ?? 300) * 1000;
  const negativeTtlMs = (cfg.negativeCacheSec ?? 10) * 1000;
  // Bounded in entries (least recently used first) and in time; the TTL is ours per answer, on the injected clock.
  const local = new LRUCache<string, { value: string; expiresAt: number }>({ max: cfg.cacheMaxEntries ?? 10_000 });
  const inflight = new Map<string, Promise<IntrospectionAnswer>>();

  const call = async (token: string): Promise<IntrospectionAnswer> => {
    let res: Response;
    try {
      res = await fetch(cfg.url, {
        method: 'POST',
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
    } catch (err) {
      throw new IntrospectionUnavailable((err as Error)?.name === 'TimeoutError' ? 'timeout' : 'unreachable', { cause: err });
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new IntrospectionUnavailable(`status ${res.status}`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      throw new IntrospectionUnavailable('malformed response', { cause: err });
    }
    if (!body || typeof body !== 'object' || typeof (body as { active?: unknown }).active !== 'boolean') throw new IntrospectionUnavailable('malformed response');
    return (body as { active: boolean }).active ? (body as Record<string, unknown>) : null;
  };

  const ttlFor = (answer: IntrospectionAnswer, now: number): number => {
    if (!answer) return negativeTtlMs;
    const exp = answer.exp;
    return typeof exp === 'number' ? Math.min(exp * 1000 - now, maxTtlMs) : maxTtlMs;
  };

  return {
    async introspect(token, deps) {
      const key = `introspection:${c.name}:${createHash('sha256').update(token).digest('base64url')}`;
      const shared = deps.store.kind === 'redis' ? deps.store : undefined;
      let cached: string | undefined;
      try {
        cached = shared ? await shared.get(key) : localGet(local, key, deps.now());
      } catch (err) {
        deps.onCacheError?.(err);
      }
      if (cached !== undefined) return JSON.parse(cached) as IntrospectionAnswer;

      let pending = inflight.get(key);
      if (!pending) {
        const remember = async (answer: IntrospectionAnswer) => {
          const now = deps.now();
          const ttl = ttlFor(answer, now);
          if (ttl <= 0) return answer;
          const value = JSON.stringify(answer);
          if (!shared) local.set(key, { value, expiresAt: now + ttl });
          else await shared.set(key, value, { ttlMs: ttl }).catch((err: unknown) => deps.onCacheError?.(err));
          return answer;
        };
        pending = call(token).then(remember).finally(() => inflight.delete(key));
        inflight.set(key, pending);
      }
      return pending;
    },
  };
}
