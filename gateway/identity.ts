import { createLocalJWKSet, createRemoteJWKSet, importJWK, importSPKI, type JWTVerifyGetKey, type JWK, type CryptoKey } from 'jose';
import type { IssuerConfig } from './types.ts';

export interface TrustedIssuer {
  readonly name: string;
  readonly config: Readonly<IssuerConfig>;
  /** Key resolver for jose's jwtVerify; remote JWKS is cached and refetched at most once per cooldown. */
  readonly getKey: JWTVerifyGetKey | (() => Promise<CryptoKey | Uint8Array>);
}

export interface IdentityRegistry {
  get(name: string): TrustedIssuer | undefined;
  /** Lookup by the token's `iss` claim. */
  byIssuer(iss: string): TrustedIssuer | undefined;
  names(): string[];
}

async function staticKeys(c: IssuerConfig): Promise<JWTVerifyGetKey> {
  const jwks: JWK[] = [];
  for (const k of c.keys ?? []) {
    if (typeof k === 'string') {
      // PEM: import once per allowed asymmetric algorithm, then expose as a local JWKS.
      const alg = c.algorithms.find((a) => !a.startsWith('HS')) ?? 'RS256';
      const key = await importSPKI(k, alg, { extractable: true });
      const { exportJWK } = await import('jose');
      jwks.push({ ...(await exportJWK(key)), alg });
    } else jwks.push(k as JWK);
  }
  return createLocalJWKSet({ keys: jwks });
}

/** Built once per config: JWKS clients live as long as the compiled router. */
export async function createIdentityRegistry(issuers: IssuerConfig[]): Promise<IdentityRegistry> {
  const byName = new Map<string, TrustedIssuer>();
  const byIss = new Map<string, TrustedIssuer>();
  for (const c of issuers) {
    let getKey: TrustedIssuer['getKey'];
    if (c.jwksUri) {
      getKey = createRemoteJWKSet(new URL(c.jwksUri), {
        cooldownDuration: c.jwksCooldownMs ?? 30_000,
        cacheMaxAge: c.jwksCacheMaxAgeMs ?? 600_000,
        timeoutDuration: 2000,
      });
    } else if (c.keys?.length) {
      getKey = await staticKeys(c);
    } else if (c.secret) {
      const secret = new TextEncoder().encode(c.secret);
      getKey = async () => secret;
    } else {
      getKey = async () => {
        throw new Error('issuer has no keys');
      };
    }
    const t: TrustedIssuer = Object.freeze({ name: c.name, config: Object.freeze({ ...c }), getKey });
    byName.set(c.name, t);
    byIss.set(c.issuer, t);
  }
  return {
    get: (n) => byName.get(n),
    byIssuer: (iss) => byIss.get(iss),
    names: () => [...byName.keys()],
  };
}

export { importJWK };
