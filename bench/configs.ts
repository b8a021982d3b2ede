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

export interface FullChainOptions {
  upstream: string;
  jwks: string;
  store: 'redis' | 'memory';
  redisUrl: string;
  auditFile: string;
}

export function fullChainYaml(o: FullChainOptions): string {
  return `version: 1
store: ${o.store === 'redis' ? `{ kind: redis, url: ${o.redisUrl}, prefix: "hcgw-bench:${Date.now()}:" }` : '{ kind: memory }'}
identity:
  issuers:
    - { name: bench-idp, issuer: https://bench-idp.local, jwksUri: ${o.jwks}, audiences: [hcgw-bench], algorithms: [RS256] }
upstreams:
  up: { url: ${o.upstream}/fhir }
routes:
  - id: patient
    layer: system
    match: { methods: [GET], path: /fhir/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: up, path: /Patient/:id }
    policies:
      - jwt: { issuers: [bench-idp] }
  - id: observations
    layer: system
    match: { methods: [GET], path: /fhir/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: up, path: /Observation }
    policies:
      - jwt: { issuers: [bench-idp] }
`;
}
