import {
  BadGateway,
  BadRequest,
  Forbidden,
  Conflict,
  GatewayError,
  GatewayTimeout,
  ResourceNotFound,
  UnsupportedMediaType,
  Unprocessable,
  toGatewayError,
} from '../sdk/errors.ts';
import { ABORTED } from '../upstream/resilience.ts';
import { isJsonType } from '../http/respond.ts';
import { callUpstream, stepHeaders } from '../upstream/client.ts';
import type { Exchange, Principal, ResponseBody, RouteConfig } from '../sdk/types.ts';
import { compilePlan, type Plan, type ProcessTargetConfig, type Step } from './compose-plan.ts';
import type { Target, TargetContext } from './system.ts';
import { missingValueKind, type TemplateScope } from './template.ts';

export { processTargetSchema, type ProcessTargetConfig } from './compose-plan.ts';

/**
 * The request-time half of the composer: runs a compiled plan (steps fan out as soon as their
 * dependencies succeeded), merges the results, and turns failures into warnings or one problem.
 */

interface StepResult {
  status: number;
  headers: Record<string, unknown>;
  body: unknown;
}

type Outcome = { ok: true; result: StepResult } | { ok: false; reason: string; status?: number; error?: GatewayError };

function principalScope(p: Principal | undefined): Record<string, string | undefined> {
  if (!p) return {};
  return { subject: p.subject, clientId: p.clientId, issuer: p.issuer, patient: p.patient, fhirUser: p.fhirUser, encounter: p.encounter };
}

/** The request body as JSON, parsed here when no policy needed it parsed already. */
export function requestJson(ex: Exchange): unknown {
  if (ex.json !== undefined || !ex.body?.length) return ex.json;
  if (!isJsonType(ex.req.headers['content-type'])) throw new UnsupportedMediaType({ detail: 'This API expects a JSON body' });
  try {
    ex.json = JSON.parse(ex.body.toString('utf8'));
  } catch {
    throw new BadRequest({ detail: 'Malformed JSON body', reason: 'bad-json' });
  }
  return ex.json;
}

/** `?x=1&x=2` reads as `1`, as URLSearchParams.get does; own keys only, whatever the caller sends. */
function firstValues(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of q) if (!(k in out)) out[k] = v;
  return out;
}

function queryValues(v: unknown): string[] {
  if (Array.isArray(v)) return v.flatMap(queryValues);
  if (typeof v === 'string') return v === '' ? [] : [v];
  if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return [String(v)];
  return [];
}

const REASON_OF: Record<string, string> = { connect: 'connect-failed', reset: 'reset', timeout: 'timeout', 'circuit-open': 'circuit-open' };

/** The outcome reason of a value a path or query needs but the scope lacks (see missingValueKind). */
const MISSING_REASON = { principal: 'missing-principal-context', request: 'missing-input', step: 'missing-value' } as const;

/** The step as a span (when tracing): its upstream calls are siblings under the request span. */
async function tracedStep(step: Step, scope: TemplateScope, ex: Exchange, signal: AbortSignal, ctx: TargetContext): Promise<Outcome> {
  const span = ex.trace?.child(`step ${step.name}`, { 'hcgw.step': step.name, 'hcgw.upstream': step.upstream.name });
  const outcome = await runStep(step, scope, ex, signal, ctx);
  span?.end({ 'hcgw.step.outcome': outcome.ok ? 'ok' : outcome.reason }, outcome.ok ? undefined : { reason: outcome.reason });
  return outcome;
}

async function runStep(step: Step, scope: TemplateScope, ex: Exchange, signal: AbortSignal, ctx: TargetContext): Promise<Outcome> {
  const path = step.path(scope);
  if (path === undefined) return { ok: false, reason: MISSING_REASON[missingValueKind(step.path)] };
  const query = new URLSearchParams();
  for (const [k, render] of step.query) {
    const values = queryValues(render(scope));
    // A filter that renders to nothing must not vanish from the call (the upstream would answer for everyone).
    if (!values.length && !render.optional) return { ok: false, reason: MISSING_REASON[missingValueKind(render)] };
    for (const v of values) query.append(k, v);
  }
  const headers = stepHeaders(ex, step.upstream);
  try {
    const res = await callUpstream(
      step.upstream,
      { method: step.method, path, query, headers, body: step.body?.(scope), timeoutMs: step.timeoutMs, signal },
      ex,
      ctx.metrics,
    );
    ex.upstream.status = res.status;
    if (res.status >= 200 && res.status < 300) return { ok: true, result: { status: res.status, headers: res.headers, body: res.body } };
    return { ok: false, reason: `status-${res.status}`, status: res.status };
  } catch (err) {
    const ge = toGatewayError(err);
    if (ge.reason !== ABORTED) ex.upstream.error ??= ge.reason;
    return { ok: false, reason: REASON_OF[ge.reason ?? ''] ?? ge.reason ?? 'upstream-error', error: ge };
  }
}

/** A step answer that means "your request cannot be done" keeps its meaning; anything else is our upstream's fault. */
const MIRRORED: Record<number, new (o: ConstructorParameters<typeof BadGateway>[0]) => GatewayError> = { 404: ResourceNotFound, 409: Conflict, 422: Unprocessable };

function requiredFailure(step: Step, outcome: Extract<Outcome, { ok: false }>): GatewayError {
  const opts = { detail: `Required step "${step.name}" failed`, reason: `step-${outcome.reason}`, extensions: { step: step.name } };
  if (outcome.reason === 'missing-input') return new BadRequest({ ...opts, detail: `The request lacks a value step "${step.name}" needs` });
  if (outcome.reason === 'missing-principal-context') return new Forbidden({ ...opts, detail: `The access token lacks a context step "${step.name}" needs` });
  const Mirrored = outcome.status === undefined ? undefined : MIRRORED[outcome.status];
  if (Mirrored) return new Mirrored(opts);
  const e = outcome.error;
  if (e?.reason === 'circuit-open') return new GatewayError(e.code, e.status, e.title, { ...opts, headers: e.headers });
  if (e?.reason === 'timeout') return new GatewayTimeout(opts);
  return new BadGateway(opts);
}

async function run(plan: Plan, ex: Exchange, ctx: TargetContext): Promise<ResponseBody> {
  const scope: TemplateScope = {
    params: ex.params,
    query: firstValues(ex.query),
    body: plan.readsBody ? requestJson(ex) : undefined,
    principal: principalScope(ex.principal),
    steps: {},
  };
  // One controller ends everything still running: the first required failure, or the client leaving.
  const stop = new AbortController();
  const onClose = () => stop.abort();
  ex.res.once('close', onClose);
  let fail!: (e: GatewayError) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const warnings: Array<{ step: string; reason: string; order: number }> = [];
  const outcomes = new Map<string, Promise<boolean>>();
  const started = performance.now();
  for (const step of plan.steps) {
    const depsDone = Promise.all(step.deps.map((d) => outcomes.get(d)!));
    outcomes.set(
      step.name,
      depsDone.then(async (deps) => {
        if (stop.signal.aborted) return false;
        const outcome: Outcome = deps.every(Boolean) ? await tracedStep(step, scope, ex, stop.signal, ctx) : { ok: false, reason: 'dependency-failed' };
        if (outcome.ok) {
          scope.steps[step.name] = outcome.result;
          return true;
        }
        if (stop.signal.aborted) return false;
        ctx.metrics.processStepFailures.inc({ route: ex.route.id, step: step.name, reason: outcome.reason });
        if (step.required) {
          stop.abort();
          fail(requiredFailure(step, outcome));
        } else warnings.push({ step: step.name, reason: outcome.reason, order: step.order });
        return false;
      }),
    );
  }
  try {
    await Promise.race([Promise.all(outcomes.values()), failed]);
  } finally {
    ex.res.off('close', onClose);
    ex.upstream.latencyMs = performance.now() - started;
  }
  const body = plan.merge(scope) as Record<string, unknown>;
  if (warnings.length) body.warnings = warnings.sort((a, b) => a.order - b.order).map(({ step, reason }) => ({ step, reason }));
  return { status: plan.status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, body };
}

/**
 * The composer as a document source: runs the steps (each as soon as its dependencies succeeded, so
 * independent steps fan out in parallel) and returns the merged document. The experience layer reuses it.
 */
export function createComposeSource(route: RouteConfig, ctx: TargetContext): (ex: Exchange) => Promise<ResponseBody> {
  const plan = compilePlan(route.target as unknown as ProcessTargetConfig, route, ctx);
  return (ex) => run(plan, ex, ctx);
}

/** A process route: the composed document goes through the route's response phase like any buffered body. */
export function createProcessTarget(route: RouteConfig, ctx: TargetContext): Target {
  const source = createComposeSource(route, ctx);
  return {
    kind: 'process',
    handle: async (ex) => ({ response: await source(ex) }),
  };
}
