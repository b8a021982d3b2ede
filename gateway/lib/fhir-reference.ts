import { isPlainObject } from './json-path.ts';

/**
 * The one FHIR reference parser of the gateway: which patient a reference, a search value or a launch
 * context names, and every patient a resource points at. Filters that decide whose data a resource is
 * (patient-compartment, consent) use only this, so that every spelling of a reference is judged alike.
 */

/** FHIR id syntax; anything else cannot name a patient. */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const ID = '[A-Za-z0-9\\-.]{1,64}';
/** `Type/id`, `Type/id/_history/v`, optionally behind an absolute base `https://host/fhir/`. */
const LITERAL = new RegExp(`^(?:https?://[^\\s?#]+/)?([A-Z][A-Za-z]{0,63})/(${ID})(?:/_history/${ID})?$`);

export type ParsedReference =
  | { kind: 'literal'; type: string; id: string }
  | { kind: 'urn'; urn: string }
  | { kind: 'contained'; id: string }
  | { kind: 'unparsable' };

export function parseReference(ref: string): ParsedReference {
  if (ref.startsWith('#')) return { kind: 'contained', id: ref.slice(1) };
  if (/^urn:(uuid|oid):/i.test(ref)) return { kind: 'urn', urn: ref };
  const m = LITERAL.exec(ref);
  return m ? { kind: 'literal', type: m[1], id: m[2] } : { kind: 'unparsable' };
}

/** The patient id a reference names (`Patient/p1`, `https://…/Patient/p1`, `Patient/p1/_history/2`), else undefined. */
export function patientIdOfReference(ref: string): string | undefined {
  const p = parseReference(ref);
  return p.kind === 'literal' && p.type === 'Patient' ? p.id : undefined;
}

/** A search value or launch context: a bare id (`p1`) or a patient reference; anything else → undefined. */
export function patientIdFrom(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return FHIR_ID.test(value) ? value : patientIdOfReference(value);
}

/** `{reference}` of a FHIR Reference value, or the string itself (plain-JSON records). */
export const referenceString = (v: unknown): string | undefined => (typeof v === 'string' ? v : isPlainObject(v) && typeof v.reference === 'string' ? v.reference : undefined);

/** Every Reference-shaped object anywhere in a value (any depth, arrays included), `contained` skipped. */
export function referencesIn(value: unknown, out: Array<Record<string, unknown>> = [], skipContained = true): Array<Record<string, unknown>> {
  if (Array.isArray(value)) for (const v of value) referencesIn(v, out, false);
  else if (isPlainObject(value)) {
    if (typeof value.reference === 'string' || (value.type === 'Patient' && value.identifier !== undefined)) out.push(value);
    for (const [k, v] of Object.entries(value)) if (!(skipContained && k === 'contained')) referencesIn(v, out, false);
  }
  return out;
}

/** Resolves `urn:uuid:` (and other fullUrl) references of the enclosing Bundles to their resources. */
export type ReferenceResolver = (ref: string) => unknown;

export interface PatientsReferenced {
  /** Patient ids named anywhere in the resource (contained resources excluded: they are judged apart). */
  ids: Set<string>;
  /** A reference that may name a patient but cannot be attributed: an unresolved `urn:`, an identifier-only
   *  Patient reference, something that mentions `Patient` but is not a valid reference. */
  unresolvable: boolean;
}

/** Every patient a resource points at, in any field; a Patient resource names itself by its id. */
export function patientsReferenced(resource: Record<string, unknown>, resolve: ReferenceResolver = () => undefined): PatientsReferenced {
  const ids = new Set<string>();
  let unresolvable = false;
  if (resource.resourceType === 'Patient') {
    if (typeof resource.id === 'string' && FHIR_ID.test(resource.id)) ids.add(resource.id);
    else unresolvable = true;
  }
  for (const r of referencesIn(resource)) {
    if (typeof r.reference !== 'string') {
      unresolvable = true; // identifier-only Patient reference: whose it is cannot be checked
      continue;
    }
    const p = parseReference(r.reference);
    if (p.kind === 'literal') {
      if (p.type === 'Patient') ids.add(p.id);
      continue;
    }
    if (p.kind === 'contained') continue;
    const target = resolve(r.reference);
    if (isPlainObject(target) && typeof target.resourceType === 'string') {
      if (target.resourceType === 'Patient') {
        if (typeof target.id === 'string' && FHIR_ID.test(target.id)) ids.add(target.id);
        else unresolvable = true;
      }
    } else if (p.kind === 'urn' || /patient/i.test(r.reference) || r.type === 'Patient') unresolvable = true;
  }
  return { ids, unresolvable };
}
