import { LRUCache } from 'lru-cache';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyOptions, type KeyObject, type CryptoKey, type ProtectedHeaderParameters } from 'jose';
import { deepFreeze } from '../../gateway/lib/freeze.ts';
import { ServiceUnavailable, invalidToken, IntrospectionUnavailable, type GatewayError, type TrustedIssuer, type IntrospectionDeps } from '../../gateway/sdk/index.ts';

export interface Verified {
  claims: Record<string, unknown>;
  issuer: TrustedIssuer;
}

const unavailable = (reason: string, cause?: unknown) => new ServiceUnavailable({ reason, cause, detail: 'The access token cannot be checked right now' });

/** jose's error classes → our stable reasons; the token's contents never reach the message. */
function tokenError(err: unknown): GatewayError {
  if (err instanceof joseErrors.JWTExpired) return invalidToken('expired', 'The access token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) return invalidToken(`claim-${err.claim}`, `The ${err.claim} claim is not acceptable`);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return invalidToken('alg-not-allowed', 'The token algorithm is not allowed');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return invalidToken('unknown-kid', 'No matching signing key');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalidToken('bad-signature', 'Signature verification failed');
  // A JWKS that cannot be fetched (timeout, non-200, not JSON, network error): fail closed, but say so.
  if (err instanceof joseErrors.JWKSTimeout || (err as { code?: string })?.code === 'ERR_JOSE_GENERIC' || err instanceof TypeError) return unavailable('keys-unavailable', err);
  return invalidToken('malformed', 'The access token is malformed');
}

function options(issuer: TrustedIssuer, now: number): JWTVerifyOptions {
  const c = issuer.config;
  return {
    issuer: c.issuer,
    audience: c.audiences,
    algorithms: c.algorithms,
    clockTolerance: c.clockToleranceSec ?? 30,
    requiredClaims: ['exp', ...(c.requiredClaims ?? [])],
    currentDate: new Date(now),
  };
}

/** jose checks `iat` only together with maxTokenAge; a token issued in the future is refused here. */
function checkIssuedAt(payload: JWTPayload, issuer: TrustedIssuer, now: number): void {
  if (typeof payload.iat === 'number' && payload.iat > now / 1000 + (issuer.config.clockToleranceSec ?? 30)) {
    throw new joseErrors.JWTClaimValidationFailed('"iat" claim timestamp check failed (it should be in the past)', payload, 'iat', 'check_failed');
  }
}

/**
 * Verified tokens, per issuer: a client sends the same access token until it expires, and the signature
 * check (RSA/EC through WebCrypto) is the most expensive thing a request does. An entry remembers which
 * key object verified it; a hit is honoured only while the issuer's key resolver still yields that very
 * key for the token's header (a JWKS reload that dropped or replaced the key invalidates it) and while
 * the time claims still hold. Bounded in entries; never outlives the token's exp.
 */
const VERIFIED_CACHE_MAX = 10_000;
interface VerifiedEntry {
  payload: JWTPayload;
  key: unknown;
}
const verifiedCache = new WeakMap<TrustedIssuer, LRUCache<string, VerifiedEntry>>();

/**
 * A cache hit: the payload if the entry still holds, or else the key the resolver yields now (so a
 * miss does not resolve — and maybe fetch — the keys a second time).
 */
async function cachedVerification(token: string, header: ProtectedHeaderParameters, issuer: TrustedIssuer, now: number): Promise<{ payload?: JWTPayload; key?: unknown } | undefined> {
  const hit = verifiedCache.get(issuer)?.get(token);
  if (!hit) return undefined;
  const tolerance = issuer.config.clockToleranceSec ?? 30;
  const { exp, nbf } = hit.payload;
  if (typeof exp !== 'number' || exp <= now / 1000 - tolerance || (typeof nbf === 'number' && nbf > now / 1000 + tolerance)) return undefined;
  try {
    const key = await issuer.getKey!(header as never, { payload: '', signature: '' } as never);
    return key === hit.key ? { payload: hit.payload } : { key };
  } catch {
    return undefined; // the key is gone: verify from scratch (and fail there, with the right reason)
  }
}

function remember(token: string, issuer: TrustedIssuer, payload: JWTPayload, key: unknown): void {
  let cache = verifiedCache.get(issuer);
  if (!cache) verifiedCache.set(issuer, (cache = new LRUCache({ max: VERIFIED_CACHE_MAX })));
  cache.set(token, { payload, key });
}

async function verifyWith(token: string, header: ProtectedHeaderParameters, issuer: TrustedIssuer, now: number): Promise<JWTPayload> {
  const cached = await cachedVerification(token, header, issuer, now);
  if (cached?.payload) return cached.payload;
  const opts = options(issuer, now);
  try {
    let usedKey = cached?.key;
    const capture: typeof issuer.getKey = async (header, input) => usedKey ?? (usedKey = await issuer.getKey!(header, input));
    const { payload } = await jwtVerify(token, capture!, opts);
    checkIssuedAt(payload, issuer, now);
    // One payload object serves every request with this token: no policy may change it for the next one.
    remember(token, issuer, deepFreeze(payload), usedKey);
    return payload;
  } catch (err) {
    if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
    // Several configured keys fit the header (e.g. old and new PEM during a rotation): try each.
    for await (const key of err as unknown as AsyncIterable<CryptoKey | KeyObject>) {
      try {
        const { payload } = await jwtVerify(token, key, opts);
        checkIssuedAt(payload, issuer, now);
        return deepFreeze(payload);
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new joseErrors.JWSSignatureVerificationFailed();
  }
}

interface Decoded {
  iss: unknown;
  header: ProtectedHeaderParameters;
}
/**
 * The unverified `iss` and header of tokens that verified once: a client sends the same token until it
 * expires, and decoding it (two base64url decodes and JSON parses) is a pure function of its text. Only
 * tokens that verified are kept, so junk tokens cannot churn it; the header is frozen, as it is shared.
 */
const decodedTokens = new LRUCache<string, Decoded>({ max: VERIFIED_CACHE_MAX });

function decode(token: string): Decoded {
  try {
    return { iss: decodeJwt(token).iss, header: decodeProtectedHeader(token) };
  } catch {
    throw invalidToken('malformed', 'The access token is malformed');
  }
}

/**
 * A JWT from one of the route's trusted issuers. The issuer is chosen by the (unverified) `iss`, and
 * everything else — algorithm allow-list, signature, iss, aud, exp, nbf, iat, required claims — is
 * then checked against that issuer's configuration only.
 */
export async function verifyJwt(token: string, trusted: readonly TrustedIssuer[], now: number): Promise<Verified> {
  const known = decodedTokens.get(token);
  const { iss, header } = known ?? decode(token);
  const candidates = trusted.filter((t) => t.getKey && t.config.issuer === iss);
  if (!candidates.length) throw invalidToken('untrusted-issuer', 'The token issuer is not trusted for this route');
  let failure: unknown;
  for (const issuer of candidates) {
    if (typeof header.alg !== 'string' || !issuer.config.algorithms.includes(header.alg)) {
      failure = new joseErrors.JOSEAlgNotAllowed('algorithm not allowed');
      continue;
    }
    try {
      const claims = await verifyWith(token, header, issuer, now);
      if (!known) decodedTokens.set(token, deepFreeze({ iss, header }));
      return { claims, issuer };
    } catch (err) {
      failure = err;
    }
  }
  throw tokenError(failure);
}

/**
 * RFC 7662 answers are checked like JWT claims: an authorization server that reports a token active
 * past its exp, for another issuer, or for another audience is not believed.
 */
function checkIntrospected(claims: Record<string, unknown>, issuer: TrustedIssuer, now: number): void {
  const c = issuer.config;
  const tolerance = c.clockToleranceSec ?? 30;
  const seconds = now / 1000;
  const num = (k: string) => (typeof claims[k] === 'number' ? (claims[k] as number) : undefined);
  if (num('exp') !== undefined && num('exp')! <= seconds - tolerance) throw invalidToken('expired', 'The access token expired');
  if (num('nbf') !== undefined && num('nbf')! > seconds + tolerance) throw invalidToken('claim-nbf', 'The nbf claim is not acceptable');
  if (num('iat') !== undefined && num('iat')! > seconds + tolerance) throw invalidToken('claim-iat', 'The iat claim is not acceptable');
  if (claims.iss !== undefined && claims.iss !== c.issuer) throw invalidToken('claim-iss', 'The iss claim is not acceptable');
  if (c.audiences) {
    const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
    if (!aud.some((a) => c.audiences!.includes(a as string))) throw invalidToken('claim-aud', 'The aud claim is not acceptable');
  }
  if (typeof claims.token_type === 'string' && !/^bearer$/i.test(claims.token_type)) throw invalidToken('not-an-access-token', 'The token is not a Bearer access token');
  for (const name of c.requiredClaims ?? []) if (claims[name] === undefined) throw invalidToken(`claim-${name}`, `The ${name} claim is not acceptable`);
}

/**
 * An opaque token, asked of each trusted issuer that has introspection, in the route's order, until
 * one says it is active. Any endpoint that could not answer makes a "not active" answer unreliable: 503.
 */
export async function introspectToken(token: string, trusted: readonly TrustedIssuer[], deps: IntrospectionDeps): Promise<Verified> {
  const candidates = trusted.filter((t) => t.introspector);
  if (!candidates.length) throw invalidToken('malformed', 'The access token is malformed');
  let unreachable: IntrospectionUnavailable | undefined;
  for (const issuer of candidates) {
    try {
      const claims = await issuer.introspector!.introspect(token, deps);
      if (!claims) continue;
      checkIntrospected(claims, issuer, deps.now());
      return { claims, issuer };
    } catch (err) {
      if (!(err instanceof IntrospectionUnavailable)) throw err;
      unreachable = err;
    }
  }
  if (unreachable) throw unavailable('introspection-unavailable', unreachable);
  throw invalidToken('inactive', 'The access token is not active');
}
