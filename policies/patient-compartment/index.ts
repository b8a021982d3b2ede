import { PolicyConfigError, BadGateway, Forbidden, ResourceNotFound, requirePrincipal, definePolicy, type Exchange, type FhirInteraction, type Policy, type PolicyContext, type PolicyHandler } from '../../gateway/sdk/index.ts';
import { FHIR_ID } from '../../gateway/lib/fhir-reference.ts';
import { checkPatch, checkPathParams, checkWrittenResource, confineSearch, keepResponsesInspectable, type CompartmentRules } from './request.ts';
import { filterAnswerForPatient, type FilterRules } from './response.ts';

export interface PatientCompartmentConfig {
  searchParams: string[];
  addParam: string;
  pathParams: string[];
  referenceFields: string[];
  requireReference: boolean;
  foreignRead: 'forbidden' | 'not-found';
  listField: string;
}

const NAME = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_-]*$' } as const;
const WRITES_TO_EXISTING: ReadonlySet<FhirInteraction> = new Set(['update', 'patch', 'delete']);

/**
 * The patient is bound by a `patient` launch context. A token with `patient/` scopes but no context cannot
 * be confined, so it is refused; a token with neither (user or system access) is not this policy's business.
 */
function boundPatient(ex: Exchange): string | undefined {
  const p = requirePrincipal(ex);
  if (p.patient === undefined) {
    if (p.scopes.some((s) => s.startsWith('patient/'))) throw new Forbidden({ reason: 'no-patient-context', detail: 'Patient-level scopes need a patient launch context' });
    return undefined;
  }
  if (!FHIR_ID.test(p.patient)) throw new Forbidden({ reason: 'bad-patient-context', detail: 'The patient launch context is not a valid id' });
  return p.patient;
}

/**
 * Before a write to an existing resource the gateway reads it (same upstream path) and lets the write
 * through only if the resource is the patient's or does not exist yet: an update that names the patient
 * in its body must not take over someone else's record.
 */
function existingResourceCheck(ctx: PolicyContext, filter: FilterRules, refuse: (reason: string) => Error) {
  const target = ctx.route.targetConfig;
  const upstream = 'upstream' in target ? ctx.upstream(target.upstream) : undefined;
  if (!upstream) throw new PolicyConfigError('writes under patient-compartment need a system target (the existing resource is read first)');
  return async (ex: Exchange, patient: string) => {
    const existing = await upstream.call({ method: 'GET', path: ex.upstreamPath, headers: { accept: 'application/fhir+json' } }, ex);
    if (existing.status === 404 || existing.status === 410) return;
    if (existing.status !== 200) throw new BadGateway({ reason: 'compartment-preread', detail: 'The existing resource could not be checked' });
    if (filterAnswerForPatient(existing, patient, filter).foreign) throw refuse('other-patient-write');
  };
}

/**
 * Patient compartment enforcement for patient-bound tokens (SMART `patient` launch context): requests are
 * confined on the way in (path parameters, search parameters, written bodies) and responses filtered on the
 * way out (Bundle entries and list records of other patients removed; a single foreign record refused).
 */
export const patientCompartmentPolicy = definePolicy({
  name: 'patient-compartment',
  // The response filter needs the references that minimization may remove: it must run before minimize's.
  dependencies: { requires: ['principal'], provides: ['compartment-filtered-body'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      searchParams: { type: 'array', items: NAME, minItems: 1, uniqueItems: true, default: ['patient', 'subject', 'beneficiary'], description: 'Search parameters that name a patient; each must name the bound patient (on Patient searches `_id` is used)' },
      addParam: { ...NAME, default: 'patient', description: 'Search parameter added with the bound patient when a search names none (on Patient searches `_id`)' },
      pathParams: { type: 'array', items: NAME, uniqueItems: true, default: ['patient', 'patientId'], description: 'Route path parameters that hold a patient id (on Patient routes `id` too)' },
      referenceFields: { type: 'array', items: NAME, minItems: 1, uniqueItems: true, default: ['subject', 'patient', 'beneficiary'], description: 'Fields of a resource that reference its patient' },
      requireReference: { type: 'boolean', default: true, description: "A record of the route's resource type without any patient reference is treated as another patient's" },
      foreignRead: { enum: ['forbidden', 'not-found'], default: 'forbidden', description: "Answer to a read of another patient's resource: 403, or 404 to hide that it exists" },
      listField: { ...NAME, default: 'data', description: 'For plain JSON lists wrapped in an object (`{data: [...], total}`): the member holding the records' },
    },
  },
  create(config, ctx) {
    const fhir = ctx.route.fhir;
    if (!fhir) throw new PolicyConfigError("patient-compartment needs the route's `fhir: {resourceType, interaction}`");
    const isPatientType = fhir.resourceType === 'Patient';
    const rules: CompartmentRules = {
      resourceType: fhir.resourceType,
      pathParams: isPatientType ? ['id', ...config.pathParams] : config.pathParams,
      searchParams: isPatientType ? ['_id'] : config.searchParams,
      addParam: isPatientType ? '_id' : config.addParam,
      referenceFields: config.referenceFields,
    };
    const filter: FilterRules = { resourceType: fhir.resourceType, referenceFields: config.referenceFields, requireReference: config.requireReference, listField: config.listField };
    const refuse = (reason: string) =>
      config.foreignRead === 'not-found' ? new ResourceNotFound({ reason }) : new Forbidden({ reason, detail: 'The resource belongs to another patient' });
    const interaction = fhir.interaction;
    const checkExisting = WRITES_TO_EXISTING.has(interaction) ? existingResourceCheck(ctx, filter, refuse) : undefined;

    const handler: PolicyHandler = {
      needsResponseBody: true,
      needsRequestBody: interaction === 'create' || interaction === 'update' || interaction === 'patch',
      async onRequest(ex) {
        const patient = boundPatient(ex);
        if (patient === undefined) return;
        // Which patient this exchange is confined to, for the response phase (per-policy private state).
        ex.locals.set(handler, patient);
        checkPathParams(ex, rules, patient);
        keepResponsesInspectable(ex);
        if (interaction === 'search' && confineSearch(ex, rules, patient)) {
          ex.decisions.push({ policy: 'patient-compartment', outcome: 'modify', reason: 'patient-param-added' });
        }
        if (interaction === 'create' || interaction === 'update') checkWrittenResource(ex, rules, patient, interaction);
        if (interaction === 'patch') checkPatch(ex, rules);
        if (checkExisting) await checkExisting(ex, patient);
      },
      onResponse(ex, response) {
        const patient = ex.locals.get(handler) as string | undefined;
        if (patient === undefined || response.status < 200 || response.status > 299) return;
        const out = filterAnswerForPatient(response, patient, filter);
        if (out.foreign) throw refuse('other-patient-resource');
        if (out.removed) {
          response.body = out.body;
          ex.decisions.push({ policy: 'patient-compartment', outcome: 'modify', reason: 'other-patients-removed', detail: { removed: out.removed } });
        }
      },
    };
    return handler;
  },
});

export default patientCompartmentPolicy;
