import { createHash, timingSafeEqual } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWK } from 'jose';
import { InvalidToken, ServiceUnavailable, StoreUnavailable, clientCertificate, type Exchange, type Store, type TrustedIssuer } from '../../gateway/sdk/index.ts';

/** How the access token arrived: `Authorization: Bearer …` or `Authorization: DPoP …` (RFC 9449 §7.1). */
export type TokenScheme = 'bearer' | 'dpop';

const DEFAULT_ALGS = ['ES256', 'PS256', 'RS256', 'EdDSA'];

/** The DPoP challenge (RFC 9449 §7.1): names the proof algorithms the route's issuers accept. */
export function dpopChallenge(trusted: readonly TrustedIssuer[]): string {
  const algs = [...new Set(trusted.flatMap((t) => t.config.dpop?.algorithms ?? DEFAULT_ALGS))];
  return `DPoP algs="${algs.join(' ')}"`;
}

/**
 * RFC 9449 / RFC 8705 errors: 401 with a DPoP challenge carrying `invalid_dpop_proof` (the proof is
 * wrong) or `invalid_token` (the token is not bound as it must be, or not to this sender). The
 * description is one of our fixed sentences: nothing from the token or the proof is echoed.
 */
function refusal(challenge: string, error: 'invalid_dpop_proof' | 'invalid_token', reason: string, description: string) {
  return new InvalidToken({ reason, detail: description, headers: { 'WWW-Authenticate': `${challenge}, error="${error}", error_description="${description}"` } });
}

const b64sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('base64url');
const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** The request URI a proof must name (RFC 9449 §4.3: without query and fragment). */
function requestUri(ex: Exchange): string {
  const req = ex.req as Exchange['req'] & { protocol?: string };
  // express's req.protocol honours X-Forwarded-Proto only under the explicit trustProxy setting.
  const scheme = req.protocol ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
  const path = (req.url ?? '/').split('?')[0];
  return `${scheme}://${req.headers.host ?? ''}${path}`;
}

function normalisedUri(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return undefined;
  try {
    const u = new URL(uri);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return undefined;
  }
}

export interface SenderConstraintDeps {
  store: Store;
  now: () => number;
  /** A replay check could not be made (store down): the proof is refused (fail closed). */
  onStoreError(err: unknown): void;
}

/**
 * Holds a verified access token to its binding: a `cnf.jkt` token needs a valid DPoP proof by that key,
 * a `cnf["x5t#S256"]` token the TLS client certificate of that thumbprint, and an issuer with
 * `senderConstraint: required` accepts no unbound token. A proof's `jti` is remembered in the store
 * (Redis when configured, so every instance sees it) for twice the iat window: a replayed proof is refused.
 */
export function createSenderConstraint(trusted: readonly TrustedIssuer[], deps: SenderConstraintDeps) {
  const challenge = dpopChallenge(trusted);
  const refuse = (error: 'invalid_dpop_proof' | 'invalid_token', reason: string, description: string) => refusal(challenge, error, reason, description);

  async function checkProof(ex: Exchange, token: string, jkt: string, issuer: TrustedIssuer): Promise<void> {
    const header = ex.req.headersDistinct?.dpop ?? (ex.req.headers.dpop === undefined ? [] : [String(ex.req.headers.dpop)]);
    if (header.length !== 1) throw refuse('invalid_dpop_proof', 'dpop-proof-count', 'Exactly one DPoP proof is required');
    const proof = header[0];
    const algorithms = issuer.config.dpop?.algorithms ?? DEFAULT_ALGS;
    const window = issuer.config.dpop?.iatWindowSec ?? 60;
    let payload: Record<string, unknown>;
    let jwk: JWK;
    try {
      // typ, an embedded public jwk (jose's EmbeddedJWK refuses private keys), an allowed asymmetric alg, and the signature.
      const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms, currentDate: new Date(deps.now()) });
      payload = verified.payload;
      jwk = decodeProtectedHeader(proof).jwk as JWK;
    } catch (err) {
      if (err instanceof joseErrors.JOSEAlgNotAllowed) throw refuse('invalid_dpop_proof', 'dpop-alg', 'The DPoP proof algorithm is not allowed');
      throw refuse('invalid_dpop_proof', 'dpop-invalid', 'The DPoP proof is malformed or its signature is invalid');
    }
    if (typeof payload.htm !== 'string' || payload.htm !== ex.method) throw refuse('invalid_dpop_proof', 'dpop-htm', 'The DPoP proof is for another HTTP method');
    if (normalisedUri(payload.htu) !== normalisedUri(requestUri(ex))) throw refuse('invalid_dpop_proof', 'dpop-htu', 'The DPoP proof is for another URL');
    const nowSec = deps.now() / 1000;
    if (typeof payload.iat !== 'number' || Math.abs(nowSec - payload.iat) > window) throw refuse('invalid_dpop_proof', 'dpop-iat', 'The DPoP proof is too old or from the future');
    if (typeof payload.jti !== 'string' || !payload.jti || payload.jti.length > 256) throw refuse('invalid_dpop_proof', 'dpop-jti', 'The DPoP proof has no usable jti');
    if (typeof payload.ath !== 'string' || !same(payload.ath, b64sha256(token))) throw refuse('invalid_dpop_proof', 'dpop-ath', 'The DPoP proof is not bound to this access token');
    if (!same(await calculateJwkThumbprint(jwk, 'sha256'), jkt)) throw refuse('invalid_token', 'dpop-key-mismatch', 'The access token is bound to another key');
    let fresh: boolean;
    try {
      // Keyed by the key thumbprint too, so one client cannot block another's jti.
      fresh = await deps.store.set(`dpop-jti:${jkt}:${b64sha256(payload.jti)}`, '1', { ttlMs: window * 2 * 1000, onlyIfAbsent: true });
    } catch (err) {
      deps.onStoreError(err);
      if (err instanceof StoreUnavailable) throw new ServiceUnavailable({ reason: 'dpop-replay-store-unavailable', detail: 'The DPoP proof cannot be checked right now' });
      throw err;
    }
    if (!fresh) throw refuse('invalid_dpop_proof', 'dpop-replay', 'The DPoP proof was already used');
  }

  return {
    challenge,
    async check(ex: Exchange, token: string, scheme: TokenScheme, claims: Record<string, unknown>, issuer: TrustedIssuer): Promise<void> {
      const cnf = (claims.cnf && typeof claims.cnf === 'object' ? claims.cnf : {}) as Record<string, unknown>;
      const jkt = typeof cnf.jkt === 'string' ? cnf.jkt : undefined;
      const x5t = typeof cnf['x5t#S256'] === 'string' ? (cnf['x5t#S256'] as string) : undefined;
      if (jkt) {
        // RFC 9449 §7.1: a DPoP-bound token sent as a Bearer token is refused, whatever else is sent.
        if (scheme !== 'dpop') throw refuse('invalid_token', 'dpop-bound-as-bearer', 'A DPoP-bound access token must be sent with the DPoP scheme');
        await checkProof(ex, token, jkt, issuer);
      } else if (scheme === 'dpop') {
        throw refuse('invalid_token', 'dpop-unbound-token', 'The access token is not DPoP-bound');
      }
      if (x5t) {
        const cert = clientCertificate(ex.req);
        if (!cert || !same(b64sha256(cert), x5t)) throw refuse('invalid_token', 'mtls-cert-mismatch', 'The access token is bound to another client certificate');
      }
      if (!jkt && !x5t && issuer.config.senderConstraint === 'required') {
        throw refuse('invalid_token', 'sender-constraint-required', 'This issuer requires a sender-constrained (DPoP or mTLS-bound) access token');
      }
    },
  };
}
