import type { Logger } from 'winston';
import type { EventPublisher } from '../events/types.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { RouteTarget } from '../sdk/types.ts';
import type { Store } from '../store/types.ts';
import type { Upstream } from '../upstream/upstreams.ts';
import type { LegacyAuditor } from './audit.ts';

/** What an adapter target gets from the compiled config (built once per route in createAdapterTarget). */
export interface AdapterServices {
  upstream(name: string): Upstream;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  auditor: LegacyAuditor;
  /** The event backbone, else the deprecated legacy.eventLog, else undefined (see legacyPublisher). */
  publisher?: EventPublisher;
}

export interface AdapterTarget extends RouteTarget {
  /** Resolves when no background work (pended follow-ups) is left. */
  idle?(): Promise<void>;
}

