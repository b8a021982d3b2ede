import type { Logger } from 'winston';
import type { Telemetry, TelemetryConfig } from './telemetry-schema.ts';

export type { Telemetry } from './telemetry-schema.ts';

export async function createTelemetry(config: TelemetryConfig | undefined, logger: Logger): Promise<Telemetry | undefined> {
  if (!config?.otlp) return undefined;
  // Loaded only when configured: the SDK's import cost and memory are paid by those who trace.
  const { createOtelTelemetry } = await import('./telemetry-otel.ts');
  return createOtelTelemetry(config, config.otlp, logger);
}
