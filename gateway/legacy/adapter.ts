import type { Logger } from 'winston';
import type { AuditRegistry } from '../audit/registry.ts';
import type { AuditConfig } from '../audit/schema.ts';
import { PolicyConfigError } from '../config/errors.ts';
import type { EventPublisher } from '../events/types.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { GatewayConfig, RouteConfig, RouteTarget } from '../sdk/types.ts';
import type { Store } from '../store/types.ts';
import type { Upstream } from '../upstream/upstreams.ts';
import { createLegacyAuditor } from './audit.ts';
import type { AdapterServices } from './services.ts';
import { legacyPublisher } from './runtime.ts';
import { createPriorAuthTarget, priorAuthTargetSchema, type PriorAuthTargetConfig } from './pas/prior-auth.ts';
import type { LegacyConfig } from './schema.ts';
import { createEligibilityTarget, eligibilityTargetSchema, type EligibilityTargetConfig } from './x12/eligibility.ts';

/**
 * Process routes whose target is a legacy adapter (`target: { adapter: x12-eligibility | pas, … }`): the
 * route's policy chain governs the FHIR side as on any route; the adapter speaks X12 or PAS to the payer.
 */
export const adapterTargetSchema = {
  type: 'object',
  required: ['adapter'],
  properties: { adapter: { enum: ['x12-eligibility', 'pas'], description: 'Which adapter answers the route' } },
  allOf: [
    { if: { type: 'object', properties: { adapter: { const: 'x12-eligibility' } } }, then: eligibilityTargetSchema },
    { if: { type: 'object', properties: { adapter: { const: 'pas' } } }, then: priorAuthTargetSchema },
  ],
} as const;

export interface AdapterContext {
  upstreams: ReadonlyMap<string, Upstream>;
  logger: Logger;
  metrics: Metrics;
  config: GatewayConfig;
  audit?: AuditRegistry;
  configDir?: string;
  store?: Store;
  /** The gateway's event publisher (forwards to the backbone once it runs). */
  events?: EventPublisher;
}

export function isAdapterTarget(target: unknown): boolean {
  return typeof target === 'object' && target !== null && 'adapter' in target;
}

export function createAdapterTarget(route: RouteConfig, ctx: AdapterContext): RouteTarget {
  const target = route.target as unknown as EligibilityTargetConfig | PriorAuthTargetConfig;
  const upstream = ctx.upstreams.get(target.upstream);
  if (!upstream) throw new PolicyConfigError(`unknown upstream "${target.upstream}"`, 'upstream');
  const auditSection = ctx.config.audit as AuditConfig | undefined;
  // Fail closed: an adapter call that could not be audited (control numbers, decisions) is not made.
  if (!auditSection || !ctx.audit || !ctx.store || ctx.configDir === undefined) throw new PolicyConfigError('legacy adapters need a top-level `audit:` section', 'adapter');
  const legacy = ctx.config.legacy as LegacyConfig | undefined;
  const auditor = createLegacyAuditor(ctx.audit, auditSection, ctx.configDir);
  const services: AdapterServices = {
    upstream: () => upstream,
    store: ctx.store,
    metrics: ctx.metrics,
    logger: ctx.logger,
    auditor,
    // The backbone only when `events:` is configured (the gateway always hands in its forwarding publisher).
    publisher: legacyPublisher(legacy, ctx.configDir, ctx.config.events ? ctx.events : undefined),
  };
  const built = target.adapter === 'pas' ? createPriorAuthTarget(target, services) : createEligibilityTarget(target, services);
  return {
    ...built,
    close: async () => {
      void (built.idle?.() ?? Promise.resolve()).then(() => auditor.release());
    },
  };
}
