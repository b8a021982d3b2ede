/**
 * Audit facts ⇄ FHIR R4 AuditEvent. The gateway gathers the facts of one exchange (or one legacy message)
 * in `AuditFacts`; `toAuditEvent` writes them as a valid R4 AuditEvent, and `factsOf` reads them back, so
 * every reader of audit files sees one shape whether a line is format 1 (the facts themselves) or format 2
 * (an AuditEvent). Standard elements carry what FHIR has a place for; the rest goes into the seven
 * extensions under EXT (documented in docs/operations.md). Pseudonyms (HMAC-SHA256, keyed by
 * `audit.hashKey`) are identifiers of the system PSEUDONYM: a raw patient id never appears.
 */

import { deepFreeze } from '../lib/freeze.ts';

/** What one audit record states (format 1 wrote exactly this, with `schema: 'hcgw.audit/1'`). */
export interface AuditFacts {
  /** rest, or a legacy adapter's kind: hl7v2, x12, pas. */
  type: string;
  /** The FHIR interaction or HTTP method (rest), else the message kind (ADT^A01, 270/271, submit, decision). */
  subtype: string;
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  recorded: string;
  period?: { start: string };
  /** code is AuditEvent.outcome; status, error, reason, ack and the like are gateway facts. */
  outcome: { code: '0' | '4' | '8' | '12'; status?: number; error?: string; reason?: string; [k: string]: unknown };
  agent: AgentFacts;
  source: { observer: string; type: 'gateway' };
  /** route, layer, resourceType and patientHashes are standard; other keys are a legacy message's facts. */
  entity: { route?: string; layer?: string; resourceType?: string; patientHashes?: string[]; claimResponseHash?: string; [k: string]: unknown };
  purposeOfUse?: string;
  policy?: {
    decisions: Array<{ policy: string; outcome: string; reason?: string; detail?: Record<string, string | number | boolean> }>;
    deniedBy?: string;
    consent?: { consentIds: string[]; decision: string; removed?: number };
  };
  upstream?: { name?: string; status?: number; latencyMs?: number; error?: string };
  latencyMs?: number;
  requestId?: string;
  traceparent?: string;
}

export interface AgentFacts {
  issuer?: string;
  subject?: string;
  subjectHash?: string;
  clientId?: string;
  fhirUser?: string;
  fhirUserHash?: string;
  address?: string;
  addressHash?: string;
  patientContext?: boolean;
  /** HL7 v2 sending application and facility: a system, not a person. */
  application?: string;
  facility?: string;
  /** `gateway`: the gateway acted on its own (a background prior-auth poll). */
  system?: string;
}

// ---- the R4 types this module writes (only the elements it uses) ----
export interface Coding {
  system?: string;
  code: string;
  display?: string;
}
export interface CodeableConcept {
  coding: Coding[];
}
export interface Identifier {
  system?: string;
  value?: string;
}
export interface Reference {
  reference?: string;
  type?: string;
  identifier?: Identifier;
  display?: string;
}
export interface Extension {
  url: string;
  valueString?: string;
  valueCode?: string;
  valueInteger?: number;
  valueDecimal?: number;
  valueBoolean?: boolean;
  extension?: Extension[];
}
export interface AuditEventAgent {
  type?: CodeableConcept;
  role?: CodeableConcept[];
  who?: Reference;
  altId?: string;
  name?: string;
  requestor: boolean;
  network?: { address: string; type?: '1' | '2' };
}
export interface AuditEventEntity {
  what?: Reference;
  type?: Coding;
  role?: Coding;
  detail?: Array<{ type: string; valueString: string }>;
}
export interface AuditEvent {
  resourceType: 'AuditEvent';
  extension?: Extension[];
  type: Coding;
  subtype?: Coding[];
  action?: AuditFacts['action'];
  period?: { start?: string; end?: string };
  recorded: string;
  outcome?: AuditFacts['outcome']['code'];
  outcomeDesc?: string;
  purposeOfEvent?: CodeableConcept[];
  agent: AuditEventAgent[];
  source: { observer: Reference; type?: Coding[] };
  entity?: AuditEventEntity[];
}

/** Code systems and identifier systems. */
export const SYSTEM = {
  auditEventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  restfulInteraction: 'http://hl7.org/fhir/restful-interaction',
  httpVerb: 'http://hl7.org/fhir/http-verb',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  sourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  resourceTypes: 'http://hl7.org/fhir/resource-types',
  /** IHE Basic Audit Log Patterns: the entity that carries the X-Request-Id. */
  balpEntityType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType',
  /** The gateway's own event types (legacy adapters) and subtypes (their message kinds, unusual methods). */
  gatewayEventType: 'https://hcgw.dev/fhir/CodeSystem/audit-event-type',
  gatewayEventSubtype: 'https://hcgw.dev/fhir/CodeSystem/audit-event-subtype',
  /** Identifier system of every HMAC-SHA256 pseudonym (patients, patient subjects, claim responses). */
  pseudonym: 'https://hcgw.dev/fhir/sid/hmac-sha256',
  /** HL7 v2 sending facility (MSH-4) of an inbound feed. */
  hl7Facility: 'https://hcgw.dev/fhir/sid/hl7v2-facility',
} as const;

const SD = 'https://hcgw.dev/fhir/StructureDefinition/';
/** The gateway's extensions on AuditEvent (each documented in docs/operations.md). */
export const EXT = {
  /** route, layer, status, latencyMs, traceparent, patientContext: the exchange as the gateway saw it. */
  exchange: `${SD}exchange`,
  /** One per policy decision, in chain order: policy, outcome, reason, detail.*. */
  decision: `${SD}decision`,
  /** error (stable problem code), reason, deniedBy, ack and other outcome facts beyond the code. */
  outcomeDetail: `${SD}outcome-detail`,
  /** decision, consentId (repeated), removed. */
  consent: `${SD}consent`,
  /** name, status, latencyMs, error of the upstream call. */
  upstream: `${SD}upstream`,
  /** A legacy message's facts: control numbers, event id and sequence, coverage, prior-auth decision… */
  message: `${SD}message`,
} as const;

/** Pseudonymized network addresses carry this prefix, so no reader takes them for an address. */
const HASHED_ADDRESS = 'hmac-sha256:';

const REST_INTERACTIONS = new Set(['read', 'vread', 'update', 'patch', 'delete', 'history', 'create', 'search', 'search-type', 'operation', 'capabilities', 'transaction', 'batch']);
const HTTP_VERBS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']);
// Every object written here has its keys in sorted order (code, display, system…): the record is hashed
// over its canonical JSON (gateway/audit/chain.ts), and an object already in that order is written by the
// engine's JSON.stringify instead of key by key. The order in memory changes nothing in the sealed line.
// These are shared by every record (frozen: no record can change another's).
const ROLE: Readonly<Record<'client' | 'user', CodeableConcept>> = deepFreeze({
  client: { coding: [{ code: '110153', display: 'Source Role ID', system: SYSTEM.dicom }] },
  user: { coding: [{ code: 'IRCP', display: 'information recipient', system: SYSTEM.participationType }] },
});
const SOURCE_TYPE = deepFreeze([{ code: '4', display: 'Application Server', system: SYSTEM.sourceType }]);
const REQUEST_ID_TYPE = deepFreeze({ code: 'XrequestId', system: SYSTEM.balpEntityType });
const DOMAIN_RESOURCE_ROLE = deepFreeze({ code: '4', display: 'Domain Resource', system: SYSTEM.objectRole });
const PATIENT_ROLE = deepFreeze({ code: '1', display: 'Patient', system: SYSTEM.objectRole });
const PERSON_TYPE = deepFreeze({ code: '1', display: 'Person', system: SYSTEM.entityType });
const REST_TYPE = deepFreeze({ code: 'rest', display: 'RESTful Operation', system: SYSTEM.auditEventType });

// ---- complex extensions from plain objects, and back ----
type Scalar = string | number | boolean;

function scalarExtension(url: string, v: Scalar): Extension {
  if (typeof v === 'boolean') return { url, valueBoolean: v };
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? { url, valueInteger: v } : { url, valueDecimal: v };
  return { url, valueString: v };
}

/** Flattens an object into sub-extensions: nested keys dotted (`control.isa13`), arrays repeated. */
function subExtensions(obj: Record<string, unknown>, prefix = '', out: Extension[] = []): Extension[] {
  for (const k in obj) {
    const v = obj[k];
    if (v === undefined || v === null || !Object.hasOwn(obj, k)) continue;
    const url = `${prefix}${k}`;
    if (Array.isArray(v)) for (const item of v) out.push(scalarExtension(url, item as Scalar));
    else if (typeof v === 'object') subExtensions(v as Record<string, unknown>, `${url}.`, out);
    else out.push(scalarExtension(url, v as Scalar));
  }
  return out;
}

/** Appends the complex extension `url` holding `obj`'s facts to `to`, unless it has none. */
function complex(to: Extension[], url: string, obj: Record<string, unknown>): void {
  const extension = subExtensions(obj);
  if (extension.length) to.push({ extension, url });
}

const scalarOf = (e: Extension): Scalar | undefined => e.valueString ?? e.valueCode ?? e.valueInteger ?? e.valueDecimal ?? e.valueBoolean;

/** The inverse of subExtensions; keys in `arrays` are always arrays (a one-element array reads back as one). */
function objectOf(ext: Extension | undefined, arrays: ReadonlySet<string> = new Set()): Record<string, any> {
  const out: Record<string, any> = {};
  for (const e of ext?.extension ?? []) {
    const v = scalarOf(e);
    if (v === undefined) continue;
    const path = e.url.split('.');
    let at = out;
    for (const p of path.slice(0, -1)) at = at[p] ??= {};
    const last = path[path.length - 1];
    if (arrays.has(e.url)) (at[last] ??= []).push(v);
    else if (last in at) at[last] = [...[at[last]].flat(), v];
    else at[last] = v;
  }
  return out;
}

const pseudonym = (type: string | undefined, value: string): Reference => (type ? { identifier: { system: SYSTEM.pseudonym, value }, type } : { identifier: { system: SYSTEM.pseudonym, value } });
const defined = <T extends Record<string, unknown>>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

function subtypeCoding(type: string, subtype: string): Coding {
  if (type === 'rest' && REST_INTERACTIONS.has(subtype)) return { code: subtype, system: SYSTEM.restfulInteraction };
  if (type === 'rest' && HTTP_VERBS.has(subtype)) return { code: subtype, system: SYSTEM.httpVerb };
  return { code: subtype, system: SYSTEM.gatewayEventSubtype };
}

function agentsOf(a: AgentFacts): AuditEventAgent[] {
  const agents: AuditEventAgent[] = [];
  const user = a.subject !== undefined || a.subjectHash !== undefined;
  if (user) {
    const fhirUserType = /^([A-Z][A-Za-z]+)\//.exec(a.fhirUser ?? '')?.[1];
    const agent = {} as AuditEventAgent;
    if (a.fhirUserHash !== undefined) agent.altId = a.fhirUserHash;
    agent.requestor = true;
    agent.type = ROLE.user;
    agent.who = a.subjectHash !== undefined ? pseudonym(undefined, a.subjectHash) : defined({ identifier: defined({ system: a.issuer, value: a.subject }), reference: a.fhirUser, type: fhirUserType });
    agents.push(agent);
  }
  const network = a.addressHash !== undefined ? { address: `${HASHED_ADDRESS}${a.addressHash}` } : a.address !== undefined ? { address: a.address, type: '2' as const } : undefined;
  let who: Reference;
  if (a.application !== undefined || a.facility !== undefined) who = defined({ display: a.application, identifier: defined({ system: SYSTEM.hl7Facility, value: a.facility }) });
  else if (a.system === 'gateway') who = { display: 'gateway' };
  else if (a.issuer !== undefined || a.clientId !== undefined) who = { identifier: defined({ system: a.issuer, value: a.clientId }) };
  else who = { display: 'unauthenticated' };
  const client = {} as AuditEventAgent;
  if (network) client.network = network;
  client.requestor = !user;
  client.type = ROLE.client;
  client.who = who;
  agents.push(client);
  return agents;
}

/** `outcomeDesc`: a line a person reads in a FHIR server's UI; the structured facts are in extensions. */
function describe(o: AuditFacts['outcome']): string | undefined {
  const parts = [o.status, o.error, o.reason].filter((p) => p !== undefined);
  return parts.length ? parts.join(' ') : undefined;
}

export function toAuditEvent(f: AuditFacts): AuditEvent {
  const { code, status, error, reason, ...outcomeRest } = f.outcome;
  const { route, layer, resourceType, patientHashes, claimResponseHash, ...message } = f.entity;
  const entity: AuditEventEntity[] = [];
  if (resourceType) entity.push({ role: DOMAIN_RESOURCE_ROLE, type: { code: resourceType, system: SYSTEM.resourceTypes }, what: { type: resourceType } });
  for (const h of patientHashes ?? []) entity.push({ role: PATIENT_ROLE, type: PERSON_TYPE, what: pseudonym('Patient', h) });
  if (claimResponseHash) entity.push({ role: DOMAIN_RESOURCE_ROLE, type: { code: 'ClaimResponse', system: SYSTEM.resourceTypes }, what: pseudonym('ClaimResponse', claimResponseHash) });
  if (f.requestId) entity.push({ type: REQUEST_ID_TYPE, what: { identifier: { value: f.requestId } } });
  const p = f.policy;
  const extension: Extension[] = [];
  complex(extension, EXT.exchange, { route, layer, latencyMs: f.latencyMs, traceparent: f.traceparent, patientContext: f.agent.patientContext });
  for (const d of p?.decisions ?? []) complex(extension, EXT.decision, d);
  complex(extension, EXT.outcomeDetail, { status, error, reason, deniedBy: p?.deniedBy, ...outcomeRest });
  if (p?.consent) complex(extension, EXT.consent, { decision: p.consent.decision, consentId: p.consent.consentIds, removed: p.consent.removed });
  if (f.upstream) complex(extension, EXT.upstream, f.upstream);
  complex(extension, EXT.message, message);
  // Keys in sorted order (see ROLE above), absent elements left out.
  const e = {} as AuditEvent;
  if (f.action !== undefined) e.action = f.action;
  e.agent = agentsOf(f.agent);
  if (entity.length) e.entity = entity;
  if (extension.length) e.extension = extension;
  if (code !== undefined) e.outcome = code;
  const outcomeDesc = describe(f.outcome);
  if (outcomeDesc !== undefined) e.outcomeDesc = outcomeDesc;
  if (f.period !== undefined) e.period = f.period;
  if (f.purposeOfUse) e.purposeOfEvent = [{ coding: [{ code: f.purposeOfUse, system: SYSTEM.actReason }] }];
  e.recorded = f.recorded;
  e.resourceType = 'AuditEvent';
  e.source = { observer: { display: f.source.observer }, type: [...SOURCE_TYPE] };
  e.subtype = [subtypeCoding(f.type, f.subtype)];
  e.type = f.type === 'rest' ? REST_TYPE : { code: f.type, system: SYSTEM.gatewayEventType };
  return e;
}

// ---- reading back ----
const CONSENT_ARRAYS = new Set(['consentId']);
const isType = (c: CodeableConcept | undefined, code: string) => c?.coding?.some((x) => x.code === code) ?? false;

function agentFacts(e: AuditEvent, patientContext: unknown): AgentFacts {
  const user = e.agent.find((a) => isType(a.type, ROLE.user.coding[0].code));
  const client = e.agent.find((a) => isType(a.type, ROLE.client.coding[0].code));
  const out: AgentFacts = {};
  const cid = client?.who?.identifier;
  if (cid?.system === SYSTEM.hl7Facility || (client?.who?.display !== undefined && cid === undefined && client.who.display !== 'gateway' && client.who.display !== 'unauthenticated')) {
    out.application = client?.who?.display;
    out.facility = cid?.value;
  } else if (client?.who?.display === 'gateway') out.system = 'gateway';
  else if (cid) {
    out.issuer = cid.system;
    out.clientId = cid.value;
  }
  const uid = user?.who?.identifier;
  if (uid?.system === SYSTEM.pseudonym) out.subjectHash = uid.value;
  else if (uid) {
    out.issuer ??= uid.system;
    out.subject = uid.value;
  }
  if (user?.who?.reference) out.fhirUser = user.who.reference;
  if (user?.altId) out.fhirUserHash = user.altId;
  const addr = client?.network?.address;
  if (addr?.startsWith(HASHED_ADDRESS)) out.addressHash = addr.slice(HASHED_ADDRESS.length);
  else if (addr !== undefined) out.address = addr;
  if (typeof patientContext === 'boolean') out.patientContext = patientContext;
  return defined(out as Record<string, unknown>) as AgentFacts;
}

/** The facts an AuditEvent written by toAuditEvent states (other AuditEvents: what can be recognized). */
export function factsOf(e: AuditEvent): AuditFacts {
  const ext = (url: string) => (e.extension ?? []).filter((x) => x.url === url);
  const { route, layer, latencyMs, traceparent, patientContext } = objectOf(ext(EXT.exchange)[0]);
  const { status, error, reason, deniedBy, ...outcomeRest } = objectOf(ext(EXT.outcomeDetail)[0]);
  const consentExt = ext(EXT.consent)[0];
  const consent = consentExt && objectOf(consentExt, CONSENT_ARRAYS);
  const upstreamExt = ext(EXT.upstream)[0];
  const entities = e.entity ?? [];
  const patientHashes = entities.filter((x) => x.what?.type === 'Patient' && x.what.identifier?.system === SYSTEM.pseudonym).map((x) => x.what!.identifier!.value!);
  const resource = entities.find((x) => x.type?.system === SYSTEM.resourceTypes && !x.what?.identifier);
  const claimResponse = entities.find((x) => x.what?.type === 'ClaimResponse' && x.what.identifier?.system === SYSTEM.pseudonym);
  const requestId = entities.find((x) => x.type?.code === REQUEST_ID_TYPE.code && x.type.system === REQUEST_ID_TYPE.system)?.what?.identifier?.value;
  const decisions = ext(EXT.decision).map((d) => objectOf(d) as NonNullable<AuditFacts['policy']>['decisions'][number]);
  const isRest = e.type.code === 'rest' && e.type.system === SYSTEM.auditEventType;
  return defined({
    type: e.type.code,
    subtype: e.subtype?.[0]?.code ?? '',
    action: e.action ?? 'E',
    recorded: e.recorded,
    period: e.period?.start ? { start: e.period.start } : undefined,
    outcome: defined({ code: e.outcome ?? '0', status, error, reason, ...outcomeRest }),
    agent: agentFacts(e, patientContext),
    source: { observer: e.source.observer.display ?? e.source.observer.identifier?.value ?? '', type: 'gateway' as const },
    entity: defined({
      route,
      layer,
      resourceType: resource?.type?.code,
      ...(patientHashes.length ? { patientHashes } : {}),
      claimResponseHash: claimResponse?.what?.identifier?.value,
      ...objectOf(ext(EXT.message)[0]),
    }),
    purposeOfUse: e.purposeOfEvent?.[0]?.coding?.[0]?.code,
    // HTTP records always state the trace (possibly empty); legacy records state none.
    policy: isRest ? defined({ decisions, deniedBy, consent: consent && defined({ consentIds: consent.consentId ?? [], decision: consent.decision, removed: consent.removed }) }) : undefined,
    upstream: upstreamExt ? objectOf(upstreamExt) : undefined,
    latencyMs,
    requestId,
    traceparent,
  }) as AuditFacts;
}
