import type { JWTVerifyGetKey } from 'jose';
import type { IssuerConfig } from '../config/types.ts';
import type { Introspector } from './introspection.ts';

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

