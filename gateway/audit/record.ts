import { createHmac } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Exchange, FhirInteraction } from '../sdk/types.ts';
import { toAuditEvent, type AuditEvent, type AuditFacts } from './fhir-event.ts';

/**
 * One audit record per request: the facts of the exchange, written as a FHIR R4 AuditEvent (format 2:
 * `{"prev", "resource", "hash"}`). It holds no PHI and nothing the caller sent: no bodies, no query
 * strings, no tokens; identifiers that could name a patient are keyed HMAC-SHA256 pseudonyms.
 */
/** What the trail seals into one line: the AuditEvent in `resource`, next to the chain's `prev` and `hash`. */
export interface TrailRecord {
  resource: AuditEvent;
}

/**
 * The keyed HMAC-SHA256 pseudonym (base64url) of identifiers in audit records, HTTP and legacy alike. The
 * same few callers, addresses and patients come back record after record: each value's pseudonym is
 * computed once while it stays in use (bounded), not several HMACs per record.
 */
export function auditPseudonymizer(hashKey: string): (value: string) => string {
  const key = Buffer.from(hashKey, 'utf8');
  const pseudonyms = new LRUCache<string, string>({ max: 10_000 });
  return (v) => {
    let h = pseudonyms.get(v);
    if (h === undefined) pseudonyms.set(v, (h = createHmac('sha256', key).update(v).digest('base64url')));
    return h;
  };
}

const ACTION_OF_INTERACTION: Record<FhirInteraction, AuditFacts['action']> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  history: 'R',
  // FHIR's audit guidance records searches as Execute: a query, not a read of one known resource.
  search: 'E',
  update: 'U',
  patch: 'U',
  delete: 'D',
};
const ACTION_OF_METHOD: Record<string, AuditFacts['action']> = { GET: 'R', HEAD: 'R', POST: 'C', PUT: 'U', PATCH: 'U', DELETE: 'D' };

export function actionOf(method: string, interaction?: FhirInteraction): AuditFacts['action'] {
  return interaction ? ACTION_OF_INTERACTION[interaction] : (ACTION_OF_METHOD[method] ?? 'E');
}

export function outcomeCode(status: number, completed: boolean): AuditFacts['outcome']['code'] {
  if (!completed) return '12';
  if (status >= 500) return '8';
  if (status >= 400) return '4';
  return '0';
}

const PATIENT_PARAMS = ['patient', 'subject'];
const PATIENT_QUERY = ['patient', 'subject', 'patient:Patient', 'subject:Patient'];

/** Patient ids a request is about, from the SMART launch context, the route's params or its search parameters. */
export function patientRefs(ex: Exchange): string[] {
  const refs = new Set<string>();
  const add = (v: string | null | undefined) => {
    for (const part of (v ?? '').split(',')) {
      const id = part.trim().replace(/^(.*\/)?Patient\//, '');
      if (id) refs.add(id);
    }
  };
  add(ex.principal?.patient);
  if (ex.route.fhir?.resourceType === 'Patient') {
    add(ex.params.id);
    add(ex.query.get('_id'));
  }
  for (const k of PATIENT_PARAMS) add(ex.params[k]);
  for (const k of PATIENT_QUERY) add(ex.query.get(k));
  return [...refs];
}

export interface RecordOptions {
  /** HMAC key for identifiers (from `audit.hashKey`). */
  hashKey: string;
  /** `audit.source`: which gateway instance wrote the record. */
  source: string;
  /** `always`: hash every subject; `patient-context`: only callers acting as or for a patient. */
  hashSubject: 'patient-context' | 'always';
}

export type RecordBuilder = (ex: Exchange, now?: Date) => TrailRecord;

/** Everything that can be prepared once per route (the HMAC key, the static parts of the record). */
export function createRecordBuilder(opts: RecordOptions): RecordBuilder {
  const hmac = auditPseudonymizer(opts.hashKey);
  const source = Object.freeze({ observer: opts.source, type: 'gateway' as const });

  return function buildAuditRecord(ex, now = new Date()) {
    return { resource: toAuditEvent(factsOfExchange(ex, now)) };
  };

  function factsOfExchange(ex: Exchange, now: Date): AuditFacts {
    const status = ex.status ?? ex.res.statusCode;
    const p = ex.principal;
    const patientContext = Boolean(p?.patient) || /^(Patient|RelatedPerson)\//.test(p?.fhirUser ?? '');
    const hashWho = patientContext || opts.hashSubject === 'always';
    const patients = patientRefs(ex).map(hmac).sort();
    const up = ex.upstream;
    return {
      type: 'rest',
      subtype: ex.route.fhir?.interaction ?? ex.method,
      action: actionOf(ex.method, ex.route.fhir?.interaction),
      recorded: now.toISOString(),
      period: { start: ex.receivedAt.toISOString() },
      outcome: {
        code: outcomeCode(status, ex.res.writableFinished),
        status,
        ...(ex.error ? { error: ex.error.code, reason: ex.error.reason } : {}),
      },
      agent: {
        issuer: p?.issuer,
        ...(p && (hashWho ? { subjectHash: hmac(p.subject) } : { subject: p.subject })),
        clientId: p?.clientId,
        ...(p?.fhirUser && (hashWho ? { fhirUserHash: hmac(p.fhirUser) } : { fhirUser: p.fhirUser })),
        // A patient's own network address identifies them too (HIPAA safe harbor lists IP addresses).
        ...(ex.ip && (hashWho ? { addressHash: hmac(ex.ip) } : { address: ex.ip })),
        patientContext,
      },
      source,
      entity: {
        route: ex.route.id,
        layer: ex.route.layer,
        resourceType: ex.route.fhir?.resourceType,
        ...(patients.length ? { patientHashes: patients } : {}),
      },
      purposeOfUse: ex.purposeOfUse,
      policy: { decisions: [...ex.decisions], deniedBy: ex.deniedBy, consent: ex.consent && { ...ex.consent } },
      // Targets name their upstream before the chain runs: only a call that happened is recorded.
      ...(up.status !== undefined || up.latencyMs !== undefined || up.error
        ? { upstream: { name: up.name, status: up.status, latencyMs: up.latencyMs === undefined ? undefined : Math.round(up.latencyMs * 10) / 10, error: up.error } }
        : {}),
      latencyMs: Math.round((performance.now() - ex.startedAt) * 10) / 10,
      requestId: ex.id,
      traceparent: ex.traceparent,
    };
  }
}
