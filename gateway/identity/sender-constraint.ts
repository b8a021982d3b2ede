/**
 * Per-issuer settings for sender-constrained access tokens (DPoP, RFC 9449; mTLS-bound, RFC 8705),
 * spliced into `identity.issuers[]` by gateway/config/schema.ts. The checks live in policies/jwt.
 */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA'] as const;

export const senderConstraintProperties = {
  senderConstraint: {
    enum: ['required', 'optional'],
    default: 'optional',
    description:
      'required: every token of this issuer must be DPoP- or mTLS-bound (cnf.jkt / cnf["x5t#S256"]); optional: plain Bearer tokens pass too. A bound token is always held to its binding',
  },
  dpop: {
    type: 'object',
    additionalProperties: false,
    default: {},
    description: 'How DPoP proofs are checked',
    properties: {
      algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: DPOP_ALGORITHMS }, default: ['ES256', 'PS256', 'RS256', 'EdDSA'], description: 'Proof signature algorithms accepted (asymmetric only)' },
      iatWindowSec: { type: 'integer', minimum: 1, maximum: 600, default: 60, description: 'A proof is accepted only within this many seconds of its iat (either side)' },
    },
  },
} as const;

export interface SenderConstraintConfig {
  senderConstraint?: 'required' | 'optional';
  dpop?: { algorithms?: string[]; iatWindowSec?: number };
}
