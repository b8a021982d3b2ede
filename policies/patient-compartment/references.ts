import { isPlainObject } from '../../gateway/lib/json-path.ts';
import type { FhirResource } from '../../gateway/lib/fhir-bundle.ts';

/** FHIR id syntax; anything else cannot name a patient. */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const PATIENT_REF = /^(?:.*\/)?Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/**
 * The patient id a reference or search value names: `p1`, `Patient/p1`, `https://…/Patient/p1`,
 * `Patient/p1/_history/2`. Undefined for anything else (another type, a contained `#ref`, garbage).
 */
export function patientIdOf(value: string): string | undefined {
  if (FHIR_ID.test(value)) return value;
  return PATIENT_REF.exec(value)?.[1];
}

export type Ownership = 'own' | 'foreign' | 'none';

/**
 * Whose data a resource is, judged strictly: a Patient by its id; anything else by every patient
 * reference field it has (a Reference, a plain string, or a list of them). All must name `patient` for
 * `own`; a field naming another patient, another type (a Group subject) or nothing resolvable (an
 * identifier-only reference) makes it `foreign`; no such field at all is `none`.
 */
export function ownership(r: FhirResource, patient: string, fields: readonly string[]): Ownership {
  if (r.resourceType === 'Patient') return r.id === patient ? 'own' : 'foreign';
  let seen = false;
  for (const f of fields) {
    if (!Object.hasOwn(r, f)) continue;
    const values = Array.isArray(r[f]) ? (r[f] as unknown[]) : [r[f]];
    for (const v of values) {
      seen = true;
      const ref = typeof v === 'string' ? v : isPlainObject(v) && typeof v.reference === 'string' ? v.reference : undefined;
      if (ref === undefined || patientIdOf(ref) !== patient) return 'foreign';
    }
  }
  return seen ? 'own' : 'none';
}
