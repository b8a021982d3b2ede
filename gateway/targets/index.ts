import { PolicyConfigError } from '../config/errors.ts';
import type { Layer, RouteConfig } from '../sdk/types.ts';
import { createSystemTarget, systemTargetSchema, type Target, type TargetContext } from './system.ts';
import { createExperienceTarget, experienceTargetSchema } from './experience.ts';
import { createProcessTarget, processTargetSchema } from './process.ts';
import { adapterTargetSchema, createAdapterTarget, isAdapterTarget, type AdapterContext } from '../legacy/adapter.ts';

export type { Target, TargetContext } from './system.ts';

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
    default:
      return systemTargetSchema;
  }
}

export function createTarget(route: RouteConfig, ctx: TargetContext & AdapterContext): Target {
  if (route.project !== undefined && route.layer !== 'experience') throw new PolicyConfigError('`project:` belongs to experience routes only');
  switch (route.layer) {
    case 'system':
      return createSystemTarget(route, route.target as { upstream: string; path: string }, ctx);
    case 'process':
      return isAdapterTarget(route.target) ? createAdapterTarget(route, ctx) : createProcessTarget(route, ctx);
    case 'experience':
      return createExperienceTarget(route, ctx);
    default:
      throw new PolicyConfigError(`layer "${route.layer}" is not supported yet`);
  }
}
