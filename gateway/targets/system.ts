import { compile as compilePath } from 'path-to-regexp';
import type { Logger } from 'winston';
import { PolicyConfigError } from '../config/errors.ts';
import type { Metrics } from '../metrics.ts';
import { createProxyTarget } from '../proxy.ts';
import type { Upstream } from '../upstreams.ts';
import type { CompiledChain, RouteConfig, RouteTarget } from '../types.ts';

export type Target = RouteTarget;

export interface TargetContext {
  upstreams: ReadonlyMap<string, Upstream>;
  chain: CompiledChain;
  logger: Logger;
  metrics: Metrics;
}

export const systemTargetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['upstream', 'path'],
  properties: {
    upstream: { type: 'string', description: 'Name of an entry in `upstreams`' },
    path: { type: 'string', pattern: '^/', description: 'Path on the upstream; `:name` takes the route parameter of that name' },
  },
} as const;

/** Route params are substituted encoded, so a value can never add a path segment upstream. */
export function createSystemTarget(route: RouteConfig, target: { upstream: string; path: string }, ctx: TargetContext): Target {
  const upstream = ctx.upstreams.get(target.upstream);
  if (!upstream) throw new PolicyConfigError(`unknown upstream "${target.upstream}"`, 'upstream');
  let toPath: (p: Record<string, string>) => string;
  try {
    toPath = compilePath(target.path, { encode: encodeURIComponent });
  } catch (err) {
    throw new PolicyConfigError(`invalid path template (${(err as Error).message})`, 'path');
  }
  const params = [...target.path.matchAll(/:(\w+)/g)].map((m) => m[1]);
  const routeParams = [...route.match.path.matchAll(/:(\w+)/g)].map((m) => m[1]);
  const missing = params.filter((p) => !routeParams.includes(p));
  if (missing.length) throw new PolicyConfigError(`uses parameter(s) not in match.path: ${missing.join(', ')}`, 'path');
  const proxy = createProxyTarget({ upstream, buffer: ctx.chain.needsResponseBody, logger: ctx.logger, metrics: ctx.metrics });
  const staticPath = params.length === 0 ? target.path : undefined;
  return {
    kind: 'proxy',
    prepare(ex) {
      ex.upstreamPath = staticPath ?? toPath(ex.params);
      ex.upstream.name = upstream.name;
    },
    handle: (ex) => proxy.handle(ex),
  };
}
