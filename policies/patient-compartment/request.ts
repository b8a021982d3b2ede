import { BadRequest, Forbidden, UnsupportedMediaType, type Exchange } from '../../gateway/sdk/index.ts';
import { isResource } from '../../gateway/lib/fhir-bundle.ts';
import { refuseSearchBody, splitValues } from '../../gateway/lib/fhir-search.ts';
import { patientIdFrom } from '../../gateway/lib/fhir-reference.ts';
import { ownership } from './references.ts';
import { filterForPatient } from './response.ts';

export interface CompartmentRules {
  resourceType: string;
  /** Route path parameters that name a patient. */
  pathParams: readonly string[];
  /** Search parameters that name the patient (`_id` on Patient searches). */
  searchParams: readonly string[];
  /** Parameter added when a search names no patient. */
  addParam: string;
  referenceFields: readonly string[];
}

export const otherPatient = (reason: string, detail = 'The request reaches beyond the patient this token is bound to') => new Forbidden({ reason, detail });

/** `_format` values a JSON response phase can inspect; any other format would bypass the filter. */
const JSON_FORMATS = /^(json|application\/json|application\/fhir\+json)(;.*)?$/i;

export function checkPathParams(ex: Exchange, rules: CompartmentRules, patient: string): void {
  for (const name of rules.pathParams) {
    const v = ex.params[name];
    if (v !== undefined && v !== patient) throw otherPatient('other-patient-path');
  }
}

/** Responses must stay JSON so the response phase can filter them. */
export function keepResponsesInspectable(ex: Exchange): void {
  if (ex.query.getAll('_format').some((f) => !JSON_FORMATS.test(f))) {
    throw new BadRequest({ reason: 'format-not-inspectable', detail: 'Only JSON responses are available to patient-bound tokens' });
  }
  ex.upstreamHeaders.accept = 'application/fhir+json';
}

/**
 * Confines a search to the patient: every patient-naming parameter must name exactly this patient, once
 * (no `patient=p1&patient=p2`, no `patient=p1,p2`); when none is present one is added. Other parameters
 * only narrow a FHIR search further (they are ANDed), so they pass. Returns whether the query changed.
 */
export function confineSearch(ex: Exchange, rules: CompartmentRules, patient: string): boolean {
  refuseSearchBody(ex);
  let named = false;
  for (const key of rules.searchParams) {
    const values = ex.query.getAll(key);
    if (values.length > 1) throw otherPatient('duplicate-patient-param', 'A patient search parameter may appear only once');
    if (values.length === 0) continue;
    const ids = splitValues(values[0]);
    if (ids.length !== 1 || patientIdFrom(ids[0]) !== patient) throw otherPatient('other-patient-search');
    named = true;
  }
  if (named) return false;
  ex.query.set(rules.addParam, patient);
  return true;
}

/**
 * A created or replaced resource must belong to the patient: a Patient may only rewrite itself (and never
 * create another Patient); anything else must reference the patient in its reference fields.
 */
export function checkWrittenResource(ex: Exchange, rules: CompartmentRules, patient: string, interaction: 'create' | 'update'): void {
  if (!isResource(ex.json)) throw new UnsupportedMediaType({ reason: 'body-not-inspectable', detail: 'A JSON FHIR resource body is required' });
  if (ex.json.resourceType !== rules.resourceType) throw new BadRequest({ reason: 'wrong-resource-type', detail: 'The body is not of the resource type of this route' });
  if (rules.resourceType === 'Patient' && interaction === 'create') throw otherPatient('patient-create', 'A patient-bound token cannot create patients');
  if (ownership(ex.json, patient, rules.referenceFields) !== 'own') throw otherPatient('other-patient-body');
  // Contained resources (and anything unclassifiable inside) must pass the same filter as a response would.
  const judged = filterForPatient(ex.json, patient, { resourceType: rules.resourceType, referenceFields: rules.referenceFields, requireReference: true, listField: 'data' });
  if (judged.foreign || judged.removed) throw otherPatient('other-patient-body');
}

/** JSON Patch operations may not touch the fields that say whose record a resource is. */
export function checkPatch(ex: Exchange, rules: CompartmentRules): void {
  if (!Array.isArray(ex.json)) throw new UnsupportedMediaType({ reason: 'body-not-inspectable', detail: 'A JSON Patch body is required' });
  const guarded = ['id', ...rules.referenceFields];
  for (const op of ex.json as unknown[]) {
    const paths = [(op as { path?: unknown })?.path, (op as { from?: unknown })?.from].filter((p) => p !== undefined);
    if (paths.some((p) => typeof p !== 'string' || p === '' || guarded.includes(p.split('/')[1]))) throw otherPatient('patch-reassigns-patient');
  }
}
