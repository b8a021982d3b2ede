import { isPlainObject } from './json-path.ts';
import { patientsReferenced, type ReferenceResolver } from './fhir-reference.ts';
import { FHIR_R4_RESOURCE_TYPES } from './fhir-types.ts';
import type { Exchange } from '../sdk/types.ts';

/**
 * Walking FHIR response bodies for the policies that filter them (minimize, consent, patient-compartment).
 * Rule: whatever the walk cannot classify is removed, never passed on — entries without a resource, values
 * that are not objects, unknown `resourceType`s, OperationOutcomes that name a patient. Composite bodies
 * are walked to any depth: Bundle entries, `Parameters.parameter[].resource` (and `part`), `contained`.
 * Nothing here mutates its input.
 */
export type FhirResource = { resourceType: string; id?: string; [key: string]: unknown };

export function isResource(v: unknown): v is FhirResource {
  return isPlainObject(v) && typeof v.resourceType === 'string';
}

export function isBundle(v: unknown): v is FhirResource & { entry?: unknown[]; total?: number } {
  return isResource(v) && v.resourceType === 'Bundle';
}

/** A resource a filter can judge: an object whose `resourceType` is a FHIR R4 type. */
export function isClassifiable(v: unknown): v is FhirResource {
  return isResource(v) && FHIR_R4_RESOURCE_TYPES.has(v.resourceType);
}

const PATIENT_MENTION = /(^|[^A-Za-z])Patient\/[A-Za-z0-9\-.]/;
const mentionsPatient = (v: unknown): boolean =>
  typeof v === 'string' ? PATIENT_MENTION.test(v) : Array.isArray(v) ? v.some(mentionsPatient) : isPlainObject(v) && Object.values(v).some(mentionsPatient);

/** An OperationOutcome may travel in a Bundle only when it says nothing about any patient. */
function outcomeNamesPatient(r: FhirResource, resolve: ReferenceResolver): boolean {
  const refs = patientsReferenced(r, resolve);
  return refs.ids.size > 0 || refs.unresolvable || mentionsPatient(r);
}

export interface Visit {
  /** The resource sitting in `contained` of this one (as received), if it is contained. */
  parent?: FhirResource;
  /** Resolves `urn:uuid:` and other fullUrl references against the enclosing Bundles. */
  resolve: ReferenceResolver;
}

/**
 * Decides one resource after everything inside it (entries, parameters, contained) has been judged:
 * returns it (possibly changed) or undefined to remove it.
 */
export type Judge = (r: FhirResource, at: Visit) => FhirResource | undefined;

export interface MappedBody {
  /** The new body; undefined when the body itself was removed. */
  body: unknown;
  /** Resources removed, at any depth. */
  removed: number;
}

function bundleResolver(bundle: Record<string, unknown>, outer: ReferenceResolver): ReferenceResolver {
  const byUrl = new Map<string, unknown>();
  for (const e of Array.isArray(bundle.entry) ? bundle.entry : []) {
    if (isPlainObject(e) && typeof e.fullUrl === 'string') byUrl.set(e.fullUrl, e.resource);
  }
  return (ref) => (byUrl.has(ref) ? byUrl.get(ref) : outer(ref));
}

class Walker {
  removed = 0;
  constructor(private readonly judge: Judge) {}

  resource(v: unknown, parent: FhirResource | undefined, resolve: ReferenceResolver): FhirResource | undefined {
    const out = this.inner(v, parent, resolve);
    if (out === undefined) this.removed++;
    return out;
  }

  private inner(v: unknown, parent: FhirResource | undefined, outer: ReferenceResolver): FhirResource | undefined {
    if (!isClassifiable(v)) return undefined;
    const resolve = v.resourceType === 'Bundle' ? bundleResolver(v, outer) : outer;
    const r: FhirResource = { ...v };
    if (r.contained !== undefined) {
      // A contained list that is not a list cannot be judged piece by piece: the parent goes.
      if (!Array.isArray(r.contained)) return undefined;
      r.contained = r.contained.map((c) => this.resource(c, v, resolve)).filter((c) => c !== undefined);
    }
    if (r.resourceType === 'Bundle' && r.entry !== undefined) {
      if (!Array.isArray(r.entry)) return undefined;
      const entries = r.entry;
      const kept = entries.flatMap((e) => {
        const res = isPlainObject(e) ? this.resource(e.resource, undefined, resolve) : this.resource(undefined, undefined, resolve);
        return res === undefined ? [] : [{ ...(e as Record<string, unknown>), resource: res }];
      });
      r.entry = kept;
      // `total` stays true: recomputed when the Bundle held every match, dropped (FHIR allows that) when it
      // was one page of many, because the number of hidden matches on other pages must not be guessed.
      if (kept.length !== entries.length && typeof r.total === 'number') {
        if (r.total === entries.length) r.total = kept.length;
        else delete r.total;
      }
    }
    if (r.resourceType === 'Parameters' && r.parameter !== undefined) {
      const params = this.parameters(r.parameter, resolve);
      if (params === undefined) return undefined;
      r.parameter = params;
    }
    if (r.resourceType === 'OperationOutcome' && outcomeNamesPatient(r, resolve)) return undefined;
    return this.judge(r, { parent, resolve });
  }

  /** Parameters (and their parts) keep only the ones whose resource survives. */
  private parameters(list: unknown, resolve: ReferenceResolver): unknown[] | undefined {
    if (!Array.isArray(list)) return undefined;
    const out: unknown[] = [];
    for (const p of list) {
      if (!isPlainObject(p)) {
        this.removed++;
        continue;
      }
      const q: Record<string, unknown> = { ...p };
      if (q.resource !== undefined) {
        const res = this.resource(q.resource, undefined, resolve);
        if (res === undefined) continue;
        q.resource = res;
      }
      if (q.part !== undefined) {
        const parts = this.parameters(q.part, resolve);
        if (parts === undefined) continue;
        q.part = parts;
      }
      out.push(q);
    }
    return out;
  }
}

/**
 * `judge` over every resource of a body, innermost first. A body is a single resource (removed → body
 * undefined) or a composition: an object of named parts, at least one of them FHIR, where parts that
 * claim to be FHIR (have a `resourceType`) are walked and other parts (non-FHIR documents such as a
 * billing balance) are left to their own policies. Any other object is an unclassifiable resource.
 */
export function filterResources(body: unknown, judge: Judge): MappedBody {
  const w = new Walker(judge);
  const none: ReferenceResolver = () => undefined;
  const isPart = (v: unknown) => isPlainObject(v) && Object.hasOwn(v, 'resourceType');
  if (isPlainObject(body) && !Object.hasOwn(body, 'resourceType') && Object.values(body).some(isPart)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(body)) {
      if (!isPart(v)) out[k] = v;
      else {
        const r = w.resource(v, undefined, none);
        if (r !== undefined) out[k] = r;
      }
    }
    return { body: out, removed: w.removed };
  }
  if (!isPlainObject(body)) return { body, removed: 0 };
  return { body: w.resource(body, undefined, none), removed: w.removed };
}

const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json']);

/**
 * Policies that inspect response bodies can only judge JSON; the proxy passes anything else through
 * unchanged. So they ask the upstream for JSON and drop a FHIR `_format` asking for something else (XML,
 * Turtle), which would otherwise walk around them.
 */
export function requestJsonFromUpstream(ex: Exchange): void {
  ex.upstreamHeaders.accept = 'application/fhir+json, application/json';
  const format = ex.query.get('_format');
  if (format !== null && !JSON_FORMATS.has(format.toLowerCase())) ex.query.delete('_format');
}
