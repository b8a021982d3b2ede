import type { AuditConfig } from '../audit/schema.ts';
import type { AuditRegistry } from '../audit/registry.ts';
import type { AuditTrail } from '../audit/trail.ts';
import { toAuditEvent, type AuditFacts } from '../audit/fhir-event.ts';
import { auditPseudonymizer } from '../audit/record.ts';

/**
 * Audit records of the legacy adapters (one per HL7 message, per X12 call, per prior-auth decision), on
 * the gateway's one hash chain next to the HTTP records. Same rules: no PHI values; identifiers that could
 * name a patient are keyed HMAC-SHA256 hashes (audit.hashKey); control numbers are not PHI and are kept.
 * Written as FHIR AuditEvents like every record (gateway/audit/fhir-event.ts).
 */
export interface LegacyAuditRecord {
  type: 'hl7v2' | 'x12' | 'pas';
  subtype: string;
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  outcome: { code: '0' | '4' | '8'; reason?: string; [k: string]: unknown };
  agent: AuditFacts['agent'];
  entity: AuditFacts['entity'];
  latencyMs?: number;
  requestId?: string;
}

export interface LegacyAuditor {
  hash(value: string): string;
  write(record: LegacyAuditRecord, now?: Date): void;
  release(): Promise<void>;
}

export function createLegacyAuditor(registry: AuditRegistry, section: AuditConfig, configDir: string): LegacyAuditor {
  const lease = registry.acquire(section, configDir);
  const trail: AuditTrail = lease.trail;
  const source = Object.freeze({ observer: trail.source, type: 'gateway' as const });
  return {
    hash: auditPseudonymizer(section.hashKey),
    write(record, now = new Date()) {
      trail.append({ resource: toAuditEvent({ recorded: now.toISOString(), source, ...record }) });
    },
    release: () => lease.release(),
  };
}

/** Outcome code of a failure: the caller's fault is minor (4), ours or the partner's serious (8). */
export const OUTCOME = { ok: '0', rejected: '4', failed: '8' } as const;
