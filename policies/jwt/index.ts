import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { PolicyConfigError } from '../../gateway/config/errors.ts';
import { InvalidToken, Unauthorized } from '../../gateway/errors.ts';
import type { Policy, Principal } from '../../gateway/types.ts';

export interface JwtConfig {
  issuers: string[];
}

const CHALLENGE = 'Bearer realm="hcgw"';
const invalid = (reason: string, description: string) =>
  new InvalidToken({ reason, headers: { 'WWW-Authenticate': `${CHALLENGE}, error="invalid_token", error_description="${description}"` } });

/** jose error codes → our stable reasons; the token's contents never reach the message. */
function reasonOf(err: unknown): [string, string] {
  if (err instanceof joseErrors.JWTExpired) return ['expired', 'The access token expired'];
  if (err instanceof joseErrors.JWTClaimValidationFailed) return [`claim-${err.claim}`, `The ${err.claim} claim is not acceptable`];
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return ['alg-not-allowed', 'The token algorithm is not allowed'];
  if (err instanceof joseErrors.JWKSNoMatchingKey) return ['unknown-kid', 'No matching signing key'];
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return ['bad-signature', 'Signature verification failed'];
  if (err instanceof joseErrors.JWKSTimeout || (err as { code?: string })?.code === 'ERR_JOSE_GENERIC') return ['keys-unavailable', 'Signing keys unavailable'];
  return ['malformed', 'The access token is malformed'];
}

function scopesOf(p: JWTPayload): string[] {
  const s = (p.scope ?? p.scp) as unknown;
  if (typeof s === 'string') return s.split(' ').filter(Boolean);
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
  return [];
}

export const jwtPolicy: Policy<JwtConfig> = {
  name: 'jwt',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['issuers'],
    properties: {
      issuers: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: { type: 'string' },
        description: 'Names of `identity.issuers` entries this route trusts; tokens from any other issuer are refused',
      },
    },
  },
  create(config, ctx) {
    const trusted = config.issuers.map((name, i) => {
      const t = ctx.identity.get(name);
      if (!t) throw new PolicyConfigError(`unknown issuer "${name}" (not in identity.issuers)`, `issuers[${i}]`);
      return t;
    });
    const byIss = new Map(trusted.map((t) => [t.config.issuer, t]));

    return {
      async onRequest(ex) {
        const auth = ex.req.headers.authorization;
        if (typeof ex.query.get('access_token') === 'string') throw invalid('token-in-query', 'Tokens are accepted only in the Authorization header');
        if (!auth) throw new Unauthorized({ reason: 'missing-token', headers: { 'WWW-Authenticate': CHALLENGE } });
        const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(auth);
        if (!m) throw invalid('not-bearer', 'Expected a Bearer token');
        const token = m[1];
        let iss: string | undefined;
        let alg: string | undefined;
        try {
          iss = decodeJwt(token).iss;
          alg = decodeProtectedHeader(token).alg;
        } catch {
          throw invalid('malformed', 'The access token is malformed');
        }
        const issuer = iss === undefined ? undefined : byIss.get(iss);
        if (!issuer) throw invalid('untrusted-issuer', 'The token issuer is not trusted for this route');
        const c = issuer.config;
        if (!alg || !c.algorithms.includes(alg)) throw invalid('alg-not-allowed', 'The token algorithm is not allowed');
        let payload: JWTPayload;
        try {
          ({ payload } = await jwtVerify(token, issuer.getKey as Parameters<typeof jwtVerify>[1], {
            issuer: c.issuer,
            audience: c.audiences,
            algorithms: c.algorithms,
            clockTolerance: c.clockToleranceSec ?? 30,
            requiredClaims: ['exp', ...(c.requiredClaims ?? [])],
          }));
        } catch (err) {
          const [reason, description] = reasonOf(err);
          throw invalid(reason, description);
        }
        const principal: Principal = {
          issuer: c.issuer,
          issuerName: c.name,
          subject: String(payload.sub ?? ''),
          clientId: (payload.client_id ?? payload.azp ?? payload.cid) as string | undefined,
          scopes: scopesOf(payload),
          patient: typeof payload.patient === 'string' ? payload.patient : undefined,
          fhirUser: typeof payload.fhirUser === 'string' ? payload.fhirUser : undefined,
          claims: payload as Record<string, unknown>,
        };
        ex.principal = principal;
      },
    };
  },
};

export default jwtPolicy;
