import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { rateLimit, type RateLimitRequestHandler } from 'express-rate-limit';
import type { Logger } from 'winston';
import { PolicyConfigError, GatewayError, ServiceUnavailable, TooManyRequests, definePolicy, isStoreFailure, type Exchange, type Policy, type PolicyDecision } from '../../gateway/sdk/index.ts';
import { createCounters, type Algorithm, type LimitSpec } from './counters.ts';
import { DURATION_PATTERN, parseDuration } from '../../gateway/lib/duration.ts';
import { compileKey, KEY_PARTS, type KeyPart } from './keys.ts';

interface LimitConfig {
  limit: number;
  window: string;
}

export interface RateLimitConfig {
  key: KeyPart | KeyPart[];
  limit?: number;
  window?: string;
  limits?: LimitConfig[];
  algorithm: Algorithm;
  overrides?: Record<string, { limit?: number; limits?: LimitConfig[] }>;
  failMode: 'open' | 'closed';
}

const MIN_WINDOW_MS = 1000;
const MAX_WINDOW_MS = 86_400_000;
/** During a store outage every request fails the same way: one warning per route this often is enough. */
const WARN_EVERY_MS = 10_000;
const RATE_LIMIT_HEADERS = ['RateLimit', 'RateLimit-Policy', 'Retry-After'];

const limitSchema = { type: 'integer', minimum: 1, maximum: 1_000_000_000, description: 'Requests admitted per window' } as const;
const windowSchema = { type: 'string', pattern: DURATION_PATTERN, description: 'Window length: 1s … 1d (e.g. 1s, 1m, 1h)' } as const;
const limitsSchema = {
  type: 'array',
  minItems: 1,
  maxItems: 8,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['limit', 'window'],
    properties: { limit: limitSchema, window: windowSchema },
  },
  description: 'Several limits that all apply (e.g. 10 per 1s and 1000 per 1h); a request must fit every one',
} as const;

/** Exactly one of `limit` + `window` or `limits`, every window in range, no limit listed twice. */
function specsOf(c: { limit?: number; window?: string; limits?: LimitConfig[] }, algorithm: Algorithm, path: string): LimitSpec[] {
  const at = (rel: string) => (path ? `${path}.${rel}` : rel);
  if (c.limits && (c.limit !== undefined || c.window !== undefined)) throw new PolicyConfigError('use either `limit` with `window` or `limits`, not both', at('limits'));
  if (!c.limits && c.limit === undefined) throw new PolicyConfigError('needs `limit` with `window`, or `limits`', path);
  if (!c.limits && c.window === undefined) throw new PolicyConfigError('`limit` needs a `window`', at('window'));
  const list = c.limits ?? [{ limit: c.limit!, window: c.window! }];
  const seen = new Set<number>();
  return list.map((l, i) => {
    const where = c.limits ? at(`limits[${i}].window`) : at('window');
    const windowMs = parseDuration(l.window);
    if (windowMs < MIN_WINDOW_MS || windowMs > MAX_WINDOW_MS) throw new PolicyConfigError('window must be between 1s and 1d', where);
    if (seen.has(windowMs)) throw new PolicyConfigError(`two limits with the same window (${l.window})`, where);
    seen.add(windowMs);
    return { limit: l.limit, windowMs, window: l.window, algorithm };
  });
}

/** express-rate-limit logs through (error, message); our logger redacts errors to name and code. */
const limiterLogger = (logger: Logger) => ({
  warn: (error: unknown, message?: string) => logger.warn(message ?? 'rate limiter warning', { error }),
  error: (error: unknown, message?: string) => logger.error(message ?? 'rate limiter error', { error }),
});

function collectHeaders(res: ServerResponse): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of RATE_LIMIT_HEADERS) {
    const v = res.getHeader(name);
    if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return headers;
}

/**
 * express-rate-limit writes its headers with express's `res.append`; the gateway's routed responses are
 * node's own (no express prototype, see gateway/http/request-facts.ts), whose `appendHeader` is the same.
 */
function appendViaNode(this: ServerResponse, name: string, value: string | string[]): ServerResponse {
  return this.appendHeader(name, value);
}

/**
 * The request's counting key, on the request itself: express-rate-limit hands its keyGenerator only the
 * request. (Not a WeakMap keyed by request: see gateway/upstream/proxy.ts on what those cost the GC.)
 */
const RATE_KEY = Symbol('hcgw.rateLimitKey');
type Keyed = IncomingMessage & { [RATE_KEY]?: string };

/** Runs one express-rate-limit middleware as a step: resolves when it admits, rejects with what it passed to next. */
function run(limiter: RateLimitRequestHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const r = res as ServerResponse & { append?: unknown };
  if (r.append === undefined) r.append = appendViaNode;
  return new Promise((resolve, reject) => {
    void limiter(req as Request, res as Response, (err?: unknown) => (err === undefined ? resolve() : reject(err)));
  });
}

export const rateLimitPolicy = definePolicy({
  name: 'rate-limit',
  // 0.2 spelled the store fail mode `fail`; every policy now says `failMode`.
  renamedKeys: { fail: 'failMode' },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      key: {
        anyOf: [
          { enum: KEY_PARTS },
          { type: 'array', minItems: 1, uniqueItems: true, items: { enum: KEY_PARTS } },
        ],
        default: 'client',
        description:
          'Who is counted: client (token client id), subject (token subject), ip, route, or a list such as [client, route]. ' +
          'Callers without a principal are counted by IP. Without `route`, routes with the same limit share the count',
      },
      limit: limitSchema,
      window: windowSchema,
      limits: limitsSchema,
      algorithm: {
        enum: ['fixed', 'sliding'],
        default: 'fixed',
        description: 'fixed: counts reset at the end of each window; sliding: at most `limit` in any window-long span (exact log)',
      },
      overrides: {
        type: 'object',
        propertyNames: { minLength: 1 },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { ...limitSchema, description: 'Replaces the route limit for this client (routes with one window only)' },
            limits: { ...limitsSchema, description: 'Replaces all route limits for this client' },
          },
        },
        default: {},
        description: 'Per-consumer limits by token client id, e.g. { partner-billing: { limit: 500 } }',
      },
      failMode: {
        enum: ['open', 'closed'],
        default: 'open',
        description: 'When the shared store is unreachable: open admits (warning logged, metric counted); closed answers 503',
      },
    },
  },

  create(config, ctx) {
    const specs = specsOf(config, config.algorithm, '');
    const route = ctx.route.id;
    const logger = limiterLogger(ctx.logger);
    // express-rate-limit hands its callbacks only (req, res): each request's key travels on the request (RATE_KEY), computed once.
    const keyOf = compileKey(Array.isArray(config.key) ? config.key : [config.key], route);

    const limiter = (spec: LimitSpec): RateLimitRequestHandler => {
      const name = `${spec.limit}-per-${spec.window}`;
      return rateLimit({
        windowMs: spec.windowMs,
        limit: spec.limit,
        identifier: name,
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        store: createCounters(ctx.store, spec),
        keyGenerator: (req) => (req as Keyed)[RATE_KEY] as string,
        handler: (_req, res) => {
          ctx.metrics.rateLimited.inc({ route, limit: name });
          throw new TooManyRequests({ reason: 'rate-limited', detail: 'Request rate limit exceeded; retry after the time given in Retry-After', headers: collectHeaders(res) });
        },
        logger,
        // Built at config load — which may happen inside an admin reload request; that is not a mistake here.
        validate: { creationStack: false },
      });
    };
    const build = (list: LimitSpec[]) => Object.freeze(list.map(limiter));
    const defaults = build(specs);
    const overrides = new Map<string, readonly RateLimitRequestHandler[]>();
    for (const [client, o] of Object.entries(config.overrides ?? {})) {
      const path = `overrides.${client}`;
      if (o.limit !== undefined && o.limits) throw new PolicyConfigError('use either `limit` or `limits`, not both', `${path}.limits`);
      if (o.limit !== undefined) {
        if (specs.length !== 1) throw new PolicyConfigError('`limit` is ambiguous with several route limits: list `limits`', `${path}.limit`);
        overrides.set(client, build([{ ...specs[0], limit: o.limit }]));
      } else if (o.limits) overrides.set(client, build(specsOf({ limits: o.limits }, config.algorithm, path)));
      else throw new PolicyConfigError('needs `limit` or `limits`', path);
    }

    const failOpenDecision: PolicyDecision = Object.freeze({ policy: 'rate-limit', outcome: 'allow', reason: 'store-unavailable' });
    const retrySoon = Object.freeze({ 'Retry-After': '1' });
    let lastWarnAt = -Infinity;
    const onStoreFailure = (ex: Exchange, err: unknown) => {
      ctx.metrics.storeFailures.inc({ policy: 'rate-limit', mode: config.failMode });
      const now = ctx.now();
      if (now - lastWarnAt >= WARN_EVERY_MS) {
        lastWarnAt = now;
        ctx.logger.warn(`rate limit store unavailable: failing ${config.failMode}`, { route, error: err });
      }
      if (config.failMode === 'closed') throw new ServiceUnavailable({ reason: 'store-unavailable', detail: 'Rate limiting is temporarily unavailable', headers: retrySoon });
      ex.decisions.push(failOpenDecision);
    };

    return {
      async onRequest(ex) {
        const clientId = ex.principal?.clientId;
        const limiters = (clientId !== undefined && overrides.get(clientId)) || defaults;
        (ex.req as Keyed)[RATE_KEY] = keyOf(ex);
        try {
          for (const l of limiters) await run(l, ex.req, ex.res);
        } catch (err) {
          // Only the store's own failures take the fail mode: anything else (a fault in the limiter or in
          // this adapter) would otherwise be admitted under failMode: open, silently unlimited. It stays an
          // error, and the request is refused (500).
          if (err instanceof GatewayError || !isStoreFailure(err)) throw err;
          onStoreFailure(ex, err);
        } finally {
          (ex.req as Keyed)[RATE_KEY] = undefined;
        }
      },
    };
  },
});

export default rateLimitPolicy;
