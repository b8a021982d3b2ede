/**
 * The gateway services the SDK hands to policies (through PolicyContext) and the types and helpers that go
 * with them. This is the one place where the SDK reaches into the core: what is not exported here is not
 * part of the contract.
 */
export { isRedisStore, isStoreFailure } from '../store/index.ts';
export { StoreUnavailable, type Store } from '../store/types.ts';
export { principalFrom, type IdentityRegistry, type TrustedIssuer } from '../identity/registry.ts';
export { IntrospectionUnavailable, type IntrospectionDeps } from '../identity/introspection.ts';
export { createRecordBuilder } from '../audit/record.ts';
export type { Metrics } from '../ops/metrics.ts';
export { clientCertificate } from '../http/tls.ts';
