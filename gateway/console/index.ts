import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import express, { type Express, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { CompiledGateway } from '../config/compile.ts';
import type { Metrics } from '../ops/metrics.ts';
import { BadRequest, toGatewayError } from '../sdk/errors.ts';
import { writeProblem } from '../http/problem.ts';
import { describeRoutesInDetail, type RouteListing } from './describe.ts';
import { auditFileSinks, MAX_RESULTS, searchAudit, verifyAuditSinks, type AuditQuery } from './audit-search.ts';

export interface ConsoleDeps {
  metrics: Metrics;
  compiled(): CompiledGateway;
  routes(): RouteListing;
}

const HERE = dirname(fileURLToPath(import.meta.url));
// The pages are static files beside this module; a compiled build (dist/gateway/console/) serves the same
// files from the sources, since tsc copies no assets.
const PUBLIC_DIR = [join(HERE, 'public'), join(HERE, '..', '..', '..', 'gateway', 'console', 'public')].find((d) => existsSync(join(d, 'index.html'))) ?? join(HERE, 'public');
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.esm.js'));

/** The metrics the live view charts; anything else in the registry stays out of the console. */
const TRAFFIC_METRICS = new Set([
  'hcgw_requests_total',
  'hcgw_request_duration_seconds',
  'hcgw_gateway_overhead_seconds',
  'hcgw_upstream_duration_seconds',
  'hcgw_upstream_errors_total',
  'hcgw_policy_denials_total',
  'hcgw_rate_limited_total',
  'hcgw_lane_rejected_total',
  'hcgw_sla_breaches_total',
]);

/** Backends of optional pages: the console shows "not configured" for those this build lacks. */
const FEATURES = { events: false, policyTests: false };

/**
 * No inline script or style, nothing from other origins, no framing: the page can only talk to the admin
 * listener it came from. The admin token lives in sessionStorage and travels as an Authorization header,
 * so a cross-site form or link carries no credential (no cookie to ride on).
 */
const csp = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
});

function parseDate(v: unknown, name: string): Date | undefined {
  if (v === undefined || v === '') return undefined;
  const d = typeof v === 'string' ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new BadRequest({ detail: `${name} must be an ISO date-time`, reason: 'bad-query' });
  return d;
}

function oneString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > 200) throw new BadRequest({ detail: `${name} must be one short value`, reason: 'bad-query' });
  return v;
}

function auditQuery(q: Request['query']): AuditQuery {
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RESULTS) throw new BadRequest({ detail: `limit must be 1..${MAX_RESULTS}`, reason: 'bad-query' });
  const outcome = oneString(q.outcome, 'outcome');
  if (outcome !== undefined && !['0', '4', '8', '12'].includes(outcome)) throw new BadRequest({ detail: 'outcome must be 0, 4, 8 or 12', reason: 'bad-query' });
  return { from: parseDate(q.from, 'from'), to: parseDate(q.to, 'to'), route: oneString(q.route, 'route'), client: oneString(q.client, 'client'), outcome, reason: oneString(q.reason, 'reason'), limit };
}

const handled = (fn: (req: Request, res: Response) => Promise<void> | void) => async (req: Request, res: Response) => {
  try {
    await fn(req, res);
  } catch (err) {
    // Express's own handler would print the stack: every failure is a problem document instead.
    writeProblem(res, toGatewayError(err));
  }
};

/**
 * The operations console on the admin app: static pages under /console (they hold no data, so they load
 * without the token) and its JSON API under /admin/console (behind the admin token middleware mounted
 * before this).
 */
export function mountConsole(app: Express, deps: ConsoleDeps): void {
  const statics = { index: 'index.html', fallthrough: false, dotfiles: 'deny' as const, etag: false, maxAge: 0 };
  app.use('/console', csp, helmet.referrerPolicy({ policy: 'no-referrer' }));
  app.use('/console/vendor/uplot', express.static(UPLOT_DIR, statics));
  app.use('/console', express.static(PUBLIC_DIR, statics));

  app.get('/admin/console/features', (_req, res) => {
    res.json({ ...FEATURES, auditSearch: auditFileSinks(deps.compiled()).length > 0 });
  });
  app.get('/admin/console/routes', (_req, res) => {
    res.json(describeRoutesInDetail(deps.compiled(), deps.routes()));
  });
  app.get(
    '/admin/console/traffic',
    handled(async (_req, res) => {
    const all = await deps.metrics.registry.getMetricsAsJSON();
    res.json({ at: Date.now(), metrics: all.filter((m) => TRAFFIC_METRICS.has(m.name)).map((m) => ({ name: m.name, type: m.type, values: m.values })) });
    }),
  );
  app.get(
    '/admin/audit/search',
    handled(async (req, res) => {
      const files = auditFileSinks(deps.compiled());
      if (!files.length) return void res.json({ configured: false, hits: [], scanned: 0, truncated: false });
      res.json({ configured: true, ...(await searchAudit(files.slice(0, 1), auditQuery(req.query))) });
    }),
  );
  app.post(
    '/admin/audit/verify',
    handled(async (_req, res) => {
    const files = auditFileSinks(deps.compiled());
    const results = await verifyAuditSinks(files);
    // Only the file's name: where the trail lives on disk is no business of a browser.
    res.json({ configured: files.length > 0, ok: results.every((r) => r.ok), sinks: results.map((r) => ('file' in r ? { ...r, file: basename(r.file) } : r)) });
    }),
  );
}
