/**
 * `hcgw explain`: one request through the real compiled chain, in-process over loopback HTTP, with the
 * machinery of `hcgw test` (throw-away token issuer, recording stub upstreams answering from the demo
 * sandbox or from given answers), then what happened: the route, each decision with its reason code, what
 * the response filters removed, and the final status.
 */
import { join } from 'node:path';
import { match as compileMatcher } from 'path-to-regexp';
import { loadConfigFile } from '../../config/load.ts';
import type { PolicyDecision } from '../../sdk/types.ts';
import { runCase, traceOf } from '../runner.ts';
import type { Caller, TestCase, UpstreamAnswer } from '../spec.ts';
import { TestWorld, type RecordedCall } from '../world.ts';
import { removedBetween, type Removal } from './removed.ts';

export interface ExplainRequest {
  /** The routes.yaml to run. */
  config: string;
  method: string;
  /** Path with its query string, as a client sends it. */
  path: string;
  /** undefined: the request carries no token. */
  caller?: Caller;
  purpose?: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Upstream name → answers tried in order by path prefix; `file` paths are absolute or relative to the working directory. */
  answers?: Record<string, UpstreamAnswer[]>;
}

export interface Explanation {
  request: { method: string; path: string };
  /** undefined: no route matches (the gateway answers 404 or 405 itself). */
  route?: { id: string; layer: string; policies: string[]; target: string };
  /** The decision trace of the audit record: request phase in order, then response phase in reverse. */
  decisions: PolicyDecision[];
  /** Request-phase policies that never ran because an earlier one refused. */
  notReached: string[];
  /** The consent decision the audit record carries (consent policy only). */
  consent?: { decision: string; consentIds: string[] };
  /** What the response phase took out of the target's answer (system targets with a JSON answer). */
  removed?: Removal;
  upstreamCalls: string[];
  status: number;
  problem?: { type?: string; reason?: string; detail?: string };
  /** Why no trace is shown, when there is none. */
  note?: string;
}

/** The call the route's target made (its upstream and path template), among the calls the stubs recorded. */
function targetCall(targetConfig: unknown, calls: RecordedCall[]): RecordedCall | undefined {
  const t = targetConfig as { upstream?: unknown; path?: unknown; compose?: unknown; adapter?: unknown };
  if (typeof t.upstream !== 'string' || typeof t.path !== 'string' || t.compose || t.adapter) return undefined;
  const matches = compileMatcher(t.path);
  return calls.find((c) => c.upstream === t.upstream && matches(c.path) !== false);
}

export async function explain(req: ExplainRequest): Promise<Explanation> {
  const { config } = await loadConfigFile(req.config);
  const issuers = new Map(config.identity.issuers.map((i) => [i.name, i]));
  const world = await TestWorld.create({ upstreams: config.upstreams, sandbox: true });
  try {
    const gateway = await world.gateway(req.config);
    try {
      const c: TestCase = {
        name: 'explain',
        request: { method: req.method, path: req.path, headers: req.headers, body: req.body },
        caller: req.caller,
        purpose: req.purpose,
        upstreams: req.answers,
        repeat: 1,
        expect: {},
      };
      // Answer files on the command line are relative to the working directory: the "file" the case comes from is there.
      const { observed } = await runCase(world, gateway, { file: join(process.cwd(), 'command-line') }, c, issuers);
      const found = gateway.gw.compiled.router.match(req.method, new URL(req.path, 'http://x').pathname);
      const route = typeof found === 'object' && found.kind === 'route' ? found.route : undefined;
      const { decisions } = traceOf(observed);
      const body = observed.body as { type?: string; reason?: string; detail?: string } | undefined;
      const ran = new Set(decisions.map((d) => d.policy));
      const refused = decisions.some((d) => d.outcome === 'deny');
      const upstream = route && observed.status < 400 ? targetCall(route.targetConfig, observed.calls) : undefined;
      const t = route?.targetConfig as { upstream?: string; path?: string } | undefined;
      const out: Explanation = {
        request: { method: req.method, path: req.path },
        route: route && {
          id: route.id,
          layer: route.layer,
          policies: route.policyNames,
          target: t?.upstream ? `${t.upstream} ${t.path ?? ''}`.trim() : Object.keys(route.targetConfig).filter((k) => ['compose', 'adapter', 'route'].includes(k)).join(', '),
        },
        decisions,
        notReached: refused && route ? route.chain.request.map((s) => s.name).filter((n) => !ran.has(n)) : [],
        upstreamCalls: observed.calls.map((call) => `${call.upstream} ${call.method} ${call.path}`),
        status: observed.status,
      };
      const consent = observed.audit?.policy?.consent as { decision: string; consentIds: string[] } | undefined;
      if (consent) out.consent = { decision: consent.decision, consentIds: consent.consentIds };
      const removed = upstream?.answer && removedBetween(upstream.answer.body, observed.body);
      if (removed) out.removed = removed;
      if (observed.status >= 400 && body && typeof body === 'object') out.problem = { type: body.type, reason: body.reason, detail: body.detail };
      if (!route) out.note = 'no route matches: the gateway answered itself, no policy ran';
      else if (!observed.audit) out.note = 'the route has no audit policy, so no decision trace was recorded';
      return out;
    } finally {
      await gateway.gw.close(1000);
    }
  } finally {
    await world.close();
  }
}
