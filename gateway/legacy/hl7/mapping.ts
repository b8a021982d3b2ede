import type { AdtEvent } from '../schema.ts';

/**
 * The declared HL7 v2 → FHIR R4 mapping of ADT messages: a table, not code. Each row names a FHIR element
 * of Patient or Encounter, the HL7 field it comes from (or a constant), and a named conversion. Rows with
 * `events` apply to those triggers only. The listener publishes the resulting resources as event data.
 */
export type FieldReader = (path: string) => string;

type Conversion = 'text' | 'date' | 'dateTime' | 'gender' | 'encounterClass' | 'patientReference';

export interface MappingRow {
  resource: 'Patient' | 'Encounter';
  /** Dotted FHIR path with [n] indexes, e.g. `name[0].given[0]`. */
  element: string;
  from?: string;
  /** Several fields (components) joined by ` / ` (e.g. point of care / room / bed). */
  join?: readonly string[];
  const?: string;
  as?: Conversion;
  events?: readonly AdtEvent[];
}

const VISITS: readonly AdtEvent[] = ['A01', 'A02', 'A03', 'A04', 'A08'];

export const ADT_MAPPING: readonly MappingRow[] = [
  { resource: 'Patient', element: 'resourceType', const: 'Patient' },
  { resource: 'Patient', element: 'id', from: 'PID.3.1' },
  { resource: 'Patient', element: 'identifier[0].value', from: 'PID.3.1' },
  { resource: 'Patient', element: 'identifier[0].assigner.display', from: 'PID.3.4.1' },
  { resource: 'Patient', element: 'name[0].family', from: 'PID.5.1' },
  { resource: 'Patient', element: 'name[0].given[0]', from: 'PID.5.2' },
  { resource: 'Patient', element: 'birthDate', from: 'PID.7.1', as: 'date' },
  { resource: 'Patient', element: 'gender', from: 'PID.8', as: 'gender' },
  // A40: the surviving patient replaces the one named in MRG-1.
  { resource: 'Patient', element: 'link[0].type', const: 'replaces', events: ['A40'] },
  { resource: 'Patient', element: 'link[0].other.reference', from: 'MRG.1.1', as: 'patientReference', events: ['A40'] },
  { resource: 'Encounter', element: 'resourceType', const: 'Encounter', events: VISITS },
  { resource: 'Encounter', element: 'id', from: 'PV1.19.1', events: VISITS },
  { resource: 'Encounter', element: 'status', const: 'in-progress', events: ['A01', 'A02'] },
  { resource: 'Encounter', element: 'status', const: 'finished', events: ['A03'] },
  { resource: 'Encounter', element: 'status', const: 'arrived', events: ['A04'] },
  { resource: 'Encounter', element: 'status', const: 'unknown', events: ['A08'] },
  { resource: 'Encounter', element: 'class.system', const: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', events: VISITS },
  { resource: 'Encounter', element: 'class.code', from: 'PV1.2', as: 'encounterClass', events: VISITS },
  { resource: 'Encounter', element: 'subject.reference', from: 'PID.3.1', as: 'patientReference', events: VISITS },
  { resource: 'Encounter', element: 'location[0].location.display', join: ['PV1.3.1', 'PV1.3.2', 'PV1.3.3'], events: VISITS },
  { resource: 'Encounter', element: 'period.start', from: 'PV1.44.1', as: 'dateTime', events: VISITS },
  { resource: 'Encounter', element: 'period.end', from: 'PV1.45.1', as: 'dateTime', events: ['A03'] },
];

/** Fields without which an event means nothing (beyond MSH): missing → AR. */
export const REQUIRED_FIELDS: Record<AdtEvent, readonly string[]> = {
  A01: ['PID.3.1', 'PV1.2', 'PV1.19.1'],
  A02: ['PID.3.1', 'PV1.2', 'PV1.3', 'PV1.19.1'],
  A03: ['PID.3.1', 'PV1.2', 'PV1.19.1', 'PV1.45.1'],
  A04: ['PID.3.1', 'PV1.2', 'PV1.19.1'],
  A08: ['PID.3.1', 'PV1.19.1'],
  A40: ['PID.3.1', 'MRG.1.1'],
};

export const EVENT_TYPE_OF: Record<AdtEvent, string> = {
  A01: 'encounter.admitted',
  A02: 'encounter.transferred',
  A03: 'encounter.discharged',
  A04: 'encounter.registered',
  A08: 'encounter.updated',
  A40: 'patient.merged',
};

const GENDER: Record<string, string> = { M: 'male', F: 'female', O: 'other', U: 'unknown', A: 'other', N: 'unknown' };
const CLASS: Record<string, string> = { I: 'IMP', O: 'AMB', E: 'EMER', P: 'PRENC', R: 'AMB', B: 'AMB' };
const TS = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2})(?:\.\d{1,4})?)?)?([+-]\d{4})?$/;
/** FHIR ids and references allow only this; anything else would be guessed at, so it is refused. */
const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

type Converted = { ok: true; value: string } | { ok: false };

function convert(as: Conversion, v: string): Converted {
  const ok = (value: string | undefined): Converted => (value === undefined ? { ok: false } : { ok: true, value });
  switch (as) {
    case 'text':
      return ok(v);
    case 'gender':
      return ok(GENDER[v]);
    case 'encounterClass':
      return ok(CLASS[v]);
    case 'patientReference':
      return ok(FHIR_ID.test(v) ? `Patient/${v}` : undefined);
    case 'date': {
      const m = TS.exec(v);
      return ok(m ? `${m[1]}-${m[2]}-${m[3]}` : undefined);
    }
    case 'dateTime': {
      const m = TS.exec(v);
      if (!m) return { ok: false };
      if (m[4] === undefined) return ok(`${m[1]}-${m[2]}-${m[3]}`);
      // HL7 TS without an offset is read as UTC (documented); with one, the offset is kept.
      const zone = m[7] ? `${m[7].slice(0, 3)}:${m[7].slice(3)}` : 'Z';
      return ok(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}${zone}`);
    }
  }
}

function setPath(target: Record<string, unknown>, path: string, value: string): void {
  const keys = path.split('.').flatMap((k) => k.split(/\[(\d+)\]/).filter(Boolean));
  let node: Record<string, unknown> | unknown[] = target;
  keys.forEach((k, i) => {
    const last = i === keys.length - 1;
    const key = /^\d+$/.test(k) ? Number(k) : k;
    const container = node as Record<string | number, unknown>;
    if (last) container[key] = value;
    else node = (container[key] ??= /^\d+$/.test(keys[i + 1]) ? [] : {}) as Record<string, unknown>;
  });
}

/**
 * Applies the mapping for one trigger. Empty source fields are left out; a present value that its
 * conversion refuses (a bad date, an unknown gender code, an id FHIR cannot hold) rejects the message.
 */
export function mapResources(rows: readonly MappingRow[], trigger: AdtEvent, read: FieldReader): { ok: true; resources: Record<string, unknown> } | { ok: false; reason: string } {
  const resources: Record<string, Record<string, unknown>> = {};
  for (const row of rows) {
    if (row.events && !row.events.includes(trigger)) continue;
    const raw = row.const ?? (row.join ? row.join.map(read).filter(Boolean).join(' / ') : row.from ? read(row.from) : '');
    if (!raw) continue;
    const converted = row.const !== undefined ? ({ ok: true, value: raw } as const) : convert(row.as ?? 'text', raw);
    if (!converted.ok) return { ok: false, reason: `${row.from?.replace('.', '-')} invalid` };
    if ((row.element === 'id') && !FHIR_ID.test(converted.value)) return { ok: false, reason: `${row.from?.replace('.', '-')} invalid` };
    setPath((resources[row.resource] ??= {}), row.element, converted.value);
  }
  return { ok: true, resources: { patient: resources.Patient, ...(resources.Encounter ? { encounter: resources.Encounter } : {}) } };
}
