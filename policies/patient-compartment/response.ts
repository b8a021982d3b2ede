import { filterResources, isClassifiable, type FhirResource, type Visit } from '../../gateway/lib/fhir-bundle.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';
import { ownership } from './references.ts';

export interface FilterRules {
  /** The route's resource type; records without `resourceType` (plain JSON) are taken to be of it. */
  resourceType: string;
  referenceFields: readonly string[];
  requireReference: boolean;
  /** Plain-JSON lists: the member of a wrapper object holding the records (`{data: [...], total}`). */
  listField: string;
  /**
   * The body was sent as FHIR (`application/fhir+json`): then only a resource with a `resourceType` can be
   * judged, and anything else (a record without one, a bare list) is refused rather than taken to be of
   * the route's type, which only plain-JSON systems such as billing need.
   */
  fhirBody?: boolean;
}

export interface Filtered {
  body: unknown;
  removed: number;
  /** The body was a single record of someone else (or one that cannot be judged): refuse the response. */
  foreign: boolean;
}

/**
 * Keeps what is provably the patient's. A record of the route's own type without any patient reference
 * (e.g. trimmed by `_elements`) cannot prove it and goes when `requireReference`; resources of other
 * types without one (an included Practitioner, a contained Medication) are not patient data and stay.
 * Bundles are containers: their entries were judged one by one before.
 */
function keep(r: FhirResource, patient: string, rules: FilterRules, at?: Visit): boolean {
  if (r.resourceType === 'Bundle') return true;
  const owner = ownership(r, patient, rules.referenceFields, at?.resolve);
  if (owner === 'none') return !(rules.requireReference && !at?.parent && r.resourceType === rules.resourceType);
  return owner === 'own';
}

/** Plain JSON records (no FHIR envelope) are taken to be of the route's type. */
function keepRecord(v: unknown, patient: string, rules: FilterRules): boolean {
  if (!isPlainObject(v)) return false;
  if (v.resourceType === undefined) return keep({ ...v, resourceType: rules.resourceType }, patient, rules);
  return isClassifiable(v) && filterResources(v, (r, at) => (keep(r, patient, rules, at) ? r : undefined)).removed === 0;
}

function filterList(records: unknown[], patient: string, rules: FilterRules) {
  const kept = records.filter((r) => keepRecord(r, patient, rules));
  return { kept, removed: records.length - kept.length };
}

/**
 * A FHIR body (Bundles, Parameters and contained resources at any depth) or a plain JSON list loses what
 * is not the patient's; `total` is corrected when it counted exactly the records present, dropped
 * otherwise. A single record of someone else, or one that cannot be judged, is flagged so that the caller
 * refuses the whole response.
 */
export function filterForPatient(body: unknown, patient: string, rules: FilterRules): Filtered {
  if (body === null || body === undefined || body === '') return { body, removed: 0, foreign: false };
  if (rules.fhirBody && !(isPlainObject(body) && typeof body.resourceType === 'string')) return { body, removed: 0, foreign: true };
  if (Array.isArray(body)) {
    const { kept, removed } = filterList(body, patient, rules);
    return { body: kept, removed, foreign: false };
  }
  if (isPlainObject(body) && body.resourceType === undefined && Array.isArray(body[rules.listField])) {
    const records = body[rules.listField] as unknown[];
    const { kept, removed: n } = filterList(records, patient, rules);
    const out: Record<string, unknown> = { ...body, [rules.listField]: kept };
    if (n && typeof body.total === 'number' && body.total !== records.length) delete out.total;
    else if (n && typeof body.total === 'number') out.total = kept.length;
    return { body: out, removed: n, foreign: false };
  }
  if (isPlainObject(body) && body.resourceType === undefined) return { body, removed: 0, foreign: !keepRecord(body, patient, rules) };
  if (!isPlainObject(body)) return { body, removed: 0, foreign: true };
  const out = filterResources(body, (r, at) => (keep(r, patient, rules, at) ? r : undefined));
  return { body: out.body, removed: out.removed, foreign: out.body === undefined };
}

const FHIR_JSON = /^application\/fhir\+json\b/i;

/** An upstream answer judged as what its content type says it is: FHIR or plain JSON (`fhirBody`). */
export function filterAnswerForPatient(answer: { body: unknown; headers: Record<string, string | string[] | undefined> }, patient: string, rules: FilterRules): Filtered {
  return filterForPatient(answer.body, patient, { ...rules, fhirBody: FHIR_JSON.test(String(answer.headers['content-type'] ?? '')) });
}
