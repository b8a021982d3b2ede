import { splitValues } from '../../gateway/lib/fhir-search.ts';
import type { FhirInteraction } from '../../gateway/sdk/index.ts';

/**
 * SMART App Launch scopes, v1 and v2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
 *   v2  <patient|user|system>/<ResourceType|*>.<c?r?u?d?s?>[?param=value&…]   (letters in that order)
 *   v1  <patient|user|system>/<ResourceType|*>.<read|write|*>
 * v1 maps onto v2 as the spec says: read → rs, write → cud, * → cruds. Anything else (openid, launch,
 * plain OAuth scopes, letters out of order) is not a resource scope and grants nothing here.
 */
export type SmartContext = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface SmartScope {
  readonly scope: string;
  readonly context: SmartContext;
  /** A resource type, or `*`. */
  readonly resourceType: string;
  readonly permissions: ReadonlySet<Permission>;
  /** v2 `?param=value` constraints: every pair must hold for the scope to grant. */
  readonly constraints: ReadonlyArray<[string, string]>;
}

const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$/;
const V1: Record<string, Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ['c', 'r', 'u', 'd', 's'] };

export function parseSmartScope(scope: string): SmartScope | undefined {
  const m = SCOPE.exec(scope);
  if (!m || m[3] === '') return undefined;
  const v1 = V1[m[3]];
  if (v1 && m[4] !== undefined) return undefined; // v1 scopes take no constraints
  const constraints = m[4] === undefined ? [] : [...new URLSearchParams(m[4])];
  if (m[4] !== undefined && (!constraints.length || constraints.some(([k, v]) => !k || !v))) return undefined;
  return { scope, context: m[1] as SmartContext, resourceType: m[2], permissions: new Set(v1 ?? (m[3].split('') as Permission[])), constraints };
}

/**
 * The permission an interaction needs (SMART v2 table): r covers read, vread and instance history; s covers
 * search and type history; update and patch are u.
 */
export function permissionFor(interaction: FhirInteraction, instanceLevel: boolean): Permission {
  switch (interaction) {
    case 'create':
      return 'c';
    case 'update':
    case 'patch':
      return 'u';
    case 'delete':
      return 'd';
    case 'search':
      return 's';
    case 'history':
      return instanceLevel ? 'r' : 's';
    default:
      return 'r';
  }
}

export interface SmartNeed {
  resourceType: string;
  permission: Permission;
  contexts: ReadonlySet<SmartContext>;
}

/** The granted scopes that cover the need, split into unconstrained and constrained ones. */
export function grantsFor(scopes: readonly string[], need: SmartNeed): { open?: SmartScope; constrained: SmartScope[] } {
  const constrained: SmartScope[] = [];
  for (const s of scopes) {
    const p = parseSmartScope(s);
    if (!p || !need.contexts.has(p.context) || !p.permissions.has(need.permission)) continue;
    if (p.resourceType !== '*' && p.resourceType !== need.resourceType) continue;
    if (!p.constraints.length) return { open: p, constrained: [] };
    constrained.push(p);
  }
  return { constrained };
}

/** The scope strings that would grant the need, one per accepted context, for the 403 challenge. */
export function neededScopes(need: SmartNeed): string {
  return [...need.contexts].map((c) => `${c}/${need.resourceType}.${need.permission}`).join(' ');
}

function sameMultiset(a: string[], b: string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function satisfies(query: URLSearchParams, grant: SmartScope): boolean {
  const keys = new Set(grant.constraints.map(([k]) => k));
  return [...keys].every((k) => sameMultiset(query.getAll(k), grant.constraints.filter(([ck]) => ck === k).map(([, v]) => v)));
}

/**
 * Makes a search request fit the constrained grants, or says it cannot. A query that already satisfies one
 * grant passes unchanged. Grants that each constrain the same single parameter (category=laboratory,
 * category=vital-signs) are an OR: the query may name any of their values, and when it names none the
 * gateway adds them all (`category=a,b`). One grant with several parameters: the missing ones are added,
 * a present one with another value is refused. Returns the query to send (a new one when parameters were
 * added), or undefined when the request cannot be constrained.
 */
export function applyConstraints(query: URLSearchParams, grants: readonly SmartScope[]): URLSearchParams | undefined {
  if (grants.some((g) => satisfies(query, g))) return query;
  const out = new URLSearchParams(query);
  const singleKeys = new Set(grants.map((g) => (g.constraints.length === 1 ? g.constraints[0][0] : '\u0000')));
  if (singleKeys.size === 1 && !singleKeys.has('\u0000')) {
    const key = grants[0].constraints[0][0];
    const allowed = new Set(grants.map((g) => g.constraints[0][1]));
    const present = query.getAll(key);
    if (present.length === 0) {
      out.set(key, [...allowed].map((v) => v.replace(/,/g, '\\,')).join(','));
      return out;
    }
    return present.length === 1 && splitValues(present[0]).every((v) => allowed.has(v.replace(/\\,/g, ','))) ? query : undefined;
  }
  if (grants.length !== 1) return undefined;
  for (const [k, v] of grants[0].constraints) if (!out.has(k)) out.append(k, v);
  return satisfies(out, grants[0]) ? out : undefined;
}
