import { resolve } from 'node:path';
import type { Logger } from 'winston';
import type { AuditConfig } from '../audit/schema.ts';
import type { AuditRegistry } from '../audit/registry.ts';
import type { EventPublisher } from '../events/types.ts';
import type { Store } from '../store/types.ts';
import { createLegacyAuditor } from './audit.ts';
import { sharedFileEventLog } from './event-log.ts';
import { startMllpListener, type MllpListener } from './hl7/listener.ts';
import type { LegacyConfig } from './schema.ts';

export class LegacyConfigError extends Error {
  readonly code = 'ERR_LEGACY_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'LegacyConfigError';
  }
}

/**
 * The event publisher the adapters use: the one the gateway hands in (the event backbone, once
 * configured) or else the section's `eventLog` file. No publisher → the adapters that need one refuse to
 * start (fail closed: an ACK must never promise an event that was not stored).
 */
export function legacyPublisher(section: LegacyConfig | undefined, configDir: string, given?: EventPublisher): EventPublisher | undefined {
  if (given) return given;
  return section?.eventLog ? sharedFileEventLog(resolve(configDir, section.eventLog.file)) : undefined;
}

export interface LegacyRuntimeDeps {
  config: { legacy?: LegacyConfig; audit?: AuditConfig };
  configDir: string;
  store: Store;
  audit: AuditRegistry;
  logger: Logger;
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
  const publisher = legacyPublisher(section, deps.configDir, deps.publisher);
  if (!publisher) throw new LegacyConfigError('legacy.mllp needs legacy.eventLog (or the event backbone) to publish to');
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
