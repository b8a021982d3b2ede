import { isBundle, mapBundle, type FhirResource } from '../../gateway/lib/fhir-bundle.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';
import { ownership } from './references.ts';

export interface FilterRules {
  /** The route's resource type; records without `resourceType` (plain JSON) are taken to be of it. */
  resourceType: string;
  referenceFields: readonly string[];
  requireReference: boolean;
  /** Plain-JSON lists: the member of a wrapper object holding the records (`{data: [...], total}`). */
  listField: string;
}

export interface Filtered {
  body: unknown;
  removed: number;
  /** The body was a single record of someone else: the whole response must be refused. */
  foreign: boolean;
}

/**
 * Keeps what is provably the patient's. A record of the route's own type without any patient reference
 * (e.g. trimmed by `_elements`) cannot prove it and goes when `requireReference`; resources of other
 * types without one (an included Practitioner) are not patient data and stay.
 */
function keep(v: unknown, patient: string, rules: FilterRules): boolean {
  if (!isPlainObject(v)) return !rules.requireReference;
  const r = (typeof v.resourceType === 'string' ? v : { ...v, resourceType: rules.resourceType }) as FhirResource;
  const owner = ownership(r, patient, rules.referenceFields);
  if (owner === 'none') return !(rules.requireReference && r.resourceType === rules.resourceType);
  return owner === 'own';
}

function filterList(records: unknown[], patient: string, rules: FilterRules) {
  const kept = records.filter((r) => keep(r, patient, rules));
  return { kept, removed: records.length - kept.length };
}

/**
 * A FHIR Bundle (nested ones too) or a plain JSON list loses the records of other patients; `total` is
 * corrected when it counted exactly the records present, dropped otherwise. A single record of someone
 * else is flagged so that the caller refuses the whole response.
 */
export function filterForPatient(body: unknown, patient: string, rules: FilterRules): Filtered {
  let removed = 0;
  const visit = (r: FhirResource): FhirResource | undefined => {
    if (!isBundle(r)) return keep(r, patient, rules) ? r : undefined;
    const inner = mapBundle(r, visit);
    removed += inner.removed;
    return inner.body as FhirResource;
  };
  if (isBundle(body)) return { body: visit(body), removed, foreign: false };
  if (Array.isArray(body)) {
    const { kept, removed: n } = filterList(body, patient, rules);
    return { body: kept, removed: n, foreign: false };
  }
  if (isPlainObject(body) && body.resourceType === undefined && Array.isArray(body[rules.listField])) {
    const records = body[rules.listField] as unknown[];
    const { kept, removed: n } = filterList(records, patient, rules);
    const out: Record<string, unknown> = { ...body, [rules.listField]: kept };
    if (n && typeof body.total === 'number' && body.total !== records.length) delete out.total;
    else if (n && typeof body.total === 'number') out.total = kept.length;
    return { body: out, removed: n, foreign: false };
  }
  if (body === null || body === undefined || body === '') return { body, removed: 0, foreign: false };
  return { body, removed: 0, foreign: !keep(body, patient, rules) };
}
