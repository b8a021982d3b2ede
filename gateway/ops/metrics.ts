import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One registry per gateway instance (no global default registry), so several gateways can live in one
 * test process. Label values are route ids, policy names and reasons: bounded sets from the config.
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // Standard names (process_*, nodejs_*), so stock Node.js dashboards and alerts work unchanged.
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    requests: new Counter({
      name: 'hcgw_requests_total',
      help: 'Requests handled, by route, layer and status class',
      labelNames: ['route', 'layer', 'status_class'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'hcgw_request_duration_seconds',
      help: 'Total time from request received to response finished',
      labelNames: ['route', 'layer'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    overhead: new Histogram({
      name: 'hcgw_gateway_overhead_seconds',
      help: 'Time spent in the gateway itself (total minus upstream time); not observed when the upstream call failed',
      labelNames: ['route'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'hcgw_upstream_duration_seconds',
      help: 'Upstream time, from request sent to response headers',
      labelNames: ['upstream'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'hcgw_upstream_errors_total',
      help: 'Upstream failures by upstream and kind (connect, tls, timeout, reset, circuit-open)',
      labelNames: ['upstream', 'kind'] as const,
      registers: [registry],
    }),
    upstreamRetries: new Counter({
      name: 'hcgw_upstream_retries_total',
      help: 'Upstream requests sent again after a connect error, timeout or 5xx',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    circuitTransitions: new Counter({
      name: 'hcgw_circuit_transitions_total',
      help: 'Circuit breaker state changes, by upstream and the state entered',
      labelNames: ['upstream', 'state'] as const,
      registers: [registry],
    }),
    circuitState: new Gauge({
      name: 'hcgw_circuit_state',
      help: 'Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    processStepFailures: new Counter({
      name: 'hcgw_process_step_failures_total',
      help: 'Failed steps of process compositions, by route, step and reason',
      labelNames: ['route', 'step', 'reason'] as const,
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'hcgw_config_reloads_total',
      help: 'Config reload attempts by result (applied, rejected)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    denials: new Counter({
      name: 'hcgw_policy_denials_total',
      help: 'Requests ended by a policy, by policy and reason',
      labelNames: ['policy', 'reason'] as const,
      registers: [registry],
    }),
    storeFailures: new Counter({
      name: 'hcgw_store_failures_total',
      help: 'Shared store operations that failed, by policy and the fail mode applied',
      labelNames: ['policy', 'mode'] as const,
      registers: [registry],
    }),
    storeEvictions: new Counter({
      name: 'hcgw_store_evictions_total',
      help: 'Keys the bounded memory store evicted to make room (each weakens a limit or a replay guard: raise store.maxEntries or use Redis)',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'hcgw_rate_limited_total',
      help: 'Requests refused by the rate-limit policy, by route and the limit that refused them',
      labelNames: ['route', 'limit'] as const,
      registers: [registry],
    }),
    laneRejected: new Counter({
      name: 'hcgw_lane_rejected_total',
      help: 'Requests refused by a concurrency lane, by lane and reason (queue-full, queue-timeout)',
      labelNames: ['lane', 'reason'] as const,
      registers: [registry],
    }),
    auditRecords: new Counter({
      name: 'hcgw_audit_records_total',
      help: 'Audit records delivered, by sink',
      labelNames: ['sink'] as const,
      registers: [registry],
    }),
    auditSinkFailures: new Counter({
      name: 'hcgw_audit_sink_failures_total',
      help: 'Failed audit deliveries (each retried unless the kind is rejected), by sink and kind (open, write, rotate, network, timeout, http-status, rejected)',
      labelNames: ['sink', 'kind'] as const,
      registers: [registry],
    }),
    auditDropped: new Counter({
      name: 'hcgw_audit_records_dropped_total',
      help: 'Audit records lost, by sink and reason (overflow: buffer full; rejected: refused by the SIEM; shutdown: undelivered at close)',
      labelNames: ['sink', 'reason'] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
