import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Gets a metric already registered (a reload, a second backbone in one registry) or creates it. */
function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Event metrics, per type and per subscription (bounded label sets: both come from the config). */
export function eventMetrics(registry: Registry) {
  const registers = [registry];
  return {
    published: metric(registry, 'hcgw_events_published_total', () => new Counter({ name: 'hcgw_events_published_total', help: 'Events durably stored, by type and source kind (route, inbound, process, api)', labelNames: ['type'] as const, registers })),
    refused: metric(registry, 'hcgw_events_refused_total', () => new Counter({ name: 'hcgw_events_refused_total', help: 'Events refused before storage and dead-lettered, by reason (schema-invalid, unknown-type, …)', labelNames: ['reason'] as const, registers })),
    delivered: metric(registry, 'hcgw_events_delivered_total', () => new Counter({ name: 'hcgw_events_delivered_total', help: 'Events delivered, by subscription and type', labelNames: ['subscription', 'type'] as const, registers })),
    failed: metric(registry, 'hcgw_events_delivery_failures_total', () => new Counter({ name: 'hcgw_events_delivery_failures_total', help: 'Failed delivery attempts, by subscription', labelNames: ['subscription'] as const, registers })),
    retried: metric(registry, 'hcgw_events_retries_total', () => new Counter({ name: 'hcgw_events_retries_total', help: 'Delivery attempts scheduled again after a failure, by subscription', labelNames: ['subscription'] as const, registers })),
    deadLettered: metric(registry, 'hcgw_events_dead_lettered_total', () => new Counter({ name: 'hcgw_events_dead_lettered_total', help: 'Events moved to the dead-letter store after the last attempt, by subscription', labelNames: ['subscription'] as const, registers })),
    withheld: metric(registry, 'hcgw_events_withheld_total', () => new Counter({ name: 'hcgw_events_withheld_total', help: "Events a subscription's policies did not release (consent, compartment), by subscription and policy", labelNames: ['subscription', 'policy'] as const, registers })),
    lag: metric(registry, 'hcgw_events_consumer_lag', () => new Gauge({ name: 'hcgw_events_consumer_lag', help: 'Events stored but not yet done for a subscription (log head − checkpoint)', labelNames: ['subscription'] as const, registers })),
    latency: metric(registry, 'hcgw_events_publish_to_deliver_seconds', () => new Histogram({ name: 'hcgw_events_publish_to_deliver_seconds', help: 'From durable store to acknowledged delivery, by subscription', labelNames: ['subscription'] as const, buckets: LATENCY_BUCKETS, registers })),
    slaBreaches: metric(registry, 'hcgw_sla_breaches_total', () => new Counter({ name: 'hcgw_sla_breaches_total', help: 'Business SLA rules broken: the start event without the expected one within the window', labelNames: ['rule'] as const, registers })),
  };
}

export type EventMetrics = ReturnType<typeof eventMetrics>;
