import { LRUCache } from 'lru-cache';
import type { TokenAnswer } from './oauth-client.ts';

/** A token without `expires_in` is reused this long (RFC 6749 lets the server omit it). */
const UNDECLARED_LIFETIME_SEC = 60;

/**
 * Access tokens by key, each kept until `refreshSkewSec` (at most half its lifetime) before it expires.
 * lru-cache's fetch() makes the renewal single-flight: concurrent callers of one key share one token
 * request, and a failed request is not cached (the next caller tries again).
 */
export function createTokenCache(opts: { max: number; refreshSkewSec: number; fetch: (key: string, context: string) => Promise<TokenAnswer> }) {
  const cache = new LRUCache<string, string, string>({
    max: opts.max,
    ttl: UNDECLARED_LIFETIME_SEC * 1000,
    async fetchMethod(key, _stale, { options, context }) {
      const answer = await opts.fetch(key, context);
      const lifetime = answer.expiresIn ?? UNDECLARED_LIFETIME_SEC;
      options.ttl = Math.max(1, lifetime - Math.min(opts.refreshSkewSec, lifetime / 2)) * 1000;
      return answer.accessToken;
    },
  });
  return {
    async get(key: string, context = ''): Promise<string> {
      return (await cache.fetch(key, { context }))!;
    },
    /** The upstream refused `token`: forget it (unless a newer one already replaced it). */
    invalidate(key: string, token: string): void {
      if (cache.peek(key) === token) cache.delete(key);
    },
  };
}
