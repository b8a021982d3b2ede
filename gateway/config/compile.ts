import { POLICY_MODES, shadowHandler, type PolicyMode } from '../sdk/shadow.ts';
import { checkDebugDecisions } from '../tooling/debug-decisions.ts';
import { dirname, resolve } from 'node:path';
import type { ValidateFunction } from 'ajv';
import type { Logger } from 'winston';
import { createAjv } from '../lib/ajv.ts';
import { deepFreeze } from '../lib/freeze.ts';
import { checkFhirSection } from '../fhir/index.ts';
import { buildChain } from '../pipeline/chain.ts';
import { createIdentityRegistry } from '../identity/registry.ts';
import type { Metrics } from '../ops/metrics.ts';
import { loadPolicies } from './registry.ts';
import { checkChainOrder, type ChainEntry } from './chain-order.ts';
import { createRouter, type Router } from '../pipeline/router.ts';
import { createSharedResources } from '../pipeline/shared.ts';
import { createAuditRegistry, type AuditRegistry } from '../audit/registry.ts';
import type { Store } from '../store/index.ts';
import { createTarget, loadTargetLibraries, targetSchemaFor } from '../targets/index.ts';
import { closeUpstreams, createUpstreams } from '../upstream/upstreams.ts';
import { loadUpstreamAuthLibraries } from '../upstream/auth/index.ts';
import { upstreamClient } from '../upstream/client.ts';
import { createPublicLinks, type PublicLinks } from '../http/public-links.ts';
import type { CompiledRoute, GatewayConfig, Policy, PolicyContext, PolicyHandler, RouteInfo } from '../sdk/types.ts';
import { ConfigError, PolicyConfigError, PolicyConfigErrors, ajvIssues, joinPath, type ConfigIssue } from './errors.ts';
import type { LoadedConfig } from './load.ts';
import { checkEmittedTypes, compileEvents, type CompiledEvents } from '../events/compile.ts';
import { emitStep } from '../events/emit.ts';
import { checkLegacyEventTypes } from '../legacy/event-types.ts';
import type { LegacyConfig } from '../legacy/schema.ts';
import type { EventPublisher } from '../events/types.ts';

export interface RuntimeDeps {
  logger: Logger;
  metrics: Metrics;
  store: Store;
  now?: () => number;
  /** The gateway's audit trails (kept across reloads); a one-off compile (validate) gets its own. */
  audit?: AuditRegistry;
  /** Where route `emit:` and inbound event routes publish (the gateway's event backbone). */
  events?: EventPublisher;
}

export interface CompiledGateway {
  readonly router: Router;
  readonly routes: readonly CompiledRoute[];
  readonly config: GatewayConfig;
  readonly file: string;
  readonly hash: string;
  readonly compiledAt: Date;
  /** The `events:` section compiled (schemas, subscription chains), when configured. */
  readonly events?: CompiledEvents;
  /** Things that still work but should change (deprecated keys), each with its path and the fix. */
  readonly warnings: readonly ConfigIssue[];
  /** Upstream URL → public URL rewriting over this config's routes (gateway/http/public-links.ts). */
  readonly links: PublicLinks;
  /** Releases agents and policy resources; called after the last in-flight request of a retired router. */
  close(): Promise<void>;
}

const ajv = createAjv({ useDefaults: true });
const targetValidators = new WeakMap<object, ValidateFunction>();
const RESERVED_PATHS = /^\/(healthz|readyz|metrics|admin)(\/|$)/;


/**
 * A renamed key is moved to its new name before validation, so a routes.yaml written for the old name keeps
 * its meaning; giving both names is an error (which one was meant is unknowable).
 */
function renameDeprecatedKeys(policy: Policy, config: Record<string, unknown>, path: string, issues: ConfigIssue[], warnings: ConfigIssue[]): Map<string, string> {
  const renamed = new Map<string, string>();
  if (!policy.renamedKeys || config === null || typeof config !== 'object' || Array.isArray(config)) return renamed;
  for (const [old, now] of Object.entries(policy.renamedKeys)) {
    if (!Object.hasOwn(config, old)) continue;
    if (Object.hasOwn(config, now)) {
      issues.push({ path: `${path}.${old}`, message: `\`${old}\` is the deprecated name of \`${now}\`: keep only \`${now}\`` });
      continue;
    }
    config[now] = config[old];
    delete config[old];
    renamed.set(`${path}.${now}`, `${path}.${old}`);
    warnings.push({ path: `${path}.${old}`, message: `\`${old}\` is deprecated: rename it to \`${now}\` (same values; see docs/routes-reference.md#renamed-keys)` });
  }
  return renamed;
}

/** A mistake in a value given under a deprecated key is reported where the author wrote it. */
function underWrittenName(issue: ConfigIssue, renamed: Map<string, string>): ConfigIssue {
  for (const [now, old] of renamed) {
    if (issue.path === now || issue.path.startsWith(`${now}.`) || issue.path.startsWith(`${now}[`)) return { ...issue, path: old + issue.path.slice(now.length) };
  }
  return issue;
}

function describeError(err: unknown): string {
  if (err instanceof PolicyConfigError) return err.message;
  // Foreign errors (a plugin's create()) may be anything: keep just a name and message line.
  const e = err as Error;
  return `failed to initialise: ${(e?.message ?? String(err)).split('\n')[0]}`;
}

/**
 * routes.yaml → an immutable router with every chain built. All issues (schema, cross references,
 * policy create() errors) are collected and thrown together; nothing half-built escapes.
 */
export async function compileConfig(loaded: LoadedConfig, deps: RuntimeDeps): Promise<CompiledGateway> {
  const { config, file } = loaded;
  const configDir = dirname(resolve(file));
  const issues: ConfigIssue[] = [...loaded.issues];
  const warnings: ConfigIssue[] = [];
  const routeConfigs = Array.isArray(config.routes) ? config.routes : [];
  const shapeOk = (v: unknown) => v !== null && typeof v === 'object';
  if (!shapeOk(config.upstreams) || !shapeOk(config.identity) || !Array.isArray(config.identity.issuers)) throw new ConfigError(file, issues);

  const policies = await loadPolicies({ extra: config.plugins, configDir }).catch((err: Error) => {
    throw new ConfigError(file, [...issues, { path: 'plugins', message: err.message }]);
  });
  // Libraries only some configs use (node-x12, standardwebhooks, oauth4webapi) are imported for this one
  // here, so that the synchronous factories below find them loaded.
  await Promise.all([loadTargetLibraries(routeConfigs), loadUpstreamAuthLibraries(Object.values(config.upstreams).map((u) => u?.auth))]);
  const upstreams = createUpstreams(config.upstreams, configDir, { metrics: deps.metrics, logger: deps.logger }, issues);
  const identity = await createIdentityRegistry(config.identity.issuers);
  const handlers: PolicyHandler[] = [];
  const shared = createSharedResources();
  const audit = deps.audit ?? createAuditRegistry({ logger: deps.logger, metrics: deps.metrics });
  const clients = new Map([...upstreams].map(([name, u]) => [name, upstreamClient(u, deps.metrics)]));
  const clientOf = (name: string) => clients.get(name);
  /** Policies see the sections they ask for by name, never the whole config with other parts' secrets. */
  const section = <T,>(name: string) => (name === 'routes' || name === 'identity' || name === 'upstreams' || name === 'server' || name === 'store' ? undefined : (config[name] as T | undefined));

  issues.push(...checkFhirSection(config));
  issues.push(...checkDebugDecisions(config));
  config.identity.issuers.forEach((iss, i) => {
    if (iss.algorithms?.some((a) => a.startsWith('HS')) && !iss.secret) issues.push({ path: `identity.issuers[${i}].algorithms`, message: 'HS* algorithms need a `secret` for this issuer' });
    if (!iss.jwksUri && !iss.keys?.length && !iss.secret && !iss.introspection) issues.push({ path: `identity.issuers[${i}]`, message: 'needs jwksUri, keys, secret or introspection' });
  });

  /** Validates one policy entry's config; returns the frozen config or undefined (issue recorded). */
  const checkPolicy = (entry: Record<string, unknown>, path: string) => {
    const [name, rawConfig] = Object.entries(entry)[0] ?? [];
    const reg = name === undefined ? undefined : policies.get(name);
    if (!reg) {
      issues.push({ path, message: `unknown policy "${name}" (known: ${[...policies.keys()].join(', ')})` });
      return undefined;
    }
    // `mode` belongs to every policy (gateway/sdk/shadow.ts), not to its schema.
    const { mode = 'enforce', ...pconfig } = structuredClone(rawConfig ?? {}) as Record<string, unknown>;
    if (!POLICY_MODES.includes(mode as PolicyMode)) {
      issues.push({ path: `${path}.${name}.mode`, message: `must be one of ${POLICY_MODES.join(', ')}` });
      return undefined;
    }
    const renamed = renameDeprecatedKeys(reg.policy, pconfig, `${path}.${name}`, issues, warnings);
    if (!reg.validate(pconfig)) {
      issues.push(...ajvIssues(reg.validate.errors, `${path}.${name}`).map((i) => underWrittenName(i, renamed)));
      return undefined;
    }
    return { name, reg, config: deepFreeze(pconfig), mode: mode as PolicyMode };
  };
  const hasIssueUnder = (base: string) => issues.some((i) => i.path === base || i.path.startsWith(`${base}.`) || i.path.startsWith(`${base}[`));

  /** Creates one chain's policies (routes and event subscriptions alike); undefined when its order is wrong. */
  const compileChain = async (policyEntries: Array<Record<string, unknown>>, base: string, info: RouteInfo, extra: Array<{ name: string; handler: PolicyHandler }> = [], given?: ChainEntry) => {
    const entries: Array<{ name: string; handler: PolicyHandler }> = [];
    // `given`: facts the caller establishes before the chain (an event subscription's subscriber principal).
    const declared: ChainEntry[] = given ? [given] : [];
    for (const [pi, entry] of policyEntries.entries()) {
      const ppath = `${base}.policies[${pi}]`;
      const checked = checkPolicy(entry, ppath);
      if (!checked) continue;
      declared.push({ name: checked.name, policy: checked.reg.policy, config: checked.config, path: ppath });
      const ctx: PolicyContext = { logger: deps.logger, store: deps.store, metrics: deps.metrics, identity, upstream: clientOf, section, route: info, configDir, now: deps.now ?? Date.now, shared, audit };
      try {
        const created = await checked.reg.policy.create(checked.config, ctx);
        const handler = checked.mode === 'shadow' ? shadowHandler(checked.name, created, deps.metrics.shadowDecisions) : created;
        handlers.push(handler);
        entries.push({ name: checked.name, handler });
      } catch (err) {
        issues.push({ path: joinPath(`${ppath}.${checked.name}`, err instanceof PolicyConfigError ? err.path : ''), message: describeError(err) });
      }
    }
    const orderIssues = checkChainOrder(declared, [...policies.values()].map((r) => r.policy));
    if (orderIssues.length) {
      issues.push(...orderIssues);
      return undefined;
    }
    entries.push(...extra);
    return { chain: buildChain(entries), names: entries.map((e) => e.name) };
  };

  const ids = new Set<string>();
  const seenMatch = new Map<string, string>();
  const routes: CompiledRoute[] = [];
  const links = createPublicLinks(routes, upstreams, config.server ?? {});
  for (const [ri, rc] of routeConfigs.entries()) {
    const base = `routes[${ri}]`;
    const policyEntries = Array.isArray(rc?.policies) ? rc.policies : [];
    if (hasIssueUnder(base)) {
      // Malformed route: still check what can be checked, so the next run does not reveal new mistakes.
      policyEntries.forEach((e, pi) => shapeOk(e) && checkPolicy(e, `${base}.policies[${pi}]`));
      const up = (rc?.target as { upstream?: unknown } | undefined)?.upstream;
      if (typeof up === 'string' && !upstreams.has(up)) issues.push({ path: `${base}.target.upstream`, message: `unknown upstream "${up}"` });
      continue;
    }
    if (ids.has(rc.id)) issues.push({ path: `${base}.id`, message: `duplicate route id "${rc.id}"` });
    ids.add(rc.id);
    if (RESERVED_PATHS.test(rc.match.path)) issues.push({ path: `${base}.match.path`, message: 'is reserved for the gateway itself' });
    for (const m of rc.match.methods) {
      const key = `${m} ${rc.match.path}`;
      if (seenMatch.has(key)) issues.push({ path: `${base}.match`, message: `${key} is already matched by route "${seenMatch.get(key)}"` });
      else seenMatch.set(key, rc.id);
    }
    const targetSchema = targetSchemaFor(rc.layer);
    let validateTarget = targetValidators.get(targetSchema);
    if (!validateTarget) targetValidators.set(targetSchema, (validateTarget = ajv.compile(targetSchema)));
    if (!validateTarget(rc.target)) {
      issues.push(...ajvIssues(validateTarget.errors, `${base}.target`));
      continue;
    }
    const info: RouteInfo = { id: rc.id, layer: rc.layer, methods: rc.match.methods, path: rc.match.path, fhir: rc.fhir, targetConfig: rc.target };
    let emit: Array<{ name: string; handler: PolicyHandler }> = [];
    try {
      if (rc.emit) emit = [emitStep(rc.id, rc.emit, deps.events, deps.logger)];
    } catch (err) {
      issues.push({ path: `${base}.emit`, message: describeError(err) });
    }
    const built = await compileChain(policyEntries, base, info, emit);
    if (!built) continue;
    const { chain } = built;
    try {
      const target = createTarget(rc, { upstreams, chain, logger: deps.logger, metrics: deps.metrics, config, links, audit, configDir, store: deps.store, events: deps.events });
      routes.push(Object.freeze({ ...info, chain, target, policyNames: built.names }));
    } catch (err) {
      const found = err instanceof PolicyConfigErrors ? err.issues : [{ path: err instanceof PolicyConfigError ? err.path : '', message: describeError(err) }];
      issues.push(...found.map((i) => ({ path: joinPath(`${base}.target`, i.path), message: i.message })));
    }
  }

  const events = await compileEvents(config.events as Parameters<typeof compileEvents>[0], compileChain, issues);
  checkEmittedTypes(routeConfigs, events, issues);
  checkLegacyEventTypes(config.legacy as LegacyConfig | undefined, routeConfigs, { configured: config.events !== undefined, compiled: events }, issues, warnings);
  const close = async () => {
    await events?.close();
    await Promise.allSettled([...handlers.map((h) => h.close?.()), ...routes.map((r) => r.target.close?.())]);
    if (!deps.audit) await audit.close();
    closeUpstreams(upstreams);
  };
  if (issues.length) {
    await close();
    throw new ConfigError(file, issues);
  }
  deepFreeze(config);
  for (const w of warnings) deps.logger.warn('deprecated config key', { file, path: w.path, fix: w.message });
  return Object.freeze({
    router: createRouter(routes),
    routes: Object.freeze(routes),
    config,
    file,
    hash: loaded.hash,
    compiledAt: new Date(),
    events,
    warnings: Object.freeze(warnings),
    links,
    close,
  });
}
