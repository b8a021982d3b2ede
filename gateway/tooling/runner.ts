/**
 * `hcgw test`: runs policy test cases through the real compiled chain over real HTTP (a fresh gateway per
 * case, real signed tokens, recording stub upstreams) and compares what happened with what the case expects.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseAuditLine, type AuditView } from '../audit/read.ts';
import { loadConfigFile } from '../config/load.ts';
import { PROBLEM_BASE } from '../sdk/errors.ts';
import type { IssuerConfig, PolicyDecision } from '../sdk/types.ts';
import { branchesHit, branchesOf, coverageReport, type CoverageReport } from './coverage.ts';
import { loadTestFile, type Expectation, type LoadedTestFile, type TestCase } from './spec.ts';
import { TestWorld, type RecordedCall } from './world.ts';

/** One expectation that did not hold. */
export interface Mismatch {
  what: string;
  expected: unknown;
  actual: unknown;
}

export interface CaseResult {
  file: string;
  name: string;
  route?: string;
  ok: boolean;
  mismatches: Mismatch[];
  ms: number;
  /** The decision trace of the (last) request, from its audit record. */
  decisions: PolicyDecision[];
}

export interface RunResult {
  cases: CaseResult[];
  coverage: CoverageReport;
}

/** What one case observed: the answer, its audit record and the upstream calls. */
export interface Observed {
  status: number;
  headers: Headers;
  body: unknown;
  audit?: Record<string, any>;
  calls: RecordedCall[];
  requestId: string | null;
}

/** RFC 6901 JSON pointer; `undefined` when a segment is missing (own properties only). */
export function pointer(doc: unknown, ptr: string): unknown {
  if (ptr === '' || ptr === '/') return doc;
  let cur = doc;
  for (const raw of ptr.replace(/^\//, '').split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function compare(expect: Expectation, o: Observed): Mismatch[] {
  const out: Mismatch[] = [];
  const check = (what: string, expected: unknown, actual: unknown) => {
    if (!isDeepStrictEqual(expected, actual)) out.push({ what, expected, actual });
  };
  if (expect.status !== undefined) check('status', expect.status, o.status);
  const problemType = (o.body as { type?: unknown } | undefined)?.type;
  if (expect.type !== undefined) check('problem type', expect.type.includes('/') ? expect.type : PROBLEM_BASE + expect.type, problemType);
  if (expect.decision) {
    const audit = o.audit?.policy as { deniedBy?: string } | undefined;
    if ('policy' in expect.decision) check('decided by', expect.decision.policy, audit?.deniedBy ?? null);
    if (expect.decision.reason !== undefined) check('reason', expect.decision.reason, (o.audit?.outcome as { reason?: string } | undefined)?.reason);
  }
  for (const [h, v] of Object.entries(expect.headers ?? {})) check(`header ${h}`, v, o.headers.get(h));
  for (const p of expect.present ?? []) if (pointer(o.body, p) === undefined) out.push({ what: `body ${p}`, expected: 'present', actual: 'absent' });
  for (const p of expect.absent ?? []) if (pointer(o.body, p) !== undefined) out.push({ what: `body ${p}`, expected: 'absent', actual: pointer(o.body, p) });
  for (const [p, v] of Object.entries(expect.equals ?? {})) check(`body ${p}`, v, pointer(o.body, p));
  if (expect.entries !== undefined) check('Bundle entries', expect.entries, (pointer(o.body, '/entry') as unknown[] | undefined)?.length ?? 0);
  for (const [p, v] of Object.entries(expect.audit ?? {})) check(`audit ${p}`, v, o.audit ? pointer(o.audit, p) : '(no audit record)');
  if (expect.upstream === 'none') check('upstream calls', [], o.calls.map((c) => `${c.upstream} ${c.method} ${c.path}`));
  else if (expect.upstream) {
    const want = expect.upstream;
    const call = o.calls.find((c) => c.upstream === want.name && (want.path === undefined || c.path === want.path));
    if (!call) out.push({ what: `upstream ${want.name}`, expected: want.path ?? 'a call', actual: o.calls.map((c) => `${c.upstream} ${c.method} ${c.path}`) });
    else {
      for (const [k, v] of Object.entries(want.query ?? {})) check(`upstream query ${k}`, v, call.query.get(k));
      for (const [k, v] of Object.entries(want.headers ?? {})) check(`upstream header ${k}`, v, call.headers[k.toLowerCase()] ?? null);
    }
  }
  return out;
}

/**
 * The route's audit record of one request, found by its request id; records are written just after the
 * response. An adapter (X12, PAS) may write a record of its own for the same request first: the route's is
 * the one carrying the decision trace. `audit:` pointers point into its facts (AuditView: /outcome/code,
 * /entity/route, /policy/consent/decision, …) or, under /resource, into the FHIR AuditEvent itself.
 */
async function auditRecordOf(file: string, requestId: string | null, waitMs = 2000): Promise<AuditView | undefined> {
  if (!requestId) return undefined;
  const deadline = performance.now() + waitMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    let other: AuditView | undefined;
    for (const line of text.split('\n')) {
      if (!line.includes(requestId)) continue;
      const parsed = parseAuditLine(line);
      if (parsed.kind !== 'record' || parsed.view.requestId !== requestId) continue;
      const r = parsed.view;
      if (Array.isArray(r.policy?.decisions)) return r;
      other ??= r;
    }
    if (performance.now() > deadline) return other;
    await new Promise((r) => setTimeout(r, 20));
  }
}

type CaseGateway = Awaited<ReturnType<TestWorld['gateway']>>;

export async function runCase(world: TestWorld, { url, auditFile }: CaseGateway, t: Pick<LoadedTestFile, 'file'>, c: TestCase, issuers: Map<string, IssuerConfig>): Promise<{ observed: Observed; mismatches: Mismatch[] }> {
  world.prepare(c.upstreams, dirname(t.file));
  const headers: Record<string, string> = { ...(c.request.headers ?? {}) };
  if (c.caller) {
    const issuer = issuers.get(c.caller.issuer);
    if (!issuer) throw new Error(`caller.issuer ${c.caller.issuer} is not in identity.issuers`);
    headers.authorization = `Bearer ${await world.issuer.token(c.caller, issuer)}`;
  }
  if (c.purpose) headers['x-purpose-of-use'] = c.purpose;
  let body: string | undefined;
  if (c.request.body !== undefined) {
    body = typeof c.request.body === 'string' ? c.request.body : JSON.stringify(c.request.body);
    headers['content-type'] ??= 'application/json';
  }
  const qs = new URLSearchParams(c.request.query ?? {}).toString();
  const send = async (): Promise<Observed> => {
    const res = await fetch(`${url}${c.request.path}${qs ? `?${qs}` : ''}`, { method: c.request.method ?? 'GET', headers, body, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    return { status: res.status, headers: res.headers, body: json, calls: [], requestId: res.headers.get('x-request-id') };
  };
  const judge = async (o: Observed) => {
    o.calls = [...world.calls];
    o.audit = await auditRecordOf(auditFile, o.requestId);
    return { observed: o, mismatches: compare(c.expect, o) };
  };
  // `repeat`: sent one after another, the last answer is checked (an idempotent replay).
  for (let i = 1; i < (c.repeat ?? 1); i++) await send();
  world.calls = [];
  if (!c.burst) return judge(await send());
  // `burst`: sent at once (as a rate limit sees them); the case passes when one answer meets the expectations.
  const answers = await Promise.all(Array.from({ length: c.burst }, send));
  let last!: Awaited<ReturnType<typeof judge>>;
  for (const o of answers.sort((a, b) => b.status - a.status)) {
    last = await judge(o);
    if (!last.mismatches.length) break;
  }
  return last;
}

/** The route and decision trace of a request, from its audit record. */
export function traceOf(observed: Observed): { route?: string; decisions: PolicyDecision[] } {
  return { route: observed.audit?.entity?.route as string | undefined, decisions: (observed.audit?.policy?.decisions ?? []) as PolicyDecision[] };
}

/** A case's outcome; a case that cannot run (unknown issuer, unreachable gateway) fails with the reason. */
async function caseResult(run: () => Promise<{ observed: Observed; mismatches: Mismatch[] }>, file: string, name: string): Promise<CaseResult> {
  const started = performance.now();
  try {
    const { observed, mismatches } = await run();
    return { file, name, ...traceOf(observed), ok: !mismatches.length, mismatches, ms: performance.now() - started };
  } catch (err) {
    return { file, name, ok: false, mismatches: [{ what: 'run', expected: 'the case to run', actual: (err as Error).message }], decisions: [], ms: performance.now() - started };
  }
}

export interface RunOptions {
  onCase?: (r: CaseResult) => void;
  /** Handed each test file's audit file once its gateway closed (every record written), before it is removed. */
  onAuditFile?: (file: string) => void | Promise<void>;
}

/** Runs every case of the given files; one world (issuer, stubs, sandbox) per config file. */
export async function runTests(files: string[], opts: RunOptions = {}): Promise<RunResult> {
  const loaded = await Promise.all(files.map(loadTestFile));
  const results: CaseResult[] = [];
  const hit = new Set<string>();
  const all = new Set<string>();
  // Map.groupBy arrives in Node 21; Node 20 is supported.
  const byConfig = new Map<string, LoadedTestFile[]>();
  for (const t of loaded) {
    const key = `${t.config}\0${t.sandbox}`;
    byConfig.set(key, [...(byConfig.get(key) ?? []), t]);
  }
  for (const group of byConfig.values()) {
    const config = (await loadConfigFile(group[0].config)).config;
    for (const b of branchesOf(config)) all.add(b);
    const issuers = new Map(config.identity.issuers.map((i) => [i.name, i]));
    const world = await TestWorld.create({ upstreams: config.upstreams, sandbox: group[0].sandbox });
    try {
      for (const t of group) {
        const gateway = await world.gateway(t.config);
        try {
          for (const c of t.cases) {
            const result = await caseResult(() => runCase(world, gateway, t, c, issuers), t.file, c.name);
            if (result.route) for (const b of branchesHit(result.route, result.decisions)) hit.add(b);
            results.push(result);
            opts.onCase?.(result);
          }
        } finally {
          await gateway.gw.close(1000);
        }
        await opts.onAuditFile?.(gateway.auditFile);
      }
    } finally {
      await world.close();
    }
  }
  return { cases: results, coverage: coverageReport([...all], hit) };
}
