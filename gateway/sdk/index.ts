/**
 * The Policy SDK: everything a built-in policy or a plugin may import from the gateway. Policies and plugins
 * import this module and the pure helpers in `gateway/lib/`, nothing else (`npm run lint` enforces it), so
 * the core can change behind this face without breaking them.
 */
export { definePolicy, type ConfigOf, type PolicyDefinition } from './define.ts';
export * from './errors.ts';
export { BEARER_CHALLENGE, invalidToken, insufficientScope, requirePrincipal } from './auth.ts';
export type {
  AuditConfig,
  Capability,
  CompiledRoute,
  ConsentDecision,
  Exchange,
  FhirInteraction,
  Layer,
  Policy,
  PolicyContext,
  PolicyDecision,
  PolicyDependencies,
  PolicyHandler,
  PolicySection,
  Principal,
  ResponseBody,
  RouteInfo,
  SharedKey,
  SharedResources,
  UpstreamCall,
  UpstreamClient,
} from './types.ts';
export { isRedisStore, isStoreFailure, type Store } from './services.ts';
export { StoreUnavailable } from './services.ts';
export { principalFrom, type IdentityRegistry, type TrustedIssuer } from './services.ts';
export { IntrospectionUnavailable, type IntrospectionDeps } from './services.ts';
export { createRecordBuilder } from './services.ts';
export { clientCertificate } from './services.ts';
export type { Metrics } from './services.ts';
