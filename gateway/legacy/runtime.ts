import { resolve } from 'node:path';
import type { Logger } from 'winston';
import type { AuditConfig } from '../audit/schema.ts';
import type { AuditRegistry } from '../audit/registry.ts';
import type { EventPublisher } from '../events/types.ts';
import type { Store } from '../store/types.ts';
import { createLegacyAuditor } from './audit.ts';
import { sharedFileEventLog } from './event-log.ts';
import type { MllpListener } from './hl7/listener.ts';
import type { LegacyConfig } from './schema.ts';

export class LegacyConfigError extends Error {
  readonly code = 'ERR_LEGACY_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'LegacyConfigError';
  }
}

/** Where the deprecation of `legacy.eventLog` is explained (warnings name it). */
export const EVENT_LOG_FIX = 'declare an `events:` section (event backbone) with schemas for the legacy event types and remove `legacy.eventLog` (docs/legacy-and-payers.md#migrating-from-legacyeventlog)';

/**
 * The one place that decides where the legacy adapters (MLLP listeners, PAS follow-ups) publish: the
 * gateway's event backbone when `events:` is configured (schema-validated, delivered to subscriptions),
 * else the deprecated `legacy.eventLog` file. No publisher → the adapters that need one refuse to start
 * (fail closed: an ACK must never promise an event that was not stored).
 */
export function legacyPublisher(section: LegacyConfig | undefined, configDir: string, backbone?: EventPublisher, logger?: Logger): EventPublisher | undefined {
  if (backbone) return backbone;
  if (!section?.eventLog) return undefined;
  const file = resolve(configDir, section.eventLog.file);
  logger?.warn('legacy.eventLog is deprecated: legacy events bypass schemas and subscriptions', { path: 'legacy.eventLog', file, fix: EVENT_LOG_FIX });
  return sharedFileEventLog(file);
}

export interface LegacyRuntimeDeps {
  config: { legacy?: LegacyConfig; audit?: AuditConfig };
  configDir: string;
  store: Store;
  audit: AuditRegistry;
  logger: Logger;
  /** The gateway's event backbone (`Gateway.events`), when `events:` is configured. */
  publisher?: EventPublisher;
}

export interface LegacyRuntime {
  listeners: MllpListener[];
  close(): Promise<void>;
}

/** Starts the MLLP listeners of `legacy.mllp` (restart-only settings: a reload does not move sockets). */
export async function startLegacy(deps: LegacyRuntimeDeps): Promise<LegacyRuntime> {
  const section = deps.config.legacy;
  if (!section?.mllp.length) return { listeners: [], close: async () => {} };
  if (!deps.config.audit) throw new LegacyConfigError('legacy.mllp needs a top-level `audit:` section: every message is audited');
  const publisher = legacyPublisher(section, deps.configDir, deps.publisher, deps.logger);
  if (!publisher) throw new LegacyConfigError('legacy.mllp needs the event backbone (`events:`) or the deprecated legacy.eventLog to publish to');
  // The HL7 parser (node-hl7-client) is imported only when MLLP listeners are configured.
  const { startMllpListener } = await import('./hl7/listener.ts');
  const auditor = createLegacyAuditor(deps.audit, deps.config.audit, deps.configDir);
  const listeners: MllpListener[] = [];
  const close = async () => {
    await Promise.all(listeners.map((l) => l.close()));
    await auditor.release();
  };
  try {
    for (const cfg of section.mllp) listeners.push(await startMllpListener(cfg, { store: deps.store, publisher, auditor, logger: deps.logger, configDir: deps.configDir }));
  } catch (err) {
    await close();
    throw err;
  }
  return { listeners, close };
}
