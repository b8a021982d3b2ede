import { bothSides, type Effect } from './change.ts';
import { compareFacet, opaque, scale, type Facet } from './facets.ts';
import type { Scope, Surface } from './surface.ts';

/** One difference in the governed surface, e.g. scope `route ehr-patient-read`, aspect `scopes.SMART contexts`. */
export interface Change {
  effect: Effect;
  scope: string;
  aspect: string;
  text: string;
}

const ABSENT = opaque(undefined);
const MODES = ['enforce', 'shadow'];

function compareFacets(prev: Record<string, Facet>, next: Record<string, Facet>, scope: string, prefix: string): Change[] {
  const out: Change[] = [];
  for (const [key, p, n] of bothSides(prev, next)) {
    const changes = compareFacet(p ?? ABSENT, n ?? ABSENT);
    out.push(...changes.map((c) => ({ effect: c.effect, scope, aspect: prefix + key, text: c.text })));
  }
  return out;
}

/**
 * A policy added narrows and one removed widens, whatever its settings (they come and go with it); a
 * policy on both sides is compared by mode (enforce → shadow widens) and then setting by setting.
 */
function comparePolicies(prev: NonNullable<Scope['policies']>, next: NonNullable<Scope['policies']>, scope: string): Change[] {
  const out: Change[] = [];
  // Chain order is meaning (who runs first, what a response filter sees): any reordering counts as widening.
  const kept = (from: object, other: object) => Object.keys(from).filter((k) => Object.hasOwn(other, k));
  const [before, after] = [kept(prev, next), kept(next, prev)];
  if (before.join() !== after.join()) out.push({ effect: 'widening', scope, aspect: 'policy order', text: `${before.join(', ')} → ${after.join(', ')} (not classified: counts as widening)` });
  for (const [key, p, n] of bothSides(prev, next)) {
    const aspect = `policy ${key}`;
    if (!p) out.push({ effect: 'narrowing', scope, aspect, text: `added${n!.mode === 'shadow' ? ' in shadow mode (evaluated, not enforced)' : ''}` });
    else if (!n) out.push({ effect: 'widening', scope, aspect, text: `removed${p.mode === 'shadow' ? ' (was in shadow mode)' : ''}` });
    else {
      out.push(...compareFacets({ mode: scale(p.mode, MODES) }, { mode: scale(n.mode, MODES) }, scope, `${key}.`));
      out.push(...compareFacets(p.facets, n.facets, scope, `${key}.`));
    }
  }
  return out;
}

function describe(name: string, s: Scope): string {
  if (s.kind !== 'route') return '';
  const methods = s.facets.methods.kind === 'grants' ? s.facets.methods.values.join(',') : '';
  const path = s.facets.path.kind === 'opaque' ? String(s.facets.path.value) : '';
  return ` (${methods} ${path}; policies: ${Object.keys(s.policies ?? {}).join(', ') || 'none'})`;
}

/**
 * Every governed difference between two surfaces. A route, issuer or upstream added widens, one removed
 * narrows; a config section is compared setting by setting, absent counting as a setting that changed.
 */
export function compareSurfaces(prev: Surface, next: Surface): Change[] {
  const out: Change[] = [];
  for (const name of new Set([...prev.keys(), ...next.keys()])) {
    const p = prev.get(name);
    const n = next.get(name);
    const kind = (p ?? n)!.kind;
    if (kind === 'section' || (p && n)) {
      out.push(...compareFacets(p?.facets ?? {}, n?.facets ?? {}, name, ''));
      out.push(...comparePolicies(p?.policies ?? {}, n?.policies ?? {}, name));
    } else if (n) out.push({ effect: 'widening', scope: name, aspect: kind, text: `added${describe(name, n)}` });
    else out.push({ effect: 'narrowing', scope: name, aspect: kind, text: `removed${describe(name, p!)}` });
  }
  return out;
}
