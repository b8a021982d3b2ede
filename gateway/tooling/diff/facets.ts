import { isDeepStrictEqual } from 'node:util';
import { bothSides, type Effect, type FacetChange } from './change.ts';
import { ANY, grantDelta } from './grants.ts';
import { compareFields } from './fields.ts';
import { compareRates, type RateLimits } from './rates.ts';

/**
 * One governed aspect of a route, issuer or section, in a form whose direction is known: comparing two
 * facets of the same kind says whether access, data or limits grew (widening) or shrank (narrowing).
 * Anything the diff cannot classify is `opaque`, and any change of it counts as widening (fail closed).
 */
export type Facet =
  /** Things granted (issuers, audiences, purposes, methods, upstream targets): more is wider. `*` is anything. */
  | { kind: 'grants'; values: readonly string[] }
  /** Things a caller must bring (allOf scopes, required claims): more is narrower. */
  | { kind: 'requires'; values: readonly string[] }
  /** Claim conditions: a new condition narrows, a new accepted value widens. */
  | { kind: 'conditions'; values: Readonly<Record<string, readonly string[]>> }
  /** A number that bounds something (lane slots, cache ttl): higher is wider; null is unbounded. */
  | { kind: 'ceiling'; value: number | null }
  /** A setting with known values ordered from narrowest to widest (mode enforce → shadow, failMode closed → open). */
  | { kind: 'scale'; value: string; order: readonly string[] }
  /** Rate limits per client class (rates.ts). */
  | { kind: 'rates'; value: RateLimits }
  /** Fields released: tuples `type, field, profile, purpose, client, role, scope` (fields.ts); more is wider. */
  | { kind: 'fields'; values: readonly string[] }
  /** Unclassified: any change is widening. Values are never printed (they may hold resolved secrets). */
  | { kind: 'opaque'; value: unknown };

export const grants = (values: Iterable<string>): Facet => ({ kind: 'grants', values: [...new Set(values)].sort() });
export const requires = (values: Iterable<string>): Facet => ({ kind: 'requires', values: [...new Set(values)].sort() });
export const ceiling = (value: number | null | undefined): Facet => ({ kind: 'ceiling', value: value ?? null });
export const scale = (value: unknown, order: readonly string[]): Facet => ({ kind: 'scale', value: String(value), order });
export const opaque = (value: unknown): Facet => ({ kind: 'opaque', value });

const list = (values: readonly string[]) => values.map((v) => (v === ANY ? 'any' : v)).join(', ');

function setChanges(prev: readonly string[], next: readonly string[], moreIs: Effect, words: [string, string]): FacetChange[] {
  const { gained, lost } = moreIs === 'widening' ? grantDelta(prev, next) : { gained: next.filter((v) => !prev.includes(v)), lost: prev.filter((v) => !next.includes(v)) };
  const less: Effect = moreIs === 'widening' ? 'narrowing' : 'widening';
  return [...(gained.length ? [{ effect: moreIs, text: `${words[0]} ${list(gained)}` }] : []), ...(lost.length ? [{ effect: less, text: `${words[1]} ${list(lost)}` }] : [])];
}

function conditionChanges(prev: Readonly<Record<string, readonly string[]>>, next: Readonly<Record<string, readonly string[]>>): FacetChange[] {
  const out: FacetChange[] = [];
  for (const [name, p, n] of bothSides(prev, next)) {
    if (!p && n) out.push({ effect: 'narrowing', text: `new condition ${name} ∈ {${n.join(', ')}}` });
    else if (p && !n) out.push({ effect: 'widening', text: `condition on ${name} dropped` });
    else if (p && n) out.push(...setChanges(p.map(String), n.map(String), 'widening', [`${name} also accepts`, `${name} no longer accepts`]));
  }
  return out;
}

/** How `prev` became `next`; [] when the governed meaning is the same. Facets of different kinds are opaque. */
export function compareFacet(prev: Facet, next: Facet): FacetChange[] {
  if (isDeepStrictEqual(prev, next)) return [];
  const unknown: FacetChange[] = [{ effect: 'widening', text: 'changed (not classified: counts as widening)' }];
  if (prev.kind !== next.kind) return unknown;
  switch (prev.kind) {
    case 'grants':
      return setChanges(prev.values, (next as typeof prev).values, 'widening', ['now grants', 'no longer grants']);
    case 'fields':
      return compareFields(prev.values, (next as typeof prev).values);
    case 'requires':
      return setChanges(prev.values, (next as typeof prev).values, 'narrowing', ['now requires', 'no longer requires']);
    case 'conditions':
      return conditionChanges(prev.values, (next as typeof prev).values);
    case 'ceiling': {
      const [p, n] = [prev.value ?? Infinity, (next as typeof prev).value ?? Infinity];
      const show = (v: number) => (v === Infinity ? 'unbounded' : String(v));
      return p === n ? [] : [{ effect: n > p ? 'widening' : 'narrowing', text: `${show(p)} → ${show(n)}` }];
    }
    case 'scale': {
      const n = next as typeof prev;
      const [pi, ni] = [prev.order.indexOf(prev.value), n.order.indexOf(n.value)];
      if (pi < 0 || ni < 0) return unknown;
      return [{ effect: ni > pi ? 'widening' : 'narrowing', text: `${prev.value} → ${n.value}` }];
    }
    case 'rates':
      return compareRates(prev.value, (next as typeof prev).value);
    case 'opaque':
      return unknown;
  }
}
