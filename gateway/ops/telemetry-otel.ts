import type { IncomingMessage } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'winston';
import type { CompiledRoute, TraceSpan } from '../sdk/types.ts';
import type { Telemetry, TelemetryConfig } from './telemetry-schema.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The caller's trace context, or the root (a new trace) when the header is absent, malformed or all-zero. */
function callerContext(header: unknown): Context {
  const m = typeof header === 'string' ? TRACEPARENT.exec(header) : null;
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1], spanId: m[2], traceFlags: parseInt(m[3], 16) & 1, isRemote: true });
}

/**
 * Parent links are explicit (each child is started from its parent's context) rather than carried by
 * OpenTelemetry's async-hooks context manager: no hook on every promise, and no way to lose the parent.
 */
class OtelSpan implements TraceSpan {
  readonly traceparent: string;
  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
  ) {
    const sc = span.spanContext();
    this.traceparent = `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
  }

  child(name: string, attributes?: Attributes, startMs?: number): TraceSpan {
    const kind = name.startsWith('upstream') ? SpanKind.CLIENT : SpanKind.INTERNAL;
    return new OtelSpan(this.tracer, this.tracer.startSpan(name, { kind, attributes, startTime: startMs }, trace.setSpan(ROOT_CONTEXT, this.span)));
  }

  end(attributes?: Attributes, error?: unknown): void {
    if (attributes) this.span.setAttributes(attributes);
    if (error !== undefined) {
      // The error's code or reason only: messages may quote upstream text.
      const e = error as { code?: unknown; reason?: unknown };
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: String(e?.reason ?? e?.code ?? 'error') });
    }
    this.span.end();
  }
}

export function createOtelTelemetry(config: TelemetryConfig, otlp: NonNullable<TelemetryConfig['otlp']>, logger: Logger): Telemetry {
  const exporter = new OTLPTraceExporter({ url: otlp.url, headers: otlp.headers, timeoutMillis: otlp.timeoutMs });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: otlp.exportIntervalMs, maxQueueSize: otlp.maxQueueSize, exportTimeoutMillis: otlp.timeoutMs })],
  });
  const tracer = provider.getTracer('hcgw');
  logger.info('telemetry on: exporting spans with OTLP/HTTP', { serviceName: config.serviceName });
  return {
    startRequest(req: IncomingMessage, route: CompiledRoute) {
      // No URL or query attributes: paths and searches can carry patient identifiers.
      const span = tracer.startSpan(
        `${req.method} ${route.id}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'http.route': route.path, 'hcgw.route': route.id, 'hcgw.layer': route.layer } },
        callerContext(req.headers.traceparent),
      );
      return new OtelSpan(tracer, span);
    },
    async close() {
      await provider.shutdown().catch((err: unknown) => logger.warn('telemetry flush failed', { error: String(err) }));
    },
  };
}
