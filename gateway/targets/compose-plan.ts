import { joinPath, PolicyConfigErrors, type ConfigIssue } from '../config/errors.ts';
import type { Upstream } from '../upstream/upstreams.ts';
import type { RouteConfig } from '../sdk/types.ts';
import type { TargetContext } from './system.ts';
import { compileMapping, compileUrlPath, compileValue, namesUnder, readsRoot, TemplateError, type Render, type TemplateUse } from './template.ts';

/**
 * The load-time half of the composer: the schema of `compose` targets and their compilation into a
 * plan, with every cross-reference checked (upstreams, steps, params, cycles) before any request runs.
 */
const STEP_NAME = '^[A-Za-z_][A-Za-z0-9_-]*$';
const stepNames = { type: 'array', uniqueItems: true, items: { type: 'string', pattern: STEP_NAME } };

const stepSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'upstream', 'path'],
  properties: {
    name: { type: 'string', pattern: STEP_NAME, description: 'Step name, used as steps.<name> in templates and merge, and in dependsOn' },
    upstream: { type: 'string', description: 'Name of an entry in `upstreams`' },
    method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], default: 'GET', description: 'HTTP method of the step call' },
    path: { type: 'string', pattern: '^/', description: 'Path on the upstream; {{ }} values are percent-encoded into it' },
    query: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z0-9_.:-]+$' },
      additionalProperties: { type: ['string', 'number', 'boolean'] },
      description: 'Query parameters; a value that renders to nothing is left out',
    },
    body: { description: 'JSON body (POST, PUT, PATCH); strings may hold {{ }}; "{{ x }}" alone keeps the type of x' },
    dependsOn: { ...stepNames, description: 'Steps that must succeed first (steps read in templates are added automatically)' },
    after: { ...stepNames, description: 'Same as dependsOn' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 300000, description: "Timeout of this step's call; default: the upstream's timeoutMs" },
    required: {
      type: 'boolean',
      default: true,
      description: 'true: a failure fails the whole call (problem naming the step); false: the result is left out and listed in `warnings`',
    },
  },
} as const;

/** `layer: process` targets; also the compose part of experience targets (experience.ts reuses it). */
export const processTargetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['compose'],
  properties: {
    compose: { type: 'array', minItems: 1, maxItems: 20, items: stepSchema, description: 'Upstream calls; a step runs as soon as the steps it depends on succeeded' },
    merge: { type: 'object', minProperties: 1, description: 'Response document: output key → path (steps.x.body.y), {{ template }}, constant or nested mapping' },
    status: { type: 'integer', minimum: 200, maximum: 299, default: 200, description: 'Status of a successful composition (201 for one that creates)' },
  },
} as const;

export interface StepConfig {
  name: string;
  upstream: string;
  method?: string;
  path: string;
  query?: Record<string, string | number | boolean>;
  body?: unknown;
  dependsOn?: string[];
  after?: string[];
  timeoutMs?: number;
  required?: boolean;
}

export interface ProcessTargetConfig {
  compose: StepConfig[];
  merge?: Record<string, unknown>;
  status?: number;
}

export interface Step {
  name: string;
  order: number;
  upstream: Upstream;
  method: string;
  path: Render<string | undefined>;
  /** A missing path value comes from the caller's input (400), not from an upstream's result (502). */
  pathFromRequest: boolean;
  query: Array<[string, Render<unknown>]>;
  body?: Render<unknown>;
  deps: string[];
  timeoutMs?: number;
  required: boolean;
}

export interface Plan {
  /** Dependencies before dependents. */
  steps: Step[];
  merge: Render<unknown>;
  status: number;
  readsBody: boolean;
}

const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

interface Known {
  routeParams: string[];
  steps: Set<string>;
}

/** Compiles one template or mapping, recording its syntax errors and unknown params or steps under `path`. */
function checked<T>(path: string, known: Known, issues: ConfigIssue[], fn: () => Render<T>): Render<T> | undefined {
  let r: Render<T> | undefined;
  let use: TemplateUse | undefined;
  try {
    use = r = fn();
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    issues.push(...err.issues.map((i) => ({ path: joinPath(path, i.path), message: i.message })));
    use = err.partial;
  }
  if (!use) return r;
  const params = namesUnder(use, 'params').filter((p) => !known.routeParams.includes(p));
  if (params.length) issues.push({ path, message: `uses parameter(s) not in match.path: ${params.join(', ')}` });
  for (const s of namesUnder(use, 'steps')) if (!known.steps.has(s)) issues.push({ path, message: `reads unknown step "${s}"` });
  return r;
}

function compileStep(sc: StepConfig, i: number, ctx: TargetContext, known: Known, issues: ConfigIssue[]) {
  const at = (p: string) => `compose[${i}].${p}`;
  const uses: TemplateUse[] = [];
  const compile = <T>(path: string, fn: () => Render<T>): Render<T> | undefined => {
    const r = checked(at(path), known, issues, fn);
    if (r) uses.push(r);
    return r;
  };
  for (const key of ['dependsOn', 'after'] as const) {
    sc[key]?.forEach((d, j) => {
      if (!known.steps.has(d)) issues.push({ path: at(`${key}[${j}]`), message: `unknown step "${d}"` });
    });
  }
  const upstream = ctx.upstreams.get(sc.upstream);
  if (!upstream) issues.push({ path: at('upstream'), message: `unknown upstream "${sc.upstream}"` });
  const method = sc.method ?? 'GET';
  if (sc.body !== undefined && !WITH_BODY.has(method)) issues.push({ path: at('body'), message: `a ${method} step sends no body (only POST, PUT, PATCH)` });
  const path = compile('path', () => compileUrlPath(sc.path));
  const query = Object.entries(sc.query ?? {}).map(([k, v]) => [k, compile(`query.${k}`, () => compileValue(v))] as const);
  const body = sc.body === undefined ? undefined : compile('body', () => compileValue(sc.body));
  const read = uses.flatMap((u) => namesUnder(u, 'steps')).filter((s) => known.steps.has(s));
  return {
    step: {
      name: sc.name,
      order: i,
      upstream: upstream!,
      method,
      path: path!,
      pathFromRequest: path ? namesUnder(path, 'steps').length === 0 : true,
      query: query as Array<[string, Render<unknown>]>,
      body,
      deps: [...new Set([...(sc.dependsOn ?? []), ...(sc.after ?? []), ...read])],
      timeoutMs: sc.timeoutMs,
      required: sc.required ?? true,
    } satisfies Step,
    uses,
  };
}

/** Dependencies first; a cycle is reported once, as the loop of step names. */
function order(steps: Step[], issues: ConfigIssue[]): Step[] {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: Step[] = [];
  const visit = (s: Step, trail: string[]): void => {
    if (state.get(s.name) === 'done') return;
    if (state.get(s.name) === 'visiting') {
      const loop = [...trail.slice(trail.indexOf(s.name)), s.name];
      issues.push({ path: `compose[${s.order}].dependsOn`, message: `dependency cycle: ${loop.join(' → ')}` });
      return;
    }
    state.set(s.name, 'visiting');
    for (const d of s.deps) {
      const dep = byName.get(d);
      if (dep) visit(dep, [...trail, s.name]);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of steps) visit(s, []);
  return out;
}

/**
 * Compiles and cross-checks a compose target: unknown upstreams or steps, dependency cycles, templates
 * and params the route does not have. Every problem is reported at once, with its path.
 */
export function compilePlan(target: ProcessTargetConfig, route: Pick<RouteConfig, 'match'>, ctx: TargetContext): Plan {
  const issues: ConfigIssue[] = [];
  const known: Known = { routeParams: [...route.match.path.matchAll(/:(\w+)/g)].map((m) => m[1]), steps: new Set() };
  target.compose.forEach((sc, i) => {
    if (known.steps.has(sc.name)) issues.push({ path: `compose[${i}].name`, message: `duplicate step name "${sc.name}"` });
    known.steps.add(sc.name);
  });
  const compiled = target.compose.map((sc, i) => compileStep(sc, i, ctx, known, issues));
  const steps = order(
    compiled.map((c) => c.step),
    issues,
  );
  const mergeSpec = target.merge ?? Object.fromEntries(target.compose.map((s) => [s.name, `steps.${s.name}.body`]));
  const merge = checked('merge', known, issues, () => compileMapping(mergeSpec));
  if (issues.length) throw new PolicyConfigErrors(issues);
  const uses = [...compiled.flatMap((c) => c.uses), merge!];
  return { steps, merge: merge!, status: target.status ?? 200, readsBody: uses.some((u) => readsRoot(u, 'body')) };
}
