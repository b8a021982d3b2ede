import type { JWTVerifyGetKey } from 'jose';
import { InsufficientScope, InvalidToken, Unauthorized } from '../sdk/errors.ts';
import { createKeyResolver } from './keys.ts';
import { createIntrospector, type Introspector } from './introspection.ts';
import type { Exchange, IssuerConfig, Principal } from '../sdk/types.ts';

export interface TrustedIssuer {
  readonly name: string;
  readonly config: Readonly<IssuerConfig>;
  /** Key resolver for jose's jwtVerify (remote JWKS, static keys, shared secret); absent for introspection-only issuers. */
  readonly getKey?: JWTVerifyGetKey;
  /** RFC 7662 client for opaque tokens, when the issuer has `introspection`. */
  readonly introspector?: Introspector;
  /** Config mistakes found while building the issuer; every policy trusting it reports them at load. */
  readonly problems: readonly string[];
}

export interface IdentityRegistry {
  get(name: string): TrustedIssuer | undefined;
  names(): string[];
}

/**
 * Built once per compiled config: JWKS caches and introspection caches live as long as the router and
 * are shared by every route trusting the issuer. Never throws: the config may still hold schema errors
 * here, which the compiler reports together with ours.
 */
export async function createIdentityRegistry(issuers: IssuerConfig[]): Promise<IdentityRegistry> {
  const byName = new Map<string, TrustedIssuer>();
  for (const c of issuers) {
    if (!c || typeof c.name !== 'string') continue;
    const problems: string[] = byName.has(c.name) ? ['the name is used by more than one issuer'] : [];
    let getKey: JWTVerifyGetKey | undefined;
    try {
      getKey = createKeyResolver(c, problems);
    } catch (err) {
      problems.push(`cannot use its keys (${(err as Error).message})`);
    }
    const introspector = c.introspection ? createIntrospector(c) : undefined;
    byName.set(c.name, Object.freeze({ name: c.name, config: c, getKey, introspector, problems: Object.freeze(problems) }));
  }
  return {
    get: (n) => byName.get(n),
    names: () => [...byName.keys()],
  };
}

function scopesOf(claims: Record<string, unknown>): string[] {
  const s = claims.scope ?? claims.scp;
  if (typeof s === 'string') return s.split(' ').filter(Boolean);
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string' && x.length > 0);
  return [];
}

const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);

/**
 * Verified claims (JWT payload or introspection answer) → the principal later policies read. The SMART
 * `patient` context is kept as a bare id (`Patient/p1` and `p1` both give `p1`).
 */
export function principalFrom(claims: Record<string, unknown>, issuer: TrustedIssuer): Principal {
  const patient = str(claims.patient)?.replace(/^(?:.*\/)?Patient\//, '');
  return {
    issuer: issuer.config.issuer,
    issuerName: issuer.name,
    subject: str(claims.sub) ?? str(claims.username) ?? '',
    clientId: str(claims.client_id) ?? str(claims.azp) ?? str(claims.cid),
    scopes: scopesOf(claims),
    patient,
    encounter: str(claims.encounter)?.replace(/^(?:.*\/)?Encounter\//, ''),
    fhirUser: str(claims.fhirUser),
    claims,
  };
}

/** RFC 6750 challenge sent with every 401/403 of the identity policies. */
export const BEARER_CHALLENGE = 'Bearer realm="hcgw"';

/**
 * 401 invalid_token. `description` is one of our fixed sentences: nothing from the token reaches the
 * header or the problem body.
 */
export function invalidToken(reason: string, description: string): InstanceType<typeof InvalidToken> {
  return new InvalidToken({ reason, detail: description, headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="invalid_token", error_description="${description}"` } });
}

/** 403 insufficient_scope naming the scope(s) that would have been enough, in the header and the body. */
export function insufficientScope(scope: string, reason: string, detail = 'The access token does not carry the scope this request needs'): InstanceType<typeof InsufficientScope> {
  return new InsufficientScope({
    reason,
    detail,
    headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="insufficient_scope", scope="${scope}"` },
    extensions: { scope },
  });
}

/** The principal `jwt` put on the exchange; a policy placed without `jwt` before it refuses (fail closed). */
export function requirePrincipal(ex: Exchange): Principal {
  if (!ex.principal) throw new Unauthorized({ reason: 'no-principal', headers: { 'WWW-Authenticate': BEARER_CHALLENGE } });
  return ex.principal;
}
