import { createHash } from 'node:crypto';
import { canonicalJson } from './chain.ts';
import type { AuditConfig } from './schema.ts';
import { sinkPath, type SinkFactoryDeps } from './sinks/index.ts';
import { AuditTrail } from './trail.ts';

export interface AuditLease {
  readonly trail: AuditTrail;
  /** Called from the policy's close(); the trail closes (and flushes) when its last user is gone. */
  release(): Promise<void>;
}

/**
 * Per gateway, created once and handed to every compiled config through the policy context, so the
 * chain outlives config reloads: an unchanged `audit:` section gets the very same trail back. A changed
 * section gets a new trail that starts only after the old trails writing the same files closed, and then
 * continues their chain from the file.
 */
export interface AuditRegistry {
  acquire(config: AuditConfig, configDir: string): AuditLease;
  /** Flushes and closes every trail (gateway shutdown). */
  close(): Promise<void>;
}

interface Entry {
  trail: AuditTrail;
  refs: number;
  files: string[];
  /** Resolves once the trail has closed (set up front, so later trails can wait before it even starts closing). */
  closed: Promise<void>;
  markClosed(): void;
}

export function createAuditRegistry(deps: Omit<SinkFactoryDeps, 'configDir'>): AuditRegistry {
  const live = new Map<string, Entry>();
  const closing = new Set<Entry>();

  const close = (key: string, e: Entry): Promise<void> => {
    if (live.get(key) === e) live.delete(key);
    if (!closing.has(e)) {
      closing.add(e);
      void e.trail.close().finally(() => {
        closing.delete(e);
        e.markClosed();
      });
    }
    return e.closed;
  };

  const create = (config: AuditConfig, configDir: string): Entry => {
    const files = config.sinks.map((s) => sinkPath(s, configDir)).filter((p): p is string => p !== undefined);
    const earlier = [...live.values(), ...closing].filter((o) => o.files.some((f) => files.includes(f)));
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    const trail = new AuditTrail(config, { ...deps, configDir }, Promise.all(earlier.map((o) => o.closed)));
    return { trail, refs: 0, files, closed, markClosed };
  };

  return {
    acquire(config, configDir) {
      const key = createHash('sha256').update(canonicalJson({ config, configDir })).digest('hex');
      let entry = live.get(key);
      if (!entry) live.set(key, (entry = create(config, configDir)));
      const e = entry;
      e.refs++;
      let released = false;
      return {
        trail: e.trail,
        release: async () => {
          if (released) return;
          released = true;
          if (--e.refs === 0) await close(key, e);
        },
      };
    },
    async close() {
      await Promise.all([...live.entries()].map(([key, e]) => close(key, e)));
      await Promise.all([...closing].map((e) => e.closed));
    },
  };
}
