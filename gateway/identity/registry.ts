import type { JWTVerifyGetKey } from 'jose';
import { createKeyResolver } from './keys.ts';
import { createIntrospector } from './introspection.ts';
import type { Principal } from '../sdk/types.ts';
import type { IssuerConfig } from '../config/types.ts';
import type { IdentityRegistry, TrustedIssuer } from './types.ts';
export type { IdentityRegistry, TrustedIssuer } from './types.ts';

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

