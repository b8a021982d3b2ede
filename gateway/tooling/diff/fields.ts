import { PURPOSE_OF_USE_CODES } from '../../lib/purpose-of-use.ts';
import type { MinimizeConfig } from '../../../policies/minimize/index.ts';
import type { MinimizationConfig } from '../../../policies/minimize/profiles.ts';
import type { FacetChange } from './change.ts';
import { ANY, grantDelta, TUPLE_SEP } from './grants.ts';

/** A caller that declares no purpose of use (allowed unless `purposeOfUse.required`). */
export const NO_PURPOSE = 'none';

/** The purposes of use a minimize config lets through: its `allowed` list (every code when absent), and `none` unless required. */
export function allowedPurposes(config: MinimizeConfig): string[] {
  return [...(config.purposeOfUse.allowed ?? PURPOSE_OF_USE_CODES), ...(config.purposeOfUse.required ? [] : [NO_PURPOSE])];
}

const fieldName = (s: string | { field: string; transform: string }) => (typeof s === 'string' ? s : `${s.field} (${s.transform})`);

/**
 * Every field a route's minimize policy can release, as tuples `type, field, profile, purpose, client,
 * role, scope` (`*`: any caller). An entry conditioned on purpose alone wins its purposes from the entries
 * after it; entries that also name clients, roles or scopes are counted for every purpose they can match,
 * as if they never won first: the diff over-reports exposure rather than miss any.
 */
export function releasedFields(config: MinimizeConfig, section: MinimizationConfig | undefined): string[] {
  const allowed = allowedPurposes(config);
  const documentKinds = config.parts ? Object.values(config.parts).filter((k) => k !== 'fhir') : config.kind ? [config.kind] : [];
  const fhir = !config.parts || Object.values(config.parts).includes('fhir');
  const out: string[] = [];
  // First match wins: an entry conditioned on purpose alone takes its purposes from every later entry.
  const decided = new Set<string>();
  for (const rule of config.select) {
    const profile = section?.profiles[rule.profile];
    if (!profile) continue; // compile refused unknown profiles; nothing to release
    const w = rule.when ?? {};
    const purposes = (w.purposeOfUse ? allowed.filter((p) => w.purposeOfUse!.includes(p)) : allowed).filter((p) => !decided.has(p));
    if (!w.clientIds && !w.roles && !w.scopes) purposes.forEach((p) => decided.add(p));
    const types: Array<[string, Array<string | { field: string; transform: string }>]> = [
      ...(fhir ? Object.entries(profile.resources ?? {}) : []),
      ...documentKinds.flatMap((k) => (profile.documents?.[k] ? [[`${k} document`, profile.documents[k]] as [string, typeof profile.documents[string]]] : [])),
    ];
    for (const [type, selectors] of types)
      for (const s of selectors)
        for (const purpose of purposes)
          for (const client of w.clientIds ?? [ANY])
            for (const role of w.roles ?? [ANY])
              for (const scope of w.scopes ?? [ANY]) out.push([type, fieldName(s), rule.profile, purpose, client, role, scope].join(TUPLE_SEP));
  }
  return [...new Set(out)].sort();
}

/** [key, members] in first-seen order. */
function groupBy<T>(items: T[], key: (t: T) => string, member: (t: T) => string): Array<[string, string[]]> {
  const groups = new Map<string, string[]>();
  for (const t of items) groups.set(key(t), [...(groups.get(key(t)) ?? []), member(t)]);
  return [...groups];
}

/**
 * Tuples folded twice so a review reads in lines, not thousands: each field gets the purposes it is
 * released for, then fields released to the same caller for the same purposes share one line.
 */
function grouped(tuples: string[], effect: FacetChange['effect'], verb: string): FacetChange[] {
  const everyPurpose = PURPOSE_OF_USE_CODES.length + 1;
  const rows = tuples.map((t) => t.split(TUPLE_SEP));
  const byField = groupBy(rows, ([type, field, profile, , ...who]) => [type, field, profile, ...who].join(TUPLE_SEP), (r) => r[3]);
  const lines = groupBy(
    byField.map(([k, purposes]) => [...k.split(TUPLE_SEP), purposes.length === everyPurpose ? 'any' : purposes.join(', ')]),
    ([type, , profile, client, role, scope, purposes]) => {
      const who = [client !== ANY && `client ${client}`, role !== ANY && `role ${role}`, scope !== ANY && `scope ${scope}`].filter(Boolean).join(', ') || 'any caller';
      return `${type} ${verb}: %FIELDS% (profile ${profile}; ${who}; purposes ${purposes})`;
    },
    (r) => r[1],
  );
  return lines.map(([line, fields]) => ({ effect, text: line.replace('%FIELDS%', fields.join(', ')) }));
}

export function compareFields(prev: readonly string[], next: readonly string[]): FacetChange[] {
  const { gained, lost } = grantDelta(prev, next);
  return [...grouped(gained, 'widening', 'fields newly exposed'), ...grouped(lost, 'narrowing', 'fields no longer exposed')];
}
