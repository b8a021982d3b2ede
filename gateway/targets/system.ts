import { compile as compilePath } from 'path-to-regexp';
import type { Logger } from 'winston';
import { PolicyConfigError } from '../config/errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import { proxyFor } from '../upstream/proxy.ts';
import type { Upstream } from '../upstream/upstreams.ts';
import type { PublicLinks } from '../http/public-links.ts';
import type { CompiledChain, RouteConfig, RouteTarget } from '../sdk/types.ts';

export type Target = RouteTarget;

export interface TargetContext {
  upstreams: ReadonlyMap<string, Upstream>;
  chain: CompiledChain;
  logger: Logger;
  metrics: Metrics;
  links: PublicLinks;
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

/**
 * A target path template → a function of the route params. Params are substituted encoded, so a value
 * can never add a path segment upstream; a template naming a param the route does not match is refused.
 */
export function compileUpstreamPath(route: RouteConfig, template: string, configPath = 'path'): (params: Record<string, string>) => string {
  let toPath: (p: Record<string, string>) => string;
  try {
    toPath = compilePath(template, { encode: encodeURIComponent });
  } catch (err) {
    throw new PolicyConfigError(`invalid path template (${(err as Error).message})`, configPath);
  }
  const params = [...template.matchAll(/:(\w+)/g)].map((m) => m[1]);
  const routeParams = [...route.match.path.matchAll(/:(\w+)/g)].map((m) => m[1]);
  const missing = params.filter((p) => !routeParams.includes(p));
  if (missing.length) throw new PolicyConfigError(`uses parameter(s) not in match.path: ${missing.join(', ')}`, configPath);
  return params.length === 0 ? () => template : toPath;
}

export function createSystemTarget(route: RouteConfig, target: { upstream: string; path: string }, ctx: TargetContext): Target {
  const upstream = ctx.upstreams.get(target.upstream);
  if (!upstream) throw new PolicyConfigError(`unknown upstream "${target.upstream}"`, 'upstream');
  const toPath = compileUpstreamPath(route, target.path);
  const proxy = proxyFor({ upstream, buffer: ctx.chain.needsResponseBody, links: ctx.links, logger: ctx.logger, metrics: ctx.metrics });
  return {
    kind: 'proxy',
    prepare(ex) {
      ex.upstreamPath = toPath(ex.params);
      ex.upstream.name = upstream.name;
    },
    handle: (ex) => proxy.handle(ex),
  };
}
