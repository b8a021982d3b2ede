import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'winston';
import type { GatewayError } from './errors.ts';
import type { Store } from '../store/types.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { IdentityRegistry } from '../identity/types.ts';
import type { AuditRegistry } from '../audit/registry.ts';
import type { AuditConfig } from '../audit/schema.ts';
import type { FhirInteraction, Layer, RouteTargetConfig } from '../config/types.ts';
export type { AuditConfig };
export type * from '../config/types.ts';


/** The authenticated caller, set by an authentication policy (jwt) for the ones after it. */
export interface Principal {
  issuer: string;
  /** Name of the configured issuer entry in `identity.issuers`. */
  issuerName: string;
  subject: string;
  clientId?: string;
  scopes: string[];
  /** SMART launch context: the patient id (bare, without `Patient/`) a patient-facing token is bound to. */
  patient?: string;
  /** SMART launch context: encounter id, when the token carries one. */
  encounter?: string;
  fhirUser?: string;
  /** All verified claims, for claim conditions; never logged. */
  claims: Record<string, unknown>;
}

/** One decision a policy took, recorded for the audit trail (never holds PHI values). */
export interface PolicyDecision {
  policy: string;
  /** would-*: a policy in `mode: shadow` evaluated this but did not enforce it. */
  outcome: 'allow' | 'deny' | 'modify' | 'would-deny' | 'would-modify';
  reason?: string;
  detail?: Record<string, string | number | boolean>;
}

export interface ConsentDecision {
  consentIds: string[];
  decision: 'permit' | 'deny' | 'partial' | 'none' | 'unknown';
  removed?: number;
}

/**
 * One span of the request's trace (gateway/ops/telemetry.ts); present only when telemetry is on, so code
 * that traces writes `ex.trace?.child(…)` and costs one property check when it is off.
 */
export interface TraceSpan {
  /** W3C traceparent naming this span as the parent: what an upstream call made inside it sends. */
  readonly traceparent: string;
  /** A child span; `startMs` (performance.now()) back-dates it to when the work began. */
  child(name: string, attributes?: Record<string, string | number | boolean>, startMs?: number): TraceSpan;
  end(attributes?: Record<string, string | number | boolean>, error?: unknown): void;
}

/**
 * Per-request state shared by the policies of one chain. Policies exchange data only through these
 * typed slots, never through ad-hoc properties on the request.
 */
export interface Exchange {
  readonly id: string;
  readonly traceparent: string;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: CompiledRoute;
  /** Client IP as resolved under the server's explicit `trustProxy` setting. */
  readonly ip: string;
  readonly method: string;
  /** Decoded path parameters of the matched route. */
  params: Record<string, string>;
  /** Query of the incoming request (parsed on first use); policies may rewrite it before it goes upstream. */
  query: URLSearchParams;
  /** `?…` for the upstream call: the client's raw query unless a policy read or rewrote `query`; '' if none. */
  upstreamQueryString(): string;
  /** Path sent to the upstream (relative to the upstream base URL); policies may rewrite it. */
  upstreamPath: string;
  /** Raw request body when the route reads it (it does when any policy needs it or for non-streaming targets). */
  body?: Buffer;
  /** Parsed JSON request body, when the body is JSON. */
  json?: unknown;
  principal?: Principal;
  purposeOfUse?: string;
  consent?: ConsentDecision;
  decisions: PolicyDecision[];
  /** Headers added to the upstream request by policies. */
  upstreamHeaders: Record<string, string>;
  /** Headers added to the client response by policies. */
  responseHeaders: Record<string, string>;
  /**
   * A stored response a policy answers with instead of calling the target (an idempotent replay). The
   * server sends it through the route's response phase, so minimization applies to it as to the original.
   */
  replay?: ResponseBody;
  /** Monotonic start time (ms, performance.now()). */
  readonly startedAt: number;
  /** Wall-clock start time. */
  readonly receivedAt: Date;
  upstream: { status?: number; latencyMs?: number; error?: string; name?: string };
  /** Final status sent to the client, known in the log phase. */
  status?: number;
  /** Error that ended the exchange, if any (known in the log phase). */
  error?: GatewayError;
  /** Policy that denied the request, if one did. */
  deniedBy?: string;
  /** Per-policy private state, keyed by the policy instance. */
  readonly locals: Map<object, unknown>;
  /** The request's span when telemetry is on (`telemetry.otlp`), else undefined. */
  trace?: TraceSpan;
}

/** A buffered JSON response on its way back to the client; onResponse handlers may replace `body`. */
export interface ResponseBody {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface PolicyHandler {
  /** Runs in YAML order; throw a GatewayError to end the exchange. */
  onRequest?(exchange: Exchange): void | Promise<void>;
  /** Runs in reverse YAML order on routes that buffer the response; may mutate or replace `response.body`. */
  onResponse?(exchange: Exchange, response: ResponseBody): void | Promise<void>;
  /** Runs after the response was sent, for every request (allowed or denied). Must not throw. */
  onLog?(exchange: Exchange): void | Promise<void>;
  /**
   * Runs when the response is complete and its end is held back (audit durability: before-response);
   * resolving false withholds it: a 503 if nothing was sent yet, else the connection is cut.
   */
  beforeRelease?(exchange: Exchange): Promise<boolean>;
  /** True when onResponse needs the parsed JSON response body (the route then buffers it). */
  readonly needsResponseBody?: boolean;
  /** True when onRequest needs the request body (`exchange.body` / `exchange.json`). */
  readonly needsRequestBody?: boolean;
  /** Release resources (timers, connections) when the router is retired. */
  close?(): void | Promise<void>;
}

/** The gateway's HTTP client for one configured upstream, as a policy sees it (consent look-ups, pre-reads). */
export interface UpstreamClient {
  readonly name: string;
  /**
   * One JSON call with the upstream's agent, timeout, retry budget and circuit breaker; request id and
   * traceparent of `ex` are sent. Rejects with a GatewayError (502/503/504), never hangs.
   */
  call(call: UpstreamCall, ex?: Exchange): Promise<ResponseBody>;
}

export interface UpstreamCall {
  method: string;
  /** Path relative to the upstream base URL, already encoded. */
  path: string;
  query?: URLSearchParams;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /** Aborts the call (and any retry) when the caller no longer needs it. */
  signal?: AbortSignal;
}

/**
 * What a policy's create() gets: its services, never the whole config (which holds resolved secrets of
 * other parts). Top-level sections a policy reads are asked for by name through `section()`.
 */
export interface PolicyContext {
  logger: Logger;
  store: Store;
  metrics: Metrics;
  identity: IdentityRegistry;
  /** Client for the upstream of that name, or undefined when none is configured. */
  upstream(name: string): UpstreamClient | undefined;
  /** A top-level config section that policies may read (`audit`, `minimization`), frozen; undefined if absent. */
  section<T = unknown>(name: PolicySection): T | undefined;
  /** The route being compiled (id, layer, match, target). */
  route: RouteInfo;
  /** Directory of the config file, for resolving file references. */
  configDir: string;
  /** Injected clock, for tests. */
  now: () => number;
  /** Live objects shared by the policies of one compiled config (e.g. lane semaphores across routes). */
  shared: SharedResources;
  /** Audit trails of this gateway; they outlive config reloads so the hash chain continues. */
  audit: AuditRegistry;
}

/** Config sections readable by policies: every other section stays with the core. */
export type PolicySection = 'audit' | 'minimization' | 'events' | (string & {});

/**
 * Named facts and guarantees that policies declare, so the compiler can check each chain's order at load
 * (Envoy's filter dependencies). Request-phase facts: `principal`, `purpose-of-use`, `consent-decision`.
 * Response-body guarantees: `minimized-body`, `consent-filtered-body`, `compartment-filtered-body`.
 */
export type Capability = 'principal' | 'purpose-of-use' | 'consent-decision' | 'minimized-body' | 'consent-filtered-body' | 'compartment-filtered-body' | (string & {});

export interface PolicyDependencies {
  /** Request phase: facts that a policy listed above this one must provide. */
  readonly requires?: readonly Capability[];
  /** Facts (request phase) and body guarantees (response phase) this policy provides. */
  readonly provides?: readonly Capability[];
  /**
   * Response phase: guarantees that must already hold on the body this policy sees. A policy on the chain
   * that provides one must run its response phase first, i.e. stand *below* this one in the YAML list.
   */
  readonly after?: readonly Capability[];
}

/** Names one kind of shared object and builds it on first use; the type parameter types what it holds. */
export interface SharedKey<T> {
  readonly name: string;
  create(): T;
}

export interface SharedResources {
  get<T>(key: SharedKey<T>): T;
}

export interface Policy<C = any> {
  /** Key used in routes.yaml. */
  readonly name: string;
  /** JSON Schema of the policy's config: additionalProperties false, descriptions, defaults. */
  readonly configSchema: Record<string, unknown>;
  /** What the policy needs from the ones before it and gives to the ones after it; may depend on its config. */
  readonly dependencies?: PolicyDependencies | ((config: C) => PolicyDependencies);
  /** Config keys renamed in a release: old name → new name. The old one is still read, with a deprecation warning. */
  readonly renamedKeys?: Readonly<Record<string, string>>;
  /** Builds everything expensive once, at config load. May be async (fetching keys, connecting). */
  create(config: C, context: PolicyContext): PolicyHandler | Promise<PolicyHandler>;
}

export interface RouteInfo {
  id: string;
  layer: Layer;
  methods: string[];
  path: string;
  /** For FHIR routes: the resource type and interaction, used by SMART scopes and consent. */
  fhir?: { resourceType: string; interaction: FhirInteraction };
  targetConfig: RouteTargetConfig;
}


/** What a route does once its request phase passed: proxy, compose, or project. */
export interface RouteTarget {
  readonly kind: string;
  /** Fills `exchange.upstreamPath` before the request phase, so policies can see and rewrite it. */
  prepare?(ex: Exchange): void;
  /**
   * Fetches the answer: a buffered body for the pipeline's response phase, or `'streamed'` when the target
   * already piped it (routes without response-body policies). Rejects with a GatewayError while nothing was
   * sent. A target never runs policies: the pipeline runs the response phase once (gateway/pipeline/dispatch.ts).
   */
  handle(ex: Exchange): Promise<TargetResult>;
  /** Releases what the target holds (audit leases, timers) when its compiled config is retired. */
  close?(): Promise<void>;
}

/** What a target hands back to the pipeline. */
export type TargetResult = 'streamed' | BufferedResult;

export interface BufferedResult {
  response: ResponseBody;
  /** The upstream's bytes, when the body came from one: an unchanged body keeps the upstream's ETag. */
  original?: Buffer;
  /** Experience routes: reshapes the body after the response phase (policies judge the source resources). */
  project?: (body: unknown) => unknown;
  /** The upstream URL that answered, for resolving relative `Location` / `Content-Location` headers. */
  upstreamUrl?: string;
}

export interface CompiledRoute extends RouteInfo {
  readonly chain: CompiledChain;
  readonly target: RouteTarget;
  /** The policies as configured, for the admin listing (names only: never configs with secrets). */
  readonly policyNames: string[];
}

export interface CompiledChain {
  /** `allowed`: the frozen trace entry recorded when the step passes without pushing its own decision. */
  readonly request: Array<{ name: string; run: NonNullable<PolicyHandler['onRequest']>; allowed: PolicyDecision }>;
  readonly response: Array<{ name: string; run: NonNullable<PolicyHandler['onResponse']>; allowed: PolicyDecision }>;
  readonly log: Array<{ name: string; run: NonNullable<PolicyHandler['onLog']> }>;
  readonly release: Array<{ name: string; run: NonNullable<PolicyHandler['beforeRelease']> }>;
  readonly needsResponseBody: boolean;
  readonly needsRequestBody: boolean;
  readonly handlers: PolicyHandler[];
}

