import type { IncomingMessage } from 'node:http';
import type { CompiledRoute, TraceSpan } from '../sdk/types.ts';

/** The top-level `telemetry:` section of routes.yaml (spliced into gateway/config/schema.ts). */
export const telemetrySectionSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'OpenTelemetry tracing; absent or without `otlp`: off, and the OpenTelemetry SDK is not even loaded',
  properties: {
    serviceName: { type: 'string', minLength: 1, default: 'hcgw', description: 'service.name of the exported spans' },
    otlp: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'Export spans with OTLP/HTTP (JSON) to a collector',
      properties: {
        url: { type: 'string', format: 'uri', pattern: '^https?://', description: 'Traces endpoint, e.g. http://127.0.0.1:4318/v1/traces' },
        headers: { type: 'object', additionalProperties: { type: 'string' }, default: {}, 'x-secret': true, description: 'Extra request headers (e.g. an API key as "${env:NAME}")' },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 60000, default: 10000, description: 'Timeout of one export' },
        exportIntervalMs: { type: 'integer', minimum: 1, maximum: 60000, default: 5000, description: 'Most time a finished span waits before it is sent' },
        maxQueueSize: { type: 'integer', minimum: 1, maximum: 1000000, default: 2048, description: 'Spans held while the collector is slow; beyond this, spans are dropped (tracing never slows requests)' },
      },
    },
  },
} as const;

export interface TelemetryConfig {
  serviceName: string;
  otlp?: { url: string; headers: Record<string, string>; timeoutMs: number; exportIntervalMs: number; maxQueueSize: number };
}

/**
 * Tracing as the gateway sees it: a request span per matched request, from which policies, upstream calls
 * and process steps hang their children (see TraceSpan). Off means no Telemetry object at all: the
 * request path checks `ex.trace` and nothing else, and the OpenTelemetry SDK is never imported.
 */
export interface Telemetry {
  /** The request span, continuing the caller's W3C trace context when it sent a valid one. */
  startRequest(req: IncomingMessage, route: CompiledRoute): TraceSpan;
  /** Flushes what is queued (bounded by the export timeout) and stops exporting. */
  close(): Promise<void>;
}
