/**
 * The lint rules of `hcgw validate --strict`: configurations that compile and run, but leave a gap a
 * security review would flag. Each rule has a stable id (HCGW-L001…; never renumbered, never reused: a
 * waiver in someone's routes.yaml names it) and the fix to apply. Rules read the loaded config (schema
 * defaults applied), not the compiled routes: compiled chains keep no policy configs.
 */
import type { FhirSection } from '../../fhir/schema.ts';
import type { GatewayConfig, RouteConfig } from '../../config/types.ts';
import { LINT_RULE_IDS, type LintRuleId } from './ids.ts';

/** What every rule may look at, computed once per config. */
export interface LintContext {
  readonly config: GatewayConfig;
  /** Upstreams some `fhir:` route targets: what a route reads from them is FHIR resources. */
  readonly fhirUpstreams: ReadonlySet<string>;
  /** `fhir.servers[].base`: routes under them are FHIR routes even without a `fhir:` key. */
  readonly fhirBases: readonly string[];
}

/** One gap: `path` is a config path (`routes[3].policies`, `server.trustProxy`). */
export interface RawFinding {
  path: string;
  message: string;
}

interface RuleBase {
  readonly id: LintRuleId;
  /** A short name for the table and the JSON output. */
  readonly name: string;
  readonly fix: string;
}

/** A rule about one route: waivable on that route (`lint.waive`). */
export interface RouteRule extends RuleBase {
  readonly scope: 'route';
  check(route: RouteConfig, index: number, ctx: LintContext): RawFinding | undefined;
}

/** A rule about a section outside the routes: fixed where it is, never waived per route. */
export interface ConfigRule extends RuleBase {
  readonly scope: 'config';
  check(ctx: LintContext): RawFinding[];
}

export type LintRule = RouteRule | ConfigRule;

type PolicyEntry = { name: string; config: Record<string, unknown> };

function policiesOf(route: RouteConfig): PolicyEntry[] {
  return route.policies.map((p) => {
    const [name, config] = Object.entries(p)[0];
    return { name, config: (config ?? {}) as Record<string, unknown> };
  });
}

/** A policy that is there and enforced: one in `mode: shadow` closes no gap. */
function enforces(route: RouteConfig, ...names: string[]): boolean {
  return policiesOf(route).some((p) => names.includes(p.name) && p.config.mode !== 'shadow');
}

/** The upstreams a route reads from: its system target, or each step of a composition / adapter. */
function upstreamsOf(route: RouteConfig): Array<{ upstream: string; method: string }> {
  const t = route.target as { upstream?: unknown; compose?: Array<{ upstream?: unknown; method?: unknown }> };
  const method = route.match.methods.includes('GET') ? 'GET' : (route.match.methods[0] ?? 'GET');
  const out: Array<{ upstream: string; method: string }> = [];
  if (typeof t.upstream === 'string') out.push({ upstream: t.upstream, method });
  for (const step of t.compose ?? []) if (typeof step.upstream === 'string') out.push({ upstream: step.upstream, method: typeof step.method === 'string' ? step.method : 'GET' });
  return out;
}

const isFhirRoute = (route: RouteConfig, ctx: LintContext) =>
  Boolean(route.fhir) || ctx.fhirBases.some((b) => route.match.path === b || route.match.path.startsWith(`${b}/`));

const READS = new Set(['read', 'search', 'vread', 'history']);

/** A route whose answer carries FHIR resources: a FHIR read/search, or a read of a FHIR upstream. */
function returnsFhirResources(route: RouteConfig, ctx: LintContext): boolean {
  if (route.fhir) return READS.has(route.fhir.interaction);
  return upstreamsOf(route).some((u) => u.method === 'GET' && ctx.fhirUpstreams.has(u.upstream));
}

/** The SMART contexts a `scopes` policy accepts; its schema default is every context. */
function grantsPatientScopes(route: RouteConfig): boolean {
  return policiesOf(route).some((p) => {
    if (p.name !== 'scopes') return false;
    const c = p.config as { smart?: boolean; smartContexts?: string[]; allOf?: string[]; anyOf?: string[] };
    if (c.smart && (c.smartContexts ?? ['patient']).includes('patient')) return true;
    return [...(c.allOf ?? []), ...(c.anyOf ?? [])].some((s) => s.startsWith('patient/'));
  });
}

const at = (index: number, rest = '') => `routes[${index}]${rest}`;

export const LINT_RULES: readonly LintRule[] = [
  {
    id: 'HCGW-L001',
    name: 'fhir-route-without-jwt',
    scope: 'route',
    fix: 'add `- jwt: { issuers: [<issuer>] }` to the route\'s policies (before any policy that needs a principal)',
    check: (route, i, ctx) =>
      isFhirRoute(route, ctx) && !enforces(route, 'jwt') ? { path: at(i, '.policies'), message: 'FHIR route without an enforcing jwt policy: anyone can call it' } : undefined,
  },
  {
    id: 'HCGW-L002',
    name: 'fhir-resources-unfiltered',
    scope: 'route',
    fix: 'add `- minimize: { select: [{ profile: <name> }] }` (a field profile) or `- patient-compartment: {}` (patient-bound tokens see only their patient)',
    check: (route, i, ctx) =>
      returnsFhirResources(route, ctx) && !enforces(route, 'minimize', 'patient-compartment')
        ? { path: at(i, '.policies'), message: 'returns FHIR resource data that no minimize or patient-compartment policy filters' }
        : undefined,
  },
  {
    id: 'HCGW-L003',
    name: 'forward-authorization',
    scope: 'route',
    fix: 'remove `forwardAuthorization: true` from the upstream; give the gateway its own credentials (`upstreams.<name>.auth`, docs/identity.md)',
    check: (route, i, ctx) => {
      const forwarding = [...new Set(upstreamsOf(route).map((u) => u.upstream))].filter((u) => ctx.config.upstreams[u]?.forwardAuthorization === true);
      return forwarding.length
        ? { path: at(i, '.target'), message: `the caller's token is forwarded to upstream ${forwarding.join(', ')} (forwardAuthorization: true): the upstream can replay it` }
        : undefined;
    },
  },
  {
    id: 'HCGW-L004',
    name: 'trust-proxy-unbounded',
    scope: 'config',
    fix: 'set `server.trustProxy` to the addresses of your proxies (a list, e.g. [10.0.0.0/8]) or to the number of hops',
    check: ({ config }) =>
      config.server.trustProxy === true ? [{ path: 'server.trustProxy', message: 'trusts X-Forwarded-For from anyone: any client can choose the IP that rate limits and audit records see' }] : [],
  },
  {
    id: 'HCGW-L005',
    name: 'issuer-without-audiences',
    scope: 'config',
    fix: 'add `audiences: [<this gateway\'s audience>]` to the issuer',
    check: ({ config }) =>
      config.identity.issuers.flatMap((iss, i) =>
        iss.audiences?.length ? [] : [{ path: `identity.issuers[${i}]`, message: `issuer "${iss.name}" has no audiences: tokens it issued for any other API would be accepted (jwt refuses to trust it)` }],
      ),
  },
  {
    id: 'HCGW-L006',
    name: 'patient-scopes-without-compartment',
    scope: 'route',
    fix: 'add `- patient-compartment: {}` after scopes, or restrict `scopes.smartContexts` to [user, system]',
    check: (route, i) =>
      grantsPatientScopes(route) && !enforces(route, 'patient-compartment')
        ? { path: at(i, '.policies'), message: 'patient/ SMART scopes grant access, but nothing confines the token to its own patient' }
        : undefined,
  },
  {
    id: 'HCGW-L007',
    name: 'fhir-route-without-scopes',
    scope: 'route',
    fix: 'add `- scopes: { smart: true, smartContexts: [user, system] }` (or the contexts the route serves; plain scopes with allOf/anyOf)',
    check: (route, i, ctx) =>
      isFhirRoute(route, ctx) && enforces(route, 'jwt') && !enforces(route, 'scopes')
        ? { path: at(i, '.policies'), message: 'FHIR route without a scopes policy: any token of a trusted issuer is enough, whatever it was granted' }
        : undefined,
  },
  {
    id: 'HCGW-L008',
    name: 'shadow-policy',
    scope: 'route',
    fix: 'remove `mode: shadow` once its would-deny decisions have been reviewed (or remove the policy)',
    check: (route, i) => {
      const j = policiesOf(route).findIndex((p) => p.config.mode === 'shadow');
      return j < 0 ? undefined : { path: at(i, `.policies[${j}]`), message: `policy ${policiesOf(route)[j].name} is in mode: shadow: it records refusals but does not enforce them` };
    },
  },
  {
    id: 'HCGW-L009',
    name: 'debug-decisions',
    scope: 'config',
    fix: 'remove `server.debugDecisions` (it is for a developer\'s own machine)',
    check: ({ config }) =>
      config.server.debugDecisions ? [{ path: 'server.debugDecisions', message: 'every answer carries its decision trace: it tells a caller which check to work around' }] : [],
  },
];

// Every id the waiver schema accepts has a rule, and the other way round.
if (LINT_RULES.map((r) => r.id).join() !== LINT_RULE_IDS.join()) throw new Error('LINT_RULES and LINT_RULE_IDS disagree');

export function lintContext(config: GatewayConfig): LintContext {
  const fhirUpstreams = new Set<string>();
  for (const r of config.routes) if (r.fhir) for (const u of upstreamsOf(r)) fhirUpstreams.add(u.upstream);
  const fhirBases = ((config.fhir as FhirSection | undefined)?.servers ?? []).map((s) => s.base.replace(/\/$/, ''));
  return { config, fhirUpstreams, fhirBases };
}
