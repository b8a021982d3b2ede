import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyOptions, type KeyObject, type CryptoKey } from 'jose';
import { ServiceUnavailable, type GatewayError } from '../../gateway/errors.ts';
import { invalidToken, type TrustedIssuer } from '../../gateway/identity.ts';
import { IntrospectionUnavailable, type IntrospectionDeps } from '../../gateway/introspection.ts';

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

async function verifyWith(token: string, issuer: TrustedIssuer, now: number): Promise<JWTPayload> {
  const opts = options(issuer, now);
  try {
    const { payload } = await jwtVerify(token, issuer.getKey!, opts);
    checkIssuedAt(payload, issuer, now);
    return payload;
  } catch (err) {
    if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
    // Several configured keys fit the header (e.g. old and new PEM during a rotation): try each.
    for await (const key of err as unknown as AsyncIterable<CryptoKey | KeyObject>) {
      try {
        const { payload } = await jwtVerify(token, key, opts);
        checkIssuedAt(payload, issuer, now);
        return payload;
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new joseErrors.JWSSignatureVerificationFailed();
  }
}

/**
 * A JWT from one of the route's trusted issuers. The issuer is chosen by the (unverified) `iss`, and
 * everything else — algorithm allow-list, signature, iss, aud, exp, nbf, iat, required claims — is
 * then checked against that issuer's configuration only.
 */
export async function verifyJwt(token: string, trusted: readonly TrustedIssuer[], now: number): Promise<Verified> {
  let iss: unknown;
  let alg: unknown;
  try {
    iss = decodeJwt(token).iss;
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw invalidToken('malformed', 'The access token is malformed');
  }
  const candidates = trusted.filter((t) => t.getKey && t.config.issuer === iss);
  if (!candidates.length) throw invalidToken('untrusted-issuer', 'The token issuer is not trusted for this route');
  let failure: unknown;
  for (const issuer of candidates) {
    if (typeof alg !== 'string' || !issuer.config.algorithms.includes(alg)) {
      failure = new joseErrors.JOSEAlgNotAllowed('algorithm not allowed');
      continue;
    }
    try {
      return { claims: await verifyWith(token, issuer, now), issuer };
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
