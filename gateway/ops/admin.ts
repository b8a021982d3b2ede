import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import express, { type Express, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { CompiledGateway } from '../config/compile.ts';
import { RouteNotFound, Unauthorized, Unprocessable } from '../sdk/errors.ts';
import type { Metrics } from './metrics.ts';
import type { ReloadResult } from './reload.ts';
import { writeProblem } from '../http/problem.ts';
import { mountConsole } from '../console/index.ts';

export interface Readiness {
  ready: boolean;
  body: Record<string, unknown>;
}

export interface OpsDeps {
  metrics: Metrics;
  readiness(): Promise<Readiness>;
  compiled(): CompiledGateway;
}

export interface AdminDeps extends OpsDeps {
  token(): string | undefined;
  /** Further admin API routes (behind the token), e.g. the event backbone's. */
  mount?(app: Express): void;
  /** Re-read and swap the config (gateway/ops/reload.ts); a rejected file leaves the running one serving. */
  reload(): Promise<ReloadResult>;
}

/**
 * Health and metrics, outside every policy chain. With an admin port configured, /metrics is served
 * only there (it reveals route ids and traffic); health stays on the main port for load balancers.
 */
/** Mounts /healthz, /readyz and (opts.metrics) /metrics; returns the paths it mounted. */
export function mountHealth(app: Express, deps: OpsDeps, opts: { metrics: boolean }): Set<string> {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const r = await deps.readiness();
    res.status(r.ready ? 200 : 503).json(r.body);
  });
  if (opts.metrics) {
    app.get('/metrics', async (_req, res) => {
      res.setHeader('Content-Type', deps.metrics.registry.contentType);
      res.end(await deps.metrics.registry.metrics());
    });
  }
  return new Set(['/healthz', '/readyz', ...(opts.metrics ? ['/metrics'] : [])]);
}

/** Upstream names a target refers to (system `upstream`, composition steps), never their URLs. */
function upstreamNames(target: unknown, known: ReadonlySet<string>, out = new Set<string>()): Set<string> {
  if (Array.isArray(target)) for (const t of target) upstreamNames(t, known, out);
  else if (target && typeof target === 'object') {
    for (const [k, v] of Object.entries(target)) {
      if (k === 'upstream' && typeof v === 'string' && known.has(v)) out.add(v);
      else if (typeof v === 'object') upstreamNames(v, known, out);
    }
  }
  return out;
}

/** The loaded routes as an operator needs to see them: no policy configs, URLs or secrets. */
export function describeRoutes(c: CompiledGateway) {
  const known = new Set(Object.keys(c.config.upstreams));
  return {
    config: { version: c.hash, loadedAt: c.compiledAt.toISOString(), routes: c.routes.length },
    upstreams: [...known].sort(),
    routes: c.routes.map((r) => ({
      id: r.id,
      layer: r.layer,
      methods: r.methods,
      path: r.path,
      ...(r.fhir ? { fhir: r.fhir } : {}),
      policies: r.policyNames,
      upstreams: [...upstreamNames(r.targetConfig, known)],
    })),
  };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Compares digests, so neither the content nor the length of the token leaks through timing. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer ([!-~]+)$/.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1]), digest(token));
}

/**
 * The admin app: health, metrics, and — only when `server.admin.token` is set — the admin API behind that
 * bearer token (read-only listing, plus a config reload). The token is read per request so a reload can
 * rotate it.
 */
export function createAdminApp(deps: AdminDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(helmet());
  mountHealth(app, deps, { metrics: true });
  app.use('/admin', (req: Request, res: Response, next) => {
    const token = deps.token();
    if (!token) return writeProblem(res, new RouteNotFound());
    if (!bearerMatches(req.headers.authorization, token)) {
      return writeProblem(res, new Unauthorized({ reason: 'admin-token', headers: { 'WWW-Authenticate': 'Bearer realm="hcgw-admin"' } }));
    }
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  deps.mount?.(app);
  app.get('/admin/routes', (_req, res) => {
    res.json(describeRoutes(deps.compiled()));
  });
  // The one write in the admin API: the same reload as SIGHUP, answered with its outcome. Issues name
  // config paths and messages only — never values from the file.
  app.post('/admin/reload', async (_req, res) => {
    const result = await deps.reload();
    if (result.ok) return void res.json(result);
    writeProblem(res, new Unprocessable({ detail: 'The new config was rejected; the running config keeps serving', reason: 'config-invalid', extensions: { version: result.version, issues: result.issues } }));
  });
  mountConsole(app, { ...deps, routes: () => describeRoutes(deps.compiled()) });
  app.use((_req: Request, res: Response) => writeProblem(res, new RouteNotFound()));
  return app;
}

export async function listenAdmin(app: Express, port: number, host: string): Promise<http.Server> {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
