/** routes.yaml texts for the benchmark rows. */

export function bareYaml(upstream: string): string {
  return `version: 1
upstreams:
  up: { url: ${upstream}/fhir }
routes:
  - { id: patient, layer: system, match: { methods: [GET], path: /fhir/Patient/:id }, target: { upstream: up, path: /Patient/:id } }
  - { id: observations, layer: system, match: { methods: [GET], path: /fhir/Observation }, target: { upstream: up, path: /Observation } }
`;
}

/**
 * Express Gateway's two-policy chain: jwt with a static RS256 public key (no JWKS endpoint) + a rate limit
 * on the memory store (a quota high enough never to refuse), in front of a plain proxy.
 */
export function jwtRateLimitYaml(upstream: string, jwk: Record<string, unknown>): string {
  const policies = `policies: [{ jwt: { issuers: [bench-idp] } }, { rate-limit: { key: client, limit: 100000000, window: 1m } }]`;
  return `version: 1
store: { kind: memory }
identity:
  issuers:
    - { name: bench-idp, issuer: https://bench-idp.local, keys: [${JSON.stringify(jwk)}], audiences: [hcgw-bench], algorithms: [RS256] }
upstreams:
  up: { url: ${upstream}/fhir }
routes:
  - { id: patient, layer: system, match: { methods: [GET], path: /fhir/Patient/:id }, target: { upstream: up, path: /Patient/:id }, ${policies} }
  - { id: observations, layer: system, match: { methods: [GET], path: /fhir/Observation }, target: { upstream: up, path: /Observation }, ${policies} }
`;
}

export interface FullChainOptions {
  upstream: string;
  jwks: string;
  store: 'redis' | 'memory';
  redisUrl: string;
  auditFile: string;
  /** OTLP/HTTP traces endpoint: tracing on (telemetry.otlp); absent: off, the default. */
  otlpUrl?: string;
}

/**
 * The full chain of the issue: jwt (RS256, warm JWKS) + scopes (SMART) + rate-limit (on the configured
 * store; a quota high enough never to refuse, so the row measures the limiter's cost) + validate + minimize
 * (on the Patient and on the 50-entry Bundle) + audit to a file.
 */
export function fullChainYaml(o: FullChainOptions): string {
  const chain = (kind: 'read' | 'search') => `
    policies:
      - audit: {}
      - jwt: { issuers: [bench-idp] }
      - scopes: { smart: true }
      - rate-limit: { key: client, limit: 100000000, window: 1m }
      - validate:
          ${kind === 'read' ? 'params: { type: object, properties: { id: { type: string, pattern: "^[A-Za-z0-9.-]{1,64}$" } } }' : 'query: { type: object, required: [patient], properties: { patient: { type: string, pattern: "^[A-Za-z0-9.-]{1,64}$" } } }'}
      - minimize: { purposeOfUse: { allowed: [TREAT] }, select: [{ profile: clinical }] }`;
  return `version: 1
${o.otlpUrl ? `telemetry: { otlp: { url: ${o.otlpUrl}, exportIntervalMs: 1000 } }\n` : ''}store: ${o.store === 'redis' ? `{ kind: redis, url: ${o.redisUrl}, prefix: "hcgw-bench:${Date.now()}:" }` : '{ kind: memory }'}
identity:
  issuers:
    - { name: bench-idp, issuer: https://bench-idp.local, jwksUri: ${o.jwks}, audiences: [hcgw-bench], algorithms: [RS256] }
audit:
  hashKey: bench-only-audit-hash-key-0123456789abcdef
  source: bench
  sinks: [{ kind: file, path: ${o.auditFile} }]
minimization:
  profiles:
    clinical:
      resources:
        Patient: [id, name, birthDate, gender, identifier, telecom, address]
        Observation: [id, status, category, code, subject, effectiveDateTime, valueQuantity]
upstreams:
  up: { url: ${o.upstream}/fhir }
routes:
  - id: patient
    layer: system
    match: { methods: [GET], path: /fhir/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: up, path: /Patient/:id }${chain('read')}
  - id: observations
    layer: system
    match: { methods: [GET], path: /fhir/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: up, path: /Observation }${chain('search')}
`;
}
