import { patientIdFrom, patientsReferenced, referenceString, type ReferenceResolver } from '../../gateway/lib/fhir-reference.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';
import type { FhirResource } from '../../gateway/lib/fhir-bundle.ts';

/** The id of the Patient a `urn:uuid:` (fullUrl) reference resolves to in the enclosing Bundles. */
function resolvedPatient(ref: string, resolve?: ReferenceResolver): string | undefined {
  const target = resolve?.(ref);
  return isPlainObject(target) && target.resourceType === 'Patient' && typeof target.id === 'string' ? target.id : undefined;
}

export type Ownership = 'own' | 'foreign' | 'none';

/**
 * Whose data a resource is, judged strictly. Every reference anywhere in it counts (Group.member.entity,
 * Provenance.target, Appointment.participant.actor, Task.for, extensions…): one naming any patient but
 * `patient`, or one that may name a patient but cannot be attributed (unresolved `urn:uuid:`,
 * identifier-only), makes it `foreign`; a Patient is judged by its id as well. The configured patient
 * reference fields must moreover name `patient` itself (a Group as subject is not the patient). `own`
 * when the patient is named, `none` when no patient is named at all.
 */
export function ownership(r: FhirResource, patient: string, fields: readonly string[], resolve?: ReferenceResolver): Ownership {
  const named = patientsReferenced(r, resolve);
  if (named.unresolvable || [...named.ids].some((id) => id !== patient)) return 'foreign';
  let seen = named.ids.size > 0;
  for (const f of fields) {
    if (!Object.hasOwn(r, f)) continue;
    for (const v of Array.isArray(r[f]) ? (r[f] as unknown[]) : [r[f]]) {
      seen = true;
      const ref = referenceString(v);
      if (ref === undefined || (patientIdFrom(ref) ?? resolvedPatient(ref, resolve)) !== patient) return 'foreign';
    }
  }
  return seen ? 'own' : 'none';
}
