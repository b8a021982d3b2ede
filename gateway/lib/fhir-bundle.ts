import { isPlainObject } from './json-path.ts';
import type { Exchange } from '../sdk/types.ts';

/**
 * Walking FHIR response bodies for the policies that filter them (minimize, consent): a single resource,
 * a Bundle whose entries are filtered one by one, or a composition whose named parts are resources or
 * Bundles. Nothing here mutates its input.
 */
export type FhirResource = { resourceType: string; id?: string; [key: string]: unknown };

export function isResource(v: unknown): v is FhirResource {
  return isPlainObject(v) && typeof v.resourceType === 'string';
}

export function isBundle(v: unknown): v is FhirResource & { entry?: unknown[]; total?: number } {
  return isResource(v) && v.resourceType === 'Bundle';
}

const refOf = (v: unknown): string | undefined => (isPlainObject(v) && typeof v.reference === 'string' ? v.reference : undefined);

/** Whose record a resource is part of: the patient id (no `Patient/` prefix), or undefined. */
export function patientOf(r: FhirResource): string | undefined {
  if (r.resourceType === 'Patient') return typeof r.id === 'string' ? r.id : undefined;
  const ref = refOf(r.subject) ?? refOf(r.patient) ?? refOf(r.beneficiary);
  const m = ref ? /^(?:.*\/)?Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
  return m ? m[1] : undefined;
}

/** `p2`, `Patient/p2` → `p2`; anything else → undefined. */
export function patientIdFrom(value: string | null | undefined): string | undefined {
  const m = value ? /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/.exec(value) : null;
  return m ? m[1] : undefined;
}

/** Every resource in a body: the body itself, Bundle entries, or the resources among a composition's parts. */
export function resourcesIn(body: unknown): FhirResource[] {
  const out: FhirResource[] = [];
  const visit = (v: unknown) => {
    if (isBundle(v)) for (const e of v.entry ?? []) isPlainObject(e) && isResource(e.resource) && out.push(e.resource);
    else if (isResource(v)) out.push(v);
  };
  if (isResource(body)) visit(body);
  else if (isPlainObject(body)) Object.values(body).forEach(visit);
  return out;
}

export interface MappedBody {
  /** The new body; undefined when the body was a single resource and `fn` removed it. */
  body: unknown;
  /** Resources removed (Bundle entries or composition parts). */
  removed: number;
}

/**
 * A Bundle with `fn` applied to each entry's resource; entries it drops disappear. `total` stays true:
 * recomputed when the Bundle held every match, dropped (FHIR allows that) when it was one page of many,
 * because the number of hidden matches on other pages cannot be known and must not be guessed.
 */
export function mapBundle(bundle: FhirResource & { entry?: unknown[]; total?: number }, fn: (r: FhirResource) => FhirResource | undefined): MappedBody {
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  let removed = 0;
  const kept: unknown[] = [];
  for (const e of entries) {
    if (!isPlainObject(e) || !isResource(e.resource)) {
      kept.push(e);
      continue;
    }
    const r = fn(e.resource);
    if (r === undefined) removed++;
    else kept.push({ ...e, resource: r });
  }
  const out: Record<string, unknown> = { ...bundle };
  if (bundle.entry !== undefined) out.entry = kept;
  if (removed && typeof bundle.total === 'number') {
    if (bundle.total === entries.length) out.total = kept.length;
    else delete out.total;
  }
  return { body: out, removed };
}

/** `fn` over every resource of a body (see resourcesIn), keeping the body's shape. */
export function mapResources(body: unknown, fn: (r: FhirResource) => FhirResource | undefined): MappedBody {
  const one = (v: unknown): MappedBody => {
    if (isBundle(v)) return mapBundle(v, fn);
    if (isResource(v)) {
      const r = fn(v);
      return { body: r, removed: r === undefined ? 1 : 0 };
    }
    return { body: v, removed: 0 };
  };
  if (isResource(body) || !isPlainObject(body)) return one(body);
  let removed = 0;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    const m = one(v);
    removed += m.removed;
    if (m.body !== undefined) out[k] = m.body;
  }
  return { body: out, removed };
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
