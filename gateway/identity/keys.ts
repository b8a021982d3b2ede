import { createPublicKey, type JsonWebKey as NodeJwk } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type JWK, type JWTVerifyGetKey } from 'jose';
import type { IssuerConfig } from '../config/types.ts';

/**
 * Signing-key resolvers for one issuer, handed to jose's jwtVerify. Symmetric and asymmetric keys are
 * kept apart by the token's `alg`, so an HS256 token can never be checked against an RSA public key
 * (the classic HS/RS confusion) and an RS256 token never against the shared secret.
 */

/** Milliseconds a JWKS response may be reused (RFC 9111 max-age minus Age); 0 for no-store/no-cache. */
export function cacheLifetimeMs(cacheControl: string | null, age: string | null): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  const maxAge = directives.map((d) => /^max-age=(\d+)$/.exec(d)?.[1]).find((v) => v !== undefined);
  if (maxAge === undefined) return undefined;
  const aged = Number(maxAge) - (age && /^\d+$/.test(age) ? Number(age) : 0);
  return Math.max(0, aged) * 1000;
}

/**
 * jose's remote JWKS caches for a fixed `cacheMaxAge` and ignores Cache-Control. We note the IdP's
 * max-age on every fetch (through jose's customFetch hook) and ask jose to reload once it has passed,
 * bounded below by the cooldown (a no-store IdP is not fetched per request) and above by
 * jwksCacheMaxAgeMs. If that early reload fails, the cached keys keep working until jose's own
 * cacheMaxAge: an IdP hiccup does not log everyone out. Unknown `kid`s still go through jose, which
 * refetches at most once per cooldown however many bogus kids arrive.
 */
function remoteKeys(c: IssuerConfig): JWTVerifyGetKey {
  const cooldownMs = c.jwksCooldownMs ?? 30_000;
  const maxAgeMs = c.jwksCacheMaxAgeMs ?? 600_000;
  let freshUntil = 0;
  const fetchNotingCacheHeaders = async (url: string, init: RequestInit) => {
    const res = await fetch(url, init);
    if (res.status === 200) {
      const lifetime = cacheLifetimeMs(res.headers.get('cache-control'), res.headers.get('age')) ?? maxAgeMs;
      freshUntil = Date.now() + Math.min(Math.max(lifetime, cooldownMs), maxAgeMs);
    }
    return res;
  };
  const jwks = createRemoteJWKSet(new URL(c.jwksUri!), {
    cooldownDuration: cooldownMs,
    cacheMaxAge: maxAgeMs,
    timeoutDuration: c.jwksTimeoutMs ?? 2000,
    [customFetch]: fetchNotingCacheHeaders,
  });
  // Whether jose holds a key set yet. Latched: jose never drops one once loaded, and asking (`jwks()`)
  // returns a structuredClone of the whole set, which on every request cost ~2 % of the full chain's CPU.
  let loaded = false;
  return async (header, token) => {
    loaded ||= jwks.jwks() !== undefined;
    if (loaded && Date.now() >= freshUntil) {
      await jwks.reload().catch(() => {
        freshUntil = Date.now() + cooldownMs;
      });
    }
    return jwks(header, token);
  };
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** A configured key as a public JWK, or a message saying why it cannot be one. */
function toPublicJwk(k: unknown): JWK | string {
  if (typeof k === 'string') {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k)) return 'is a private key; configure the public key (or certificate) only';
    try {
      return createPublicKey(k).export({ format: 'jwk' }) as JWK;
    } catch {
      return 'is not a PEM public key or certificate';
    }
  }
  const jwk = k as Record<string, unknown>;
  if (jwk.kty === 'oct') return 'is a symmetric key; put shared secrets in `secret`';
  if (PRIVATE_JWK_MEMBERS.some((m) => m in jwk)) return 'holds private key material; configure the public JWK only';
  try {
    createPublicKey({ key: jwk as NodeJwk, format: 'jwk' });
  } catch {
    return 'is not a usable public JWK';
  }
  return jwk as JWK;
}

/**
 * Static keys for air-gapped setups. A key without `kid` (every PEM) still verifies tokens that carry a
 * kid: the operator configured it, so it is trusted whatever the token calls it. Several kid-less keys of
 * one type (old and new during a rotation) make jose throw JWKSMultipleMatchingKeys, which the verifier
 * answers by trying each candidate.
 */
function staticKeys(c: IssuerConfig, problems: string[]): JWTVerifyGetKey | undefined {
  const jwks: JWK[] = [];
  (c.keys ?? []).forEach((k, i) => {
    const jwk = toPublicJwk(k);
    if (typeof jwk === 'string') problems.push(`keys[${i}] ${jwk}`);
    else jwks.push(jwk);
  });
  if (!jwks.length) return undefined;
  const withKid = jwks.filter((k) => k.kid !== undefined);
  const byKid = withKid.length ? createLocalJWKSet({ keys: withKid }) : undefined;
  const anyKidKeys = jwks.filter((k) => k.kid === undefined);
  const anyKid = anyKidKeys.length ? createLocalJWKSet({ keys: anyKidKeys }) : undefined;
  return async (header, token) => {
    if (byKid && (header.kid !== undefined || !anyKid)) {
      try {
        return await byKid(header, token);
      } catch (err) {
        if (!anyKid || !(err instanceof errors.JWKSNoMatchingKey)) throw err;
      }
    }
    if (!anyKid) throw new errors.JWKSNoMatchingKey();
    return anyKid({ ...header, kid: undefined }, token);
  };
}

/** The resolver for one issuer; `problems` collects config mistakes for the policies to report. */
export function createKeyResolver(c: IssuerConfig, problems: string[]): JWTVerifyGetKey | undefined {
  const asymmetric = c.jwksUri ? remoteKeys(c) : c.keys?.length ? staticKeys(c, problems) : undefined;
  const secret = c.secret ? new TextEncoder().encode(c.secret) : undefined;
  if (!asymmetric && !secret) return undefined;
  return async (header, token) => {
    if (header.alg?.startsWith('HS')) {
      if (!secret) throw new errors.JOSEAlgNotAllowed('no shared secret for this issuer');
      return secret;
    }
    if (!asymmetric) throw new errors.JWKSNoMatchingKey();
    return asymmetric(header, token);
  };
}
