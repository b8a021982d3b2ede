/**
 * What the response phase took out of an answer: the upstream's JSON compared with what the client got.
 * Names and counts only — resource types, field paths (`Observation.note`) — never a value.
 */
import { isBundle, isResource, type FhirResource } from '../../lib/fhir-bundle.ts';
import { isPlainObject } from '../../lib/json-path.ts';

export interface Removal {
  /** Resources the client did not get at all, by type. */
  resources: Record<string, number>;
  /** Fields missing from what the client got, with the number of resources (or documents) that lost each. */
  fields: Array<{ path: string; count: number }>;
  /** Fields the client got with other values (masked, hashed, rewritten links), with their counts. */
  rewritten: Array<{ path: string; count: number }>;
}

type Tally = Map<string, number>;

function resourcesOf(body: unknown): FhirResource[] {
  if (isBundle(body)) return (body.entry ?? []).map((e) => (e as { resource?: unknown })?.resource).filter(isResource);
  return isResource(body) ? [body] : [];
}

/** Paths of `before` the client lost (`gone`) or got changed (`changed`); arrays compared element by element. */
function walk(before: unknown, after: unknown, path: string, gone: Set<string>, changed: Set<string>): void {
  if (Array.isArray(before)) {
    if (!Array.isArray(after)) return void gone.add(path);
    before.forEach((b, i) => (i < after.length ? walk(b, after[i], `${path}[]`, gone, changed) : gone.add(`${path}[]`)));
    return;
  }
  if (isPlainObject(before)) {
    if (!isPlainObject(after)) return void gone.add(path);
    for (const [k, v] of Object.entries(before)) {
      const p = path ? `${path}.${k}` : k;
      if (!Object.hasOwn(after, k)) gone.add(p);
      else walk(v, after[k], p, gone, changed);
    }
    return;
  }
  if (before !== after) changed.add(path);
}

const add = (tally: Tally, paths: Set<string>) => paths.forEach((p) => tally.set(p, (tally.get(p) ?? 0) + 1));
const sorted = (t: Tally) => [...t].map(([path, count]) => ({ path, count })).sort((a, b) => a.path.localeCompare(b.path));
const key = (r: FhirResource) => `${r.resourceType}/${r.id ?? ''}`;

/** undefined when nothing was removed or rewritten. */
export function removedBetween(upstream: unknown, delivered: unknown): Removal | undefined {
  const resources: Record<string, number> = {};
  const gone: Tally = new Map();
  const changed: Tally = new Map();
  const before = resourcesOf(upstream);
  const compare = (b: unknown, a: unknown, root: string) => {
    const g = new Set<string>();
    const c = new Set<string>();
    walk(b, a, root, g, c);
    add(gone, g);
    add(changed, c);
  };
  if (before.length) {
    const after = new Map(resourcesOf(delivered).map((r) => [key(r), r]));
    for (const r of before) {
      const got = after.get(key(r));
      if (!got) resources[r.resourceType] = (resources[r.resourceType] ?? 0) + 1;
      else compare(r, got, r.resourceType);
    }
  } else compare(upstream, delivered, '');
  if (!Object.keys(resources).length && !gone.size && !changed.size) return undefined;
  return { resources, fields: sorted(gone), rewritten: sorted(changed) };
}
