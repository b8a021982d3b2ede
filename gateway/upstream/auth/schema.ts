/**
 * `upstreams.<name>.auth`: the credentials the gateway itself presents to an upstream (never the
 * caller's). Spliced into the upstream schema by gateway/config/schema.ts.
 */
const secret = (description: string) => ({ type: 'string', minLength: 1, 'x-secret': true, description });

/** How the gateway authenticates at a token endpoint: a client secret or an RFC 7523 signed assertion. */
const oauthClient = {
  tokenUrl: { type: 'string', format: 'uri', pattern: '^https?://', description: 'Token endpoint of the authorization server' },
  clientId: { type: 'string', minLength: 1, description: "The gateway's client id at the authorization server" },
  clientSecret: secret("The gateway's client secret (HTTP Basic, RFC 6749 §2.3.1); use ${env:…} or ${file:…}"),
  privateKeyJwt: {
    type: 'object',
    additionalProperties: false,
    required: ['keyFile'],
    description: 'RFC 7523 private_key_jwt client assertion (SMART Backend Services) instead of a secret',
    properties: {
      keyFile: { type: 'string', minLength: 1, description: 'PKCS#8 PEM private key (relative to routes.yaml)' },
      kid: { type: 'string', minLength: 1, description: 'Key id put in the assertion header (the AS finds the public key by it)' },
      alg: { enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'], default: 'RS256', description: 'Signing algorithm of the assertion' },
    },
  },
  scope: { type: 'string', minLength: 1, description: 'Space-separated scopes to request' },
  audience: { type: 'string', minLength: 1, description: 'Sent as the `audience` parameter (Auth0, Okta, RFC 8693)' },
  resource: { type: 'string', format: 'uri', description: 'Sent as the RFC 8707 `resource` parameter' },
  refreshSkewSec: { type: 'integer', minimum: 0, maximum: 3600, default: 30, description: 'A cached token is renewed this long before it expires (at most half its lifetime)' },
  timeoutMs: { type: 'integer', minimum: 1, maximum: 60000, default: 5000, description: 'Token endpoint timeout; a slow or failing endpoint gives 503, never a hang' },
} as const;

/** Exactly one of clientSecret / privateKeyJwt is checked when the upstream is built (ajv's strict mode refuses a oneOf of `required`). */
const oauthRequired = ['tokenUrl', 'clientId'];

const kinds = {
  'client-credentials': { required: oauthRequired, properties: { kind: {}, ...oauthClient } },
  'token-exchange': {
    required: oauthRequired,
    properties: {
      kind: {},
      ...oauthClient,
      requestedTokenType: { type: 'string', default: 'urn:ietf:params:oauth:token-type:access_token', description: 'requested_token_type parameter' },
      cacheMaxEntries: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000, description: 'Exchanged tokens cached per caller token (by hash) until shortly before expiry' },
    },
  },
  'api-key': {
    required: ['header', 'value'],
    properties: {
      kind: {},
      header: { type: 'string', pattern: '^[A-Za-z0-9-]+$', description: 'Header carrying the key, e.g. X-Api-Key' },
      value: secret('The key; use ${env:…} or ${file:…}'),
    },
  },
  basic: {
    required: ['username', 'password'],
    properties: {
      kind: {},
      username: { type: 'string', minLength: 1, pattern: '^[^:]*$', description: 'HTTP Basic user name (no colon)' },
      password: secret('HTTP Basic password; use ${env:…} or ${file:…}'),
    },
  },
} as const;

/** One branch per kind (if/then), so a mistake is reported against the kind the operator chose only. */
export const upstreamAuthSchema = {
  type: 'object',
  required: ['kind'],
  description: "Credentials the gateway presents to this upstream; the caller's Authorization header is never forwarded with them",
  properties: { kind: { enum: Object.keys(kinds), description: 'client-credentials, token-exchange (RFC 8693), api-key or basic' } },
  allOf: Object.entries(kinds).map(([kind, then]) => ({ if: { properties: { kind: { const: kind } } }, then: { additionalProperties: false, ...then } })),
};

export interface OAuthClientConfig {
  tokenUrl: string;
  clientId: string;
  clientSecret?: string;
  privateKeyJwt?: { keyFile: string; kid?: string; alg?: string };
  scope?: string;
  audience?: string;
  resource?: string;
  refreshSkewSec?: number;
  timeoutMs?: number;
}

export type UpstreamAuthConfig =
  | ({ kind: 'client-credentials' } & OAuthClientConfig)
  | ({ kind: 'token-exchange'; requestedTokenType?: string; cacheMaxEntries?: number } & OAuthClientConfig)
  | { kind: 'api-key'; header: string; value: string }
  | { kind: 'basic'; username: string; password: string };
