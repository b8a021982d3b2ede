import { PolicyConfigError } from '../config/errors.ts';
import { BadGateway, BadRequest, ResourceNotFound, UnsupportedMediaType } from '../sdk/errors.ts';
import { isPlainObject } from '../lib/json-path.ts';
import { compileProjection, type ProjectionFields } from '../lib/projection.ts';
import { isJsonType } from '../http/respond.ts';
import type { Exchange, ResponseBody, RouteConfig } from '../sdk/types.ts';
import { callUpstream, stepHeaders } from '../upstream/client.ts';
import { createComposeSource, processTargetSchema } from './process.ts';
import { compileUpstreamPath, systemTargetSchema, type Target, type TargetContext } from './system.ts';

/** `layer: experience`: the source is one system call `{upstream, path}` or a composition `{compose, merge}`. */
export const experienceTargetSchema = {
  type: 'object',
  if: { properties: { compose: true }, required: ['compose'] },
  then: processTargetSchema,
  else: systemTargetSchema,
  description: 'Source document of the projection: {upstream, path} (one system call) or {compose, merge} (a process composition)',
} as const;

type Source = (ex: Exchange) => Promise<ResponseBody>;

/** The request body sent on to the source (experience routes that write, e.g. a portal payment). */
function jsonBody(ex: Exchange): unknown {
  if (ex.json !== undefined || !ex.body?.length) return ex.json;
  if (!isJsonType(ex.req.headers['content-type'])) throw new UnsupportedMediaType({ detail: 'The request body must be JSON', reason: 'body-not-json' });
  try {
    return JSON.parse(ex.body.toString('utf8'));
  } catch {
    throw new BadRequest({ detail: 'Malformed JSON body', reason: 'bad-json' });
  }
}

/** One upstream call as the source, with the route's params, query and upstream headers. */
function upstreamSource(route: RouteConfig, target: { upstream: string; path: string }, ctx: TargetContext) {
  const upstream = ctx.upstreams.get(target.upstream);
  if (!upstream) throw new PolicyConfigError(`unknown upstream "${target.upstream}"`, 'upstream');
  const toPath = compileUpstreamPath(route, target.path);
  const prepare = (ex: Exchange) => {
    ex.upstreamPath = toPath(ex.params);
    ex.upstream.name = upstream.name;
  };
  const fetch: Source = async (ex) => {
    const body = jsonBody(ex);
    const started = performance.now();
    const res = await callUpstream(upstream, { method: ex.method === 'HEAD' ? 'GET' : ex.method, path: ex.upstreamPath, query: ex.query, headers: stepHeaders(ex, upstream), body }, ex, ctx.metrics);
    ex.upstream.status = res.status;
    ex.upstream.latencyMs = performance.now() - started;
    return res;
  };
  return { prepare, fetch };
}

/** A source that failed is reported as such; its body (which may echo identifiers) is never shown. */
function checkSource(res: ResponseBody): void {
  if (res.status === 404) throw new ResourceNotFound({ reason: 'source-not-found' });
  if (res.status < 200 || res.status >= 300) throw new BadGateway({ detail: 'The source of this view failed', reason: `source-${res.status}` });
  if (!isPlainObject(res.body) && !Array.isArray(res.body)) throw new BadGateway({ detail: 'The source of this view did not answer JSON', reason: 'source-not-json' });
}

/**
 * Experience APIs: fetch the source document, run the route's response phase on it (consent and
 * minimization judge the FHIR resources as the source returned them), then project it into the channel's
 * document. The projection is compiled once here; Content-Length and ETag are computed on what is sent.
 */
export function createExperienceTarget(route: RouteConfig, ctx: TargetContext): Target {
  if (!isPlainObject(route.project)) throw new PolicyConfigError('an experience route needs `project:` (the fields its channel receives)');
  const project = compileProjection(route.project as ProjectionFields);
  let source: Source;
  let prepare: ((ex: Exchange) => void) | undefined;
  if ('compose' in route.target) source = createComposeSource(route, ctx);
  else {
    const up = upstreamSource(route, route.target as { upstream: string; path: string }, ctx);
    source = up.fetch;
    prepare = up.prepare;
  }
  return {
    kind: 'experience',
    prepare,
    async handle(ex) {
      const res = await source(ex);
      checkSource(res);
      const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
      return { response: { status: res.status, headers, body: res.body }, project };
    },
  };
}
