import { randomUUID } from 'node:crypto';
import { parseDuration } from '../lib/duration.ts';
import type { SlaRule } from './config.ts';
import type { EventMetrics } from './metrics.ts';
import type { CloudEvent, EventPublisher } from './types.ts';

/**
 * Business SLA rules declared in config: a `start` event opens a window per correlation value; the
 * `expect` event closes it; a window that expires counts `hcgw_sla_breaches_total{rule}` and publishes
 * `sla.breached`. Windows live in memory: a restart forgets open windows (documented limitation).
 */
export class SlaTracker {
  private readonly open = new Map<string, NodeJS.Timeout>();
  private readonly rules: Array<SlaRule & { ms: number }>;

  constructor(
    rules: SlaRule[],
    private readonly publisher: EventPublisher,
    private readonly metrics: EventMetrics,
  ) {
    this.rules = rules.map((r) => ({ ...r, ms: parseDuration(r.within) }));
  }

  observe(e: CloudEvent): void {
    for (const rule of this.rules) {
      const v = e[rule.correlate];
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      const key = `${rule.name}\u0000${v}`;
      if (e.type === rule.expect) {
        clearTimeout(this.open.get(key));
        this.open.delete(key);
      } else if (e.type === rule.start && !this.open.has(key)) {
        const startedAt = e.time;
        const t = setTimeout(() => {
          this.open.delete(key);
          this.metrics.slaBreaches.inc({ rule: rule.name });
          const data = { rule: rule.name, start: rule.start, expect: rule.expect, correlation: String(v), startedAt };
          void this.publisher
            .publish({ specversion: '1.0', id: randomUUID(), source: '/sla', type: 'sla.breached', time: new Date().toISOString(), data, partitionkey: String(v), ...(e.patient ? { patient: e.patient } : {}) })
            .catch(() => undefined);
        }, rule.ms);
        t.unref();
        this.open.set(key, t);
      }
    }
  }

  close(): void {
    for (const t of this.open.values()) clearTimeout(t);
    this.open.clear();
  }
}
