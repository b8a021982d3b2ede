import { joinPath, type ConfigIssue } from '../config/errors.ts';
import { compileGetter, isPlainObject, parsePath, PathSyntaxError, type Getter } from '../lib/json-path.ts';

/**
 * The composer's template language: `{{ path }}` or `{{ path | id }}` inside strings, where `path` is a
 * field path (gateway/lib/json-path.ts: `steps.claims.body.data[0].id`) starting at one of the roots below.
 * Templates are parsed once at config load into getters; rendering only reads own properties, so no
 * expression can evaluate code or reach a prototype.
 */
export const TEMPLATE_ROOTS = ['params', 'query', 'body', 'principal', 'steps'] as const;
export type TemplateRoot = (typeof TEMPLATE_ROOTS)[number];
const PRINCIPAL_FIELDS = ['subject', 'clientId', 'issuer', 'patient', 'fhirUser', 'encounter'];
const FILTERS = { id: toId } as const;

/** What templates read: the request, the caller, and the results of steps that already ran. */
export interface TemplateScope {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
  principal: Record<string, string | undefined>;
  steps: Record<string, { status: number; headers: Record<string, unknown>; body: unknown }>;
}

/** Every bad template of one value, each with its path inside that value (`''`, `items[0].code`). */
export class TemplateError extends Error {
  override name = 'TemplateError';
  constructor(
    message: string,
    readonly issues: ConfigIssue[] = [{ path: '', message }],
    /** What the valid parts of the value read, so their other checks still run. */
    readonly partial?: TemplateUse,
  ) {
    super(message);
  }
}

/**
 * What one compiled template reads, as `root` or `root.name` (`params.id`, `steps.claims`, `body`): for
 * dependency inference and load-time checks.
 */
export interface TemplateUse {
  readonly reads: ReadonlySet<string>;
  /**
   * True when every value in the template declares a fallback (`{{ x ?? "v" }}`, or `?? null` to leave
   * the parameter out): only then may a missing value pass. Otherwise a path or query value that renders
   * to nothing fails the request, so a filter can never silently drop out of an upstream call.
   */
  readonly optional?: boolean;
}

/**
 * Who is to blame when a template value is missing, which decides the answer: the caller's token lacks a
 * context (`principal.*`, 403), the request lacks a value (`params`/`query`/`body`, 400), or an earlier
 * step's answer lacks it (`steps.*`, 502).
 */
export function missingValueKind(use: TemplateUse): 'principal' | 'request' | 'step' {
  const roots = [...use.reads].map((r) => r.split('.')[0]);
  if (roots.includes('principal')) return 'principal';
  if (roots.some((r) => r === 'params' || r === 'query' || r === 'body')) return 'request';
  return 'step';
}

/** Absent, null, empty text or an empty list: nothing a parameter can carry. */
export function isMissing(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** Names read under one root: `namesUnder(t, 'steps')` → the steps a template needs. */
export function namesUnder(use: TemplateUse, root: TemplateRoot): string[] {
  return [...use.reads].flatMap((r) => (r.startsWith(`${root}.`) ? [r.slice(root.length + 1)] : []));
}

export function readsRoot(use: TemplateUse, root: TemplateRoot): boolean {
  return [...use.reads].some((r) => r === root || r.startsWith(`${root}.`));
}

export type Render<T> = ((scope: TemplateScope) => T) & TemplateUse;

interface Expression {
  get: Getter;
  reads: string;
  /** Declared a fallback with `??`. */
  optional?: boolean;
}

const EXPRESSION = /\{\{([^{}]*)\}\}/g;

/** `Organization/org-1` → `org-1`: FHIR references become ids fit for a path segment or a query. */
function toId(v: unknown): unknown {
  if (typeof v === 'string') return v.slice(v.lastIndexOf('/') + 1);
  return Array.isArray(v) ? v.map(toId) : v;
}

/** `?? "text"`, `?? 3`, `?? true` or `?? null` (leave out): a JSON scalar, parsed once at load. */
function parseFallback(source: string, text: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new TemplateError(`"${source}": the fallback after ?? must be a JSON string, number, boolean or null`);
  }
  if (v !== null && typeof v === 'object') throw new TemplateError(`"${source}": the fallback after ?? must be a JSON string, number, boolean or null`);
  return v === null ? undefined : v;
}

function compileExpression(source: string): Expression {
  const q = source.indexOf('??');
  if (q !== -1) {
    const e = compileExpression(source.slice(0, q));
    const fallback = parseFallback(source, source.slice(q + 2).trim());
    return { ...e, optional: true, get: (doc) => (isMissing(e.get(doc)) ? fallback : e.get(doc)) };
  }
  const [pathText, filterText, ...rest] = source.split('|').map((s) => s.trim());
  if (rest.length) throw new TemplateError(`"${source}": only one filter is allowed`);
  let filter: ((v: unknown) => unknown) | undefined;
  if (filterText !== undefined) {
    if (!Object.hasOwn(FILTERS, filterText)) throw new TemplateError(`"${source}": unknown filter "${filterText}" (known: ${Object.keys(FILTERS).join(', ')})`);
    filter = FILTERS[filterText as keyof typeof FILTERS];
  }
  const e = compilePath(pathText);
  return filter ? { ...e, get: (doc) => filter(e.get(doc)) } : e;
}

/** A bare path (merge leaves) with its root checked. */
function compilePath(path: string): Expression {
  let segments;
  try {
    segments = parsePath(path);
  } catch (err) {
    throw new TemplateError(err instanceof PathSyntaxError ? err.message : `"${path}" is not a path`);
  }
  const root = segments[0].key as TemplateRoot;
  if (!TEMPLATE_ROOTS.includes(root) || segments[0].each || segments[0].index !== undefined) {
    throw new TemplateError(`"${path}" must start with one of: ${TEMPLATE_ROOTS.join(', ')}`);
  }
  const second = segments[1];
  if (root === 'steps' && !second) throw new TemplateError(`"${path}" must name a step (steps.<name>…)`);
  if (root === 'principal' && second && !PRINCIPAL_FIELDS.includes(second.key)) {
    throw new TemplateError(`"${path}": principal has only ${PRINCIPAL_FIELDS.join(', ')}`);
  }
  return { get: compileGetter(path), reads: second ? `${root}.${second.key}` : root };
}

function useOf(exprs: Expression[]): TemplateUse {
  return { reads: new Set(exprs.map((e) => e.reads)), optional: exprs.length > 0 && exprs.every((e) => e.optional) };
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * A string template. `{{ x }}` alone yields x's value unchanged (numbers, arrays, objects: for bodies);
 * with text around it every value must be a scalar. `encode` is applied to each value, never to the
 * literal text (paths encode values so they stay one segment). Undefined when any value is missing.
 */
export function compileString(text: string, encode: (s: string) => string = (s) => s): Render<unknown> {
  const parts: Array<string | Expression> = [];
  let last = 0;
  for (const m of text.matchAll(EXPRESSION)) {
    parts.push(text.slice(last, m.index));
    parts.push(compileExpression(m[1]));
    last = m.index! + m[0].length;
  }
  const tail = text.slice(last);
  if (tail.includes('{{') || tail.includes('}}') || parts.some((p) => typeof p === 'string' && (p.includes('{{') || p.includes('}}')))) {
    throw new TemplateError(`"${text}": unbalanced {{ }}`);
  }
  parts.push(tail);
  const exprs = parts.filter((p): p is Expression => typeof p !== 'string');
  const use = useOf(exprs);
  if (!exprs.length) return Object.assign(() => text, use);
  if (parts.length === 3 && parts[0] === '' && parts[2] === '') {
    const only = exprs[0];
    return Object.assign((scope: TemplateScope) => only.get(scope), use);
  }
  return Object.assign((scope: TemplateScope) => {
    let out = '';
    for (const p of parts) {
      if (typeof p === 'string') out += p;
      else {
        const v = scalar(p.get(scope));
        if (v === undefined || v === '') return undefined;
        out += encode(v);
      }
    }
    return out;
  }, use);
}

/** A path template: values are percent-encoded so a value can never add a path segment upstream. */
export function compileUrlPath(text: string): Render<string | undefined> {
  const t = compileString(text, encodeURIComponent);
  return Object.assign((scope: TemplateScope) => {
    const v = t(scope);
    if (typeof v === 'string') return v;
    // A path that is one whole `{{ x }}` still has to be a scalar, and is encoded like any value.
    const s = scalar(v);
    return s === undefined ? undefined : encodeURIComponent(s);
  }, { reads: t.reads, optional: t.optional });
}

function merged(uses: TemplateUse[]): TemplateUse {
  return { reads: new Set(uses.flatMap((u) => [...u.reads])) };
}

/** Walks a JSON value once at load; strings become renderers, everything else stays constant. */
function compileTree(value: unknown, leaf: (s: string) => Render<unknown>): Render<unknown> {
  const issues: ConfigIssue[] = [];
  const tree = walk(value, leaf, '', issues);
  if (issues.length) throw new TemplateError(issues.map((i) => i.message).join('; '), issues, tree);
  return tree;
}

function walk(value: unknown, leaf: (s: string) => Render<unknown>, at: string, issues: ConfigIssue[]): Render<unknown> {
  if (typeof value === 'string') {
    try {
      return leaf(value);
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      issues.push({ path: at, message: err.message });
      return Object.assign(() => undefined, merged([]));
    }
  }
  if (Array.isArray(value)) {
    const items = value.map((v, i) => walk(v, leaf, `${at}[${i}]`, issues));
    return Object.assign((scope: TemplateScope) => items.map((i) => i(scope)), merged(items));
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).map(([k, v]) => [k, walk(v, leaf, joinPath(at, k), issues)] as const);
    return Object.assign((scope: TemplateScope) => {
      const out: Record<string, unknown> = {};
      for (const [k, render] of entries) {
        const v = render(scope);
        // Left out, as JSON.stringify would: an absent optional input is not a null.
        if (v !== undefined) out[k] = v;
      }
      return out;
    }, merged(entries.map((e) => e[1])));
  }
  return Object.assign(() => value, merged([]));
}

/** A JSON value with templates in its strings (request bodies). Keys are literal. */
export function compileValue(value: unknown): Render<unknown> {
  return compileTree(value, (s) => compileString(s));
}

/**
 * A merge mapping: like compileValue, but a string without `{{ }}` is a bare path
 * (`steps.claims.body.data`), since copying results is what a merge is for.
 */
export function compileMapping(value: unknown): Render<unknown> {
  return compileTree(value, (s) => {
    if (s.includes('{{')) return compileString(s);
    const e = compilePath(s);
    return Object.assign((scope: TemplateScope) => e.get(scope), useOf([e]));
  });
}
