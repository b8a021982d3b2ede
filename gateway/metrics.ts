import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One registry per gateway instance (no global default registry), so several gateways can live in one
 * test process. Label values are route ids, policy names and reasons: bounded sets from the config.
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'hcgw_' });
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
      help: 'Time spent in the gateway itself (total minus upstream time)',
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
      help: 'Upstream failures by upstream and kind (connect, timeout, reset, circuit-open)',
      labelNames: ['upstream', 'kind'] as const,
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
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
