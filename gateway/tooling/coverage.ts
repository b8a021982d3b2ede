/**
 * Coverage of a config by policy tests: which routes, policies and decision branches the cases exercised.
 * The branches of a route are derived from its configured policies (a `purposeOfUse.required` minimize
 * can refuse with `purpose-required`; one without it cannot), so 100 % means every refusal the config can
 * give a caller, and every profile and consent outcome it can apply, was seen in a test.
 *
 * Not counted: refusals no caller can provoke from a loopback test client — capacity (lane queue full,
 * store or audit outage) and network origin (ip-allow), which the fault and hostile suites test instead.
 */
import type { GatewayConfig, PolicyDecision, RouteConfig } from '../sdk/types.ts';

export type Branch = string;

type PolicyEntry = Record<string, unknown>;
type BranchesOf = (config: Record<string, unknown>, route: RouteConfig) => string[];

/**
 * Whether a token is valid depends on the issuer config, not on the route: these refusals are counted once
 * per config (branch `jwt deny:<reason>`), the missing token once per route.
 */
const TOKEN_REFUSALS = ['expired', 'bad-signature', 'claim-aud', 'malformed'];
const CONSENT_OUTCOMES = ['consent-permit', 'consent-none', 'consent-partial', 'consent-deny'];

/** Decision branches per built-in policy, from its config. Unknown policies (plugins) count allow/deny. */
const CATALOGUE: Record<string, BranchesOf> = {
  audit: () => ['allow'],
  jwt: () => ['allow', 'deny:missing-token'],
  scopes: (c) => ['allow', ...(c.smart ? ['deny:smart-scope-missing'] : []), ...(c.allOf || c.anyOf ? ['deny:scope-missing'] : [])],
  'rate-limit': () => ['allow', 'deny:rate-limited'],
  lane: () => ['allow'],
  'ip-allow': () => ['allow'],
  validate: (c) => ['allow', ...(c.body ? ['deny:schema'] : [])],
  idempotency: (c) => ['allow', 'replayed', ...(c.required ? ['deny:idempotency-key-missing'] : [])],
  minimize: (c) => {
    const pou = (c.purposeOfUse ?? {}) as { required?: boolean; allowed?: string[] };
    const select = (c.select ?? []) as Array<{ when?: Record<string, unknown>; profile: string }>;
    return [
      ...new Set(select.map((s) => `profile:${s.profile}`)),
      ...(pou.required ? ['deny:purpose-required'] : []),
      ...(pou.allowed ? ['deny:purpose-not-allowed'] : []),
      ...(everyCallerHasAProfile(select, pou.allowed) ? [] : ['deny:no-minimization-profile']),
    ];
  },
  // A search answers an emptied Bundle; a refusal needs a single resource or `onDenied: refuse`.
  consent: (c, route) => [...CONSENT_OUTCOMES, ...(c.onDenied === 'refuse' || route.fhir?.interaction === 'read' ? ['deny:consent-denied'] : [])],
  'patient-compartment': (_c, route) => {
    const i = route.fhir?.interaction;
    const out = ['allow', 'deny:no-patient-context'];
    if (i === 'search') out.push('patient-param-added', 'deny:other-patient-search');
    if (i === 'read' && route.fhir?.resourceType === 'Patient') out.push('deny:other-patient-path');
    if (i === 'read' && route.fhir?.resourceType !== 'Patient') out.push('deny:other-patient-resource');
    return out;
  },
};

/** True when a rule without conditions, or rules on purpose alone covering every allowed purpose, always match. */
function everyCallerHasAProfile(select: Array<{ when?: Record<string, unknown> }>, allowed: string[] | undefined): boolean {
  if (select.some((s) => !s.when || !Object.keys(s.when).length)) return true;
  if (!allowed) return false;
  const byPurposeOnly = select.filter((s) => Object.keys(s.when!).every((k) => k === 'purposeOfUse')).flatMap((s) => (s.when!.purposeOfUse as string[]) ?? []);
  return allowed.every((p) => byPurposeOnly.includes(p));
}

function policiesOf(route: RouteConfig): Array<{ name: string; config: Record<string, unknown> }> {
  return ((route.policies ?? []) as PolicyEntry[]).map((p) => {
    const [name, config] = Object.entries(p)[0];
    return { name, config: (config ?? {}) as Record<string, unknown> };
  });
}

/** Every branch the config has: `route`, `route policy`, `route policy branch`. */
export function branchesOf(config: GatewayConfig): Branch[] {
  const out: Branch[] = [];
  if (config.routes.some((r) => policiesOf(r).some((p) => p.name === 'jwt'))) out.push(...TOKEN_REFUSALS.map((r) => `jwt deny:${r}`));
  for (const route of config.routes) {
    out.push(`${route.id}`);
    for (const p of policiesOf(route)) {
      out.push(`${route.id} ${p.name}`);
      const of = CATALOGUE[p.name] ?? (() => ['allow', 'deny']);
      for (const b of of(p.config, route)) out.push(`${route.id} ${p.name} ${b}`);
    }
  }
  return out;
}

/** The branches one request exercised, from its decision trace (the audit record's `policy.decisions`). */
export function branchesHit(routeId: string, decisions: PolicyDecision[]): Branch[] {
  // The trace is read from the audit record, so the route's audit policy did its one job.
  const out: Branch[] = [routeId, `${routeId} audit`, `${routeId} audit allow`];
  for (const d of decisions) {
    out.push(`${routeId} ${d.policy}`);
    if (d.outcome === 'deny') out.push(`${routeId} ${d.policy} deny:${d.reason}`, `${routeId} ${d.policy} deny`);
    if (d.outcome === 'deny' && d.policy === 'jwt') out.push(`jwt deny:${d.reason}`);
    if (d.outcome === 'allow') out.push(`${routeId} ${d.policy} allow`);
    if (d.reason && d.outcome !== 'deny') out.push(`${routeId} ${d.policy} ${d.reason}`);
    if (d.detail?.profile !== undefined) out.push(`${routeId} ${d.policy} profile:${d.detail.profile}`);
  }
  return out;
}

export interface CoverageReport {
  percent: number;
  total: number;
  covered: number;
  missing: Branch[];
  routes: { total: number; covered: number };
}

export function coverageReport(all: Branch[], hit: Set<Branch>): CoverageReport {
  const missing = all.filter((b) => !hit.has(b));
  const routes = all.filter((b) => !b.includes(' '));
  return {
    percent: all.length ? Math.floor(((all.length - missing.length) / all.length) * 1000) / 10 : 100,
    total: all.length,
    covered: all.length - missing.length,
    missing,
    routes: { total: routes.length, covered: routes.filter((r) => hit.has(r)).length },
  };
}
