import { PolicyConfigError } from '../config/errors.ts';
import type { Layer, RouteConfig } from '../sdk/types.ts';
import { createSystemTarget, systemTargetSchema, type Target, type TargetContext } from './system.ts';
import { createExperienceTarget, experienceTargetSchema } from './experience.ts';
import { createProcessTarget, processTargetSchema } from './process.ts';
import { inboundTargetSchema } from '../events/config.ts';
import type { EventPublisher } from '../events/types.ts';
import { adapterTargetSchema, createAdapterTarget, isAdapterTarget, type AdapterContext } from '../legacy/adapter.ts';
import { loadX12Codec } from '../legacy/x12/eligibility.ts';
import { lazyModule } from '../lib/lazy-module.ts';

export type { Target, TargetContext } from './system.ts';

/** Inbound event routes verify Standard Webhooks signatures (standardwebhooks). */
const inbound = lazyModule('the inbound event target', () => import('../events/inbound.ts'));

/**
 * Imports the libraries these routes' targets need, before createTarget (synchronous) builds them: a config
 * without inbound event routes or X12 eligibility adapters never loads standardwebhooks or node-x12.
 */
export async function loadTargetLibraries(routes: readonly RouteConfig[]): Promise<void> {
  if (routes.some((r) => r?.layer === 'event')) await inbound.load();
  if (routes.some((r) => (r?.target as { adapter?: unknown } | undefined)?.adapter === 'x12-eligibility')) await loadX12Codec();
}

/** The target schema depends on the layer: a system route proxies one upstream. */
export function targetSchemaFor(layer: Layer): Record<string, unknown> {
  switch (layer) {
    case 'system':
      return systemTargetSchema;
    case 'process':
      // A legacy adapter (X12, PAS) or a composition.
      return { type: 'object', if: { type: 'object', properties: { adapter: {} }, required: ['adapter'] }, then: adapterTargetSchema, else: processTargetSchema };
    case 'experience':
      return experienceTargetSchema;
    case 'event':
      return inboundTargetSchema;
    default:
      return systemTargetSchema;
  }
}

export function createTarget(route: RouteConfig, ctx: TargetContext & AdapterContext & { events?: EventPublisher }): Target {
  if (route.project !== undefined && route.layer !== 'experience') throw new PolicyConfigError('`project:` belongs to experience routes only');
  switch (route.layer) {
    case 'system':
      return createSystemTarget(route, route.target as { upstream: string; path: string }, ctx);
    case 'process':
      return isAdapterTarget(route.target) ? createAdapterTarget(route, ctx) : createProcessTarget(route, ctx);
    case 'experience':
      return createExperienceTarget(route, ctx);
    case 'event':
      return inbound.get().createInboundTarget(route, ctx.events);
    default:
      throw new PolicyConfigError(`layer "${route.layer}" is not supported yet`);
  }
}
