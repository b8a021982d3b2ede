import type { CompiledGateway } from '../../config/compile.ts';
import type { RegisteredPolicy } from '../../config/registry.ts';
import type { IssuerConfig, RouteConfig, UpstreamConfig } from '../../sdk/types.ts';
import type { EventsConfig, SubscriptionConfig } from '../../events/config.ts';
import type { MinimizationConfig } from '../../../policies/minimize/profiles.ts';
import { ceiling, grants, opaque, requires, scale, type Facet } from './facets.ts';
import { policyFacets } from './policy-facets.ts';

export interface PolicySurface {
  mode: string;
  facets: Record<string, Facet>;
}
/** One thing whose governed settings are compared: a route, an event subscription, an issuer, an upstream or a config section. */
export interface Scope {
  kind: 'route' | 'subscription' | 'issuer' | 'upstream' | 'section';
  facets: Record<string, Facet>;
  /** Routes and subscriptions: by policy name (`rate-limit#2` for a second one), in chain order. */
  policies?: Record<string, PolicySurface>;
}
/** The governed surface of one config, by scope name (`route ehr-patient-read`, `issuer sandbox-idp`, …). */
export type Surface = Map<string, Scope>;

const FALSE_TRUE = ['false', 'true'];
/** Settings that tune how, not whether or how much: timeouts, pools, retries. Not part of the governed surface. */
const OPERATIONAL = {
  issuer: ['name', 'jwksCooldownMs', 'jwksCacheMaxAgeMs', 'jwksTimeoutMs'],
  upstream: ['timeoutMs', 'connectTimeoutMs', 'maxSockets', 'retries', 'retryBackoffMs', 'retryBackoffMaxMs', 'circuitBreaker', 'honorsIdempotencyKey'],
  subscription: ['retry', 'timeoutMs', 'concurrency', 'circuitBreaker', 'orderBy'],
  server: ['port', 'bodyLimit', 'requestTimeoutMs', 'headersTimeoutMs', 'keepAliveTimeoutMs', 'logLevel', 'publicBaseUrl'],
};
/** Top-level sections read elsewhere (routes, issuers, upstreams), or not governing callers (store, the sandbox's own settings). */
const NOT_SECTIONS = new Set(['version', 'routes', 'identity', 'upstreams', 'store', 'sandbox', 'server']);

/** Facets for the keys not read already nor operational (`taken`): each is opaque, any change widens. */
function rest(config: object, taken: readonly string[]): Record<string, Facet> {
  return Object.fromEntries(Object.entries(config).filter(([k]) => !taken.includes(k)).map(([k, v]) => [k, opaque(v)]));
}

/** A URL as it may be printed: no user info, query or fragment (they may carry credentials). */
function shown(url: string): string {
  if (!URL.canParse(url)) return '(unparsable url)';
  const u = new URL(url);
  return `${u.origin}${u.pathname === '/' && !url.endsWith('/') ? '' : u.pathname}`;
}

/** Where a target sends requests: `METHOD url+path` per upstream call, `route X` for a target over another route. */
function targetsOf(target: unknown, upstreams: Record<string, UpstreamConfig>): string[] {
  const out: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.upstream === 'string') out.push(`${typeof o.method === 'string' ? `${o.method} ` : ''}${upstreams[o.upstream] ? shown(upstreams[o.upstream].url) : o.upstream}${typeof o.path === 'string' ? o.path : ''}`);
    if (typeof o.route === 'string') out.push(`route ${o.route}`);
    Object.values(o).forEach(visit);
  };
  visit(target);
  return out;
}

/** The target minus what targetsOf reports, so a moved upstream call is not also an unclassified change. */
function targetSettings(target: unknown): unknown {
  if (Array.isArray(target)) return target.map(targetSettings);
  if (target === null || typeof target !== 'object') return target;
  const o = target as Record<string, unknown>;
  const where = typeof o.upstream === 'string' ? ['upstream', 'path', 'method'] : typeof o.route === 'string' ? ['route'] : [];
  return Object.fromEntries(Object.entries(o).filter(([k]) => !where.includes(k)).map(([k, v]) => [k, targetSettings(v)]));
}

/** A policy entry as the compiler reads it: mode split off, deprecated keys renamed, schema defaults filled. */
function normalized(entry: Record<string, unknown>, registry: Map<string, RegisteredPolicy>): { name: string; mode: string; config: Record<string, unknown> } {
  const [name, raw] = Object.entries(entry)[0];
  const { mode = 'enforce', ...config } = structuredClone(raw ?? {}) as Record<string, unknown>;
  const reg = registry.get(name);
  for (const [old, now] of Object.entries(reg?.policy.renamedKeys ?? {})) {
    if (Object.hasOwn(config, old)) {
      config[now] = config[old];
      delete config[old];
    }
  }
  reg?.validate(config);
  return { name, mode: String(mode), config };
}

/** A policy chain (a route's or a subscription's) by policy name, `name#2` for a second one, in chain order. */
function chainOf(entries: Array<Record<string, unknown>>, config: CompiledGateway['config'], registry: Map<string, RegisteredPolicy>): Record<string, PolicySurface> {
  const policies: Record<string, PolicySurface> = {};
  for (const entry of entries) {
    const { name, mode, config: pc } = normalized(entry, registry);
    let key = name;
    for (let n = 2; Object.hasOwn(policies, key); n++) key = `${name}#${n}`;
    policies[key] = { mode, facets: policyFacets(name, pc, config.minimization as MinimizationConfig | undefined) };
  }
  return policies;
}

function routeScope(rc: RouteConfig, config: CompiledGateway['config'], registry: Map<string, RegisteredPolicy>): Scope {
  const policies = chainOf(rc.policies, config, registry);
  return {
    kind: 'route',
    facets: {
      methods: grants(rc.match.methods),
      path: opaque(rc.match.path),
      layer: opaque(rc.layer),
      fhir: opaque(rc.fhir),
      'upstream targets': grants(targetsOf(rc.target, config.upstreams)),
      'target settings': opaque(targetSettings(rc.target)),
      project: opaque(rc.project),
      emit: opaque(rc.emit),
      ...rest(rc, ['id', 'description', 'match', 'layer', 'fhir', 'target', 'project', 'emit', 'policies']),
    },
    policies,
  };
}

/** Where a subscription delivers. */
function destination(d: SubscriptionConfig['delivery']): string {
  return d.kind === 'nats' ? `nats ${d.subject}` : `${d.kind} ${shown(d.url)}`;
}

/** An event subscription is a consumer like a route's caller: what it receives, where it goes, and its chain. */
function subscriptionScope(sub: SubscriptionConfig, config: CompiledGateway['config'], registry: Map<string, RegisteredPolicy>): Scope {
  const { types, attributes, ...filter } = sub.filter;
  return {
    kind: 'subscription',
    facets: {
      'event types': grants(types),
      'attribute filter': { kind: 'conditions', values: Object.fromEntries(Object.entries(attributes ?? {}).map(([k, v]) => [k, v.map(String)])) },
      filter: opaque(filter),
      // The principal its policies see: which minimization profile applies, which consents speak to it.
      subscriber: opaque(sub.subscriber),
      fhir: opaque(sub.fhir),
      destination: grants([destination(sub.delivery)]),
      delivery: opaque(sub.delivery),
      ...rest(sub, ['id', 'description', 'filter', 'subscriber', 'fhir', 'policies', 'delivery', ...OPERATIONAL.subscription]),
    },
    policies: chainOf(sub.policies, config, registry),
  };
}

function issuerScope(iss: IssuerConfig): Scope {
  const { issuer, jwksUri, keys, secret, introspection, audiences, algorithms, requiredClaims, clockToleranceSec, ...others } = iss;
  return {
    kind: 'issuer',
    facets: {
      issuer: opaque(issuer),
      'key material': opaque({ jwksUri, keys, secret, introspection }),
      audiences: grants(audiences ?? ['*']),
      algorithms: grants(algorithms),
      requiredClaims: requires(requiredClaims ?? []),
      clockToleranceSec: ceiling(clockToleranceSec),
      ...rest(others, OPERATIONAL.issuer),
    },
  };
}

function upstreamScope(u: UpstreamConfig): Scope {
  const { forwardAuthorization, ...others } = u;
  return { kind: 'upstream', facets: { forwardAuthorization: scale(forwardAuthorization ?? false, FALSE_TRUE), ...rest(others, OPERATIONAL.upstream) } };
}

/** The governed surface of a compiled config; `registry` gives each policy's schema defaults and renamed keys. */
export function extractSurface(compiled: CompiledGateway, registry: Map<string, RegisteredPolicy>): Surface {
  const { config } = compiled;
  const surface: Surface = new Map();
  for (const rc of config.routes) surface.set(`route ${rc.id}`, routeScope(rc, config, registry));
  for (const iss of config.identity.issuers) surface.set(`issuer ${iss.name}`, issuerScope(iss));
  for (const [name, u] of Object.entries(config.upstreams)) surface.set(`upstream ${name}`, upstreamScope(u));
  const { debugDecisions, ...server } = config.server;
  surface.set('config server', { kind: 'section', facets: { debugDecisions: scale(debugDecisions ?? false, FALSE_TRUE), ...rest(server, OPERATIONAL.server) } });
  const events = config.events as EventsConfig | undefined;
  for (const sub of events?.subscriptions ?? []) surface.set(`subscription ${sub.id}`, subscriptionScope(sub, config, registry));
  for (const [name, value] of Object.entries(config)) {
    if (NOT_SECTIONS.has(name)) continue;
    // Profiles count where routes and subscriptions release them (fields); subscriptions are scopes of their
    // own; the sections' other settings are opaque.
    const v = name === 'minimization' ? { ...(value as MinimizationConfig), profiles: undefined } : name === 'events' ? { ...(value as EventsConfig), subscriptions: undefined } : value;
    surface.set(`config ${name}`, { kind: 'section', facets: { [name]: opaque(v) } });
  }
  return surface;
}
