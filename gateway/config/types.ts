import type { AuditConfig } from '../audit/schema.ts';
import type { UpstreamAuthConfig } from '../upstream/auth/schema.ts';
import type { ServerTlsConfig } from '../http/tls.ts';
import type { SenderConstraintConfig } from '../identity/sender-constraint.ts';
import type { IssuerDiscoveryConfig } from '../identity/discovery.ts';

/** The shapes of routes.yaml (mirrors gateway/config/schema.ts). */
export type Layer = 'system' | 'process' | 'experience' | 'event';

export type FhirInteraction = 'read' | 'search' | 'create' | 'update' | 'delete' | 'patch' | 'vread' | 'history';

export interface UpstreamConfig {
  url: string;
  timeoutMs?: number;
  connectTimeoutMs?: number;
  maxSockets?: number;
  forwardAuthorization?: boolean;
  retries?: number;
  retryBackoffMs?: number;
  retryBackoffMaxMs?: number;
  honorsIdempotencyKey?: boolean;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean };
  circuitBreaker?: { failures: number; windowMs: number; openMs: number };
  auth?: UpstreamAuthConfig;
}

export interface IssuerConfig extends SenderConstraintConfig, IssuerDiscoveryConfig {
  name: string;
  issuer: string;
  jwksUri?: string;
  keys?: Array<Record<string, unknown> | string>;
  audiences?: string[];
  algorithms: string[];
  clockToleranceSec?: number;
  requiredClaims?: string[];
  secret?: string;
  introspection?: {
    url: string;
    clientId: string;
    clientSecret: string;
    cacheMaxEntries?: number;
    timeoutMs?: number;
    cacheMaxTtlSec?: number;
    negativeCacheSec?: number;
  };
  jwksCooldownMs?: number;
  jwksCacheMaxAgeMs?: number;
  jwksTimeoutMs?: number;
}

export interface StoreConfig {
  kind: 'memory' | 'redis';
  url?: string;
  prefix?: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  maxEntries?: number;
}

export interface ServerConfig {
  port: number;
  host: string;
  bodyLimit: string;
  /** Decision trace in a response header (gateway/tooling/debug-decisions.ts); loopback listeners only. */
  debugDecisions?: boolean;
  trustProxy: boolean | number | string | string[];
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  logLevel: string;
  publicBaseUrl?: string;
  allowedHosts?: string[];
  admin?: { port: number; host: string; token?: string };
  tls?: ServerTlsConfig;
}

export type RouteTargetConfig =
  | { upstream: string; path: string }
  | { compose: Array<Record<string, unknown>>; merge?: unknown }
  | { route: string };

export interface RouteConfig {
  id: string;
  layer: Layer;
  description?: string;
  match: { methods: string[]; path: string };
  fhir?: { resourceType: string; interaction: FhirInteraction };
  target: RouteTargetConfig;
  project?: unknown;
  emit?: import('../events/config.ts').EmitConfig;
  lint?: import('../tooling/lint/ids.ts').RouteLintConfig;
  policies: Array<Record<string, unknown>>;
}

export interface GatewayConfig {
  version: 1;
  server: ServerConfig;
  store: StoreConfig;
  identity: { issuers: IssuerConfig[] };
  upstreams: Record<string, UpstreamConfig>;
  plugins: string[];
  audit?: AuditConfig;
  sandbox?: Record<string, unknown>;
  routes: RouteConfig[];
  [section: string]: unknown;
}
