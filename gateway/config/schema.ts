/**
 * JSON Schema of routes.yaml: the single source of truth for its keys, defaults and descriptions
 * (docs/routes-reference.md documents the same keys). Policy configs are validated separately against
 * each policy's own `configSchema`, so here a policy entry is only "an object with one key".
 */
import { auditSectionSchema } from '../audit/schema.ts';
import { projectionSchema } from '../lib/projection.ts';
import { minimizationSchema } from '../../policies/minimize/profiles.ts';
import { telemetrySectionSchema } from '../ops/telemetry-schema.ts';
import { emitSchema, eventsSectionSchema } from '../events/config.ts';
import { legacySectionSchema } from '../legacy/schema.ts';
import { upstreamAuthSchema } from '../upstream/auth/schema.ts';
import { serverTlsSchema } from '../http/tls.ts';
import { senderConstraintProperties } from '../identity/sender-constraint.ts';
import { fhirSectionSchema } from '../fhir/schema.ts';
import { issuerDiscoveryProperties } from '../identity/discovery.ts';
import { edgeServerProperties } from '../http/edge-schema.ts';
import { debugDecisionsProperty } from '../tooling/debug-decisions.ts';
import { routeLintProperty } from '../tooling/lint/ids.ts';

const upstream = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', format: 'uri', pattern: '^https?://', description: 'Base URL; route target paths are appended to it' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 300000, default: 10000, description: 'Upstream response timeout (no bytes for this long → 504)' },
    connectTimeoutMs: { type: 'integer', minimum: 1, maximum: 60000, default: 2000, description: 'TCP/TLS connect timeout' },
    maxSockets: { type: 'integer', minimum: 1, maximum: 10000, default: 256, description: 'Connection limit to this upstream' },
    forwardAuthorization: { type: 'boolean', default: false, description: "Forward the client's Authorization header upstream (off: the gateway is the enforcement point)" },
    retries: {
      type: 'integer',
      minimum: 0,
      maximum: 5,
      default: 0,
      description: 'Retries after a connect error, timeout or 5xx, only for GET/HEAD/PUT/DELETE/OPTIONS (or keyed requests, see honorsIdempotencyKey)',
    },
    retryBackoffMs: { type: 'integer', minimum: 1, maximum: 10000, default: 100, description: 'Backoff base: retry n waits a random time in [0, min(retryBackoffMaxMs, retryBackoffMs × 2^(n-1))] (full jitter)' },
    retryBackoffMaxMs: { type: 'integer', minimum: 1, maximum: 60000, default: 2000, description: 'Cap of one backoff wait' },
    honorsIdempotencyKey: {
      type: 'boolean',
      default: false,
      description: 'The upstream deduplicates requests by their Idempotency-Key header, so POST/PATCH requests carrying one may be retried too',
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: {
        caFile: { type: 'string', description: 'PEM file of CA certificates to trust' },
        certFile: { type: 'string', description: 'Client certificate (PEM) for mTLS' },
        keyFile: { type: 'string', description: 'Client private key (PEM) for mTLS' },
        rejectUnauthorized: { type: 'boolean', default: true, description: 'Verify the upstream certificate' },
      },
    },
    circuitBreaker: {
      type: 'object',
      additionalProperties: false,
      required: ['failures'],
      description: 'Stop calling an upstream that keeps failing: open → 503 at once, no upstream call',
      properties: {
        failures: { type: 'integer', minimum: 1, maximum: 10000, description: 'Failures (connect errors, timeouts, 5xx) within windowMs that open the breaker' },
        windowMs: { type: 'integer', minimum: 100, maximum: 3600000, default: 10000, description: 'Sliding window in which failures are counted' },
        openMs: { type: 'integer', minimum: 100, maximum: 3600000, default: 5000, description: 'Time open before one half-open probe request is let through' },
      },
    },
    auth: upstreamAuthSchema,
  },
};

const issuer = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'issuer', 'algorithms'],
  properties: {
    name: { type: 'string', pattern: '^[a-zA-Z0-9_.-]+$', description: 'Name routes use to trust this issuer' },
    issuer: { type: 'string', minLength: 1, description: 'Exact `iss` claim value' },
    jwksUri: { type: 'string', format: 'uri', pattern: '^https?://', description: 'Remote JWKS (cached per Cache-Control within [jwksCooldownMs, jwksCacheMaxAgeMs]; refetched on unknown kid at most once per cooldown)' },
    keys: { type: 'array', items: { type: ['object', 'string'] }, description: 'Static public keys: JWK objects or PEM public keys/certificates (air-gapped setups)' },
    secret: { type: 'string', minLength: 32, 'x-secret': true, description: 'Shared secret; required for HS* algorithms, used for nothing else' },
    audiences: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'Accepted `aud` values (required: a route cannot trust an issuer without them, introspection-only ones included)' },
    algorithms: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512'] },
      description: 'Allowed JWS algorithms (never none)',
    },
    clockToleranceSec: { type: 'integer', minimum: 0, maximum: 300, default: 30, description: 'Clock skew allowed on exp, nbf and iat' },
    requiredClaims: { type: 'array', items: { type: 'string' }, default: [], description: 'Claims every token must carry (exp always is)' },
    jwksCooldownMs: { type: 'integer', minimum: 0, default: 30000, description: 'Minimum time between JWKS fetches (unknown kid, no-store responses)' },
    jwksCacheMaxAgeMs: { type: 'integer', minimum: 1000, default: 600000, description: 'Longest a fetched JWKS is used, whatever its Cache-Control says' },
    jwksTimeoutMs: { type: 'integer', minimum: 1, maximum: 60000, default: 2000, description: 'JWKS fetch timeout' },
    introspection: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'clientId', 'clientSecret'],
      description: 'RFC 7662 token introspection for opaque (non-JWT) tokens',
      properties: {
        url: { type: 'string', format: 'uri', pattern: '^https?://', description: 'Introspection endpoint' },
        clientId: { type: 'string', minLength: 1, description: "The gateway's client id at the authorization server (HTTP Basic)" },
        clientSecret: { type: 'string', minLength: 1, 'x-secret': true, description: "The gateway's client secret (HTTP Basic)" },
        cacheMaxEntries: { type: 'integer', minimum: 1, default: 10000, description: 'Bound of the in-process answer cache (the memory store); a Redis store is used instead when configured' },
        cacheMaxTtlSec: { type: 'integer', minimum: 0, maximum: 86400, default: 300, description: "Active answers are cached until the token's exp, but never longer than this (revocations show within it)" },
        negativeCacheSec: { type: 'integer', minimum: 0, maximum: 3600, default: 10, description: 'How long an inactive answer is cached' },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 60000, default: 2000, description: 'Introspection call timeout' },
      },
    },
    ...senderConstraintProperties,
    ...issuerDiscoveryProperties,
  },
};

const route = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'layer', 'match', 'target'],
  properties: {
    id: { type: 'string', pattern: '^[a-zA-Z0-9_.-]+$', description: 'Unique route id (metrics, audit, logs)' },
    layer: { enum: ['system', 'process', 'experience', 'event'], description: 'API layer (event: an inbound webhook, docs/events.md)' },
    description: { type: 'string' },
    match: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        methods: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] },
          default: ['GET'],
        },
        path: { type: 'string', pattern: '^/[A-Za-z0-9_.~:/{}*$-]*$', description: 'Path pattern; `:name` segments are parameters' },
      },
    },
    fhir: {
      type: 'object',
      additionalProperties: false,
      required: ['resourceType', 'interaction'],
      properties: {
        resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' },
        interaction: { enum: ['read', 'search', 'create', 'update', 'delete', 'patch', 'vread', 'history'] },
      },
      description: 'FHIR resource type and interaction of the route (SMART scopes, consent, audit)',
    },
    target: {
      type: 'object',
      description: 'system: {upstream, path}; process: {compose, merge}; experience: {route} or a system/process target',
    },
    project: projectionSchema,
    emit: emitSchema,
    ...routeLintProperty,
    policies: {
      type: 'array',
      default: [],
      items: { type: 'object', minProperties: 1, maxProperties: 1, description: 'One policy: `name: config`' },
    },
  },
};

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'routes'],
  properties: {
    version: { const: 1 },
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        host: { type: 'string', default: '127.0.0.1' },
        bodyLimit: { type: 'string', pattern: '^[0-9]+(b|kb|mb)$', default: '1mb' },
        trustProxy: { type: ['boolean', 'integer', 'string', 'array'], default: false, description: 'express trust proxy setting; explicit, off by default' },
        requestTimeoutMs: { type: 'integer', minimum: 1000, default: 30000, description: 'Whole-request timeout (slow bodies)' },
        headersTimeoutMs: { type: 'integer', minimum: 1000, default: 10000 },
        keepAliveTimeoutMs: { type: 'integer', minimum: 1000, default: 5000 },
        logLevel: { enum: ['error', 'warn', 'info', 'debug'], default: 'info' },
        tls: serverTlsSchema,
        ...edgeServerProperties,
        ...debugDecisionsProperty,
        admin: {
          type: 'object',
          additionalProperties: false,
          required: ['port'],
          properties: {
            port: { type: 'integer', minimum: 0, maximum: 65535 },
            host: { type: 'string', default: '127.0.0.1' },
            token: { type: 'string', minLength: 16, 'x-secret': true, description: 'Bearer token for the admin API' },
          },
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: { kind: 'memory' },
      required: ['kind'],
      properties: {
        kind: { enum: ['memory', 'redis'] },
        url: { type: 'string', pattern: '^rediss?://' },
        prefix: { type: 'string', default: 'hcgw:' },
        connectTimeoutMs: { type: 'integer', minimum: 1, default: 1000 },
        commandTimeoutMs: { type: 'integer', minimum: 1, default: 250 },
        maxEntries: {
          type: 'integer',
          minimum: 100,
          maximum: 10_000_000,
          default: 100_000,
          description: 'memory store only: most keys held; beyond it the least recently used are evicted (hcgw_store_evictions_total)',
        },
      },
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      default: { issuers: [] },
      properties: { issuers: { type: 'array', items: issuer, default: [] } },
    },
    upstreams: { type: 'object', default: {}, additionalProperties: upstream, propertyNames: { pattern: '^[a-zA-Z0-9_-]+$' } },
    plugins: { type: 'array', items: { type: 'string' }, default: [], description: 'Extra plugin modules: paths (relative to this file) or package names' },
    audit: auditSectionSchema,
    minimization: minimizationSchema,
    telemetry: telemetrySectionSchema,
    events: eventsSectionSchema,
    legacy: legacySectionSchema,
    fhir: fhirSectionSchema,
    sandbox: { type: 'object', description: 'Sandbox settings (npm start only)' },
    routes: { type: 'array', items: route },
  },
} as const;
