import type { CompiledChain, Exchange, PolicyDecision, PolicyHandler, ResponseBody, TraceSpan } from '../sdk/types.ts';
import { toGatewayError } from '../sdk/errors.ts';
import type { Logger } from 'winston';

/**
 * Phases are collected once per route; an empty phase is an empty array the hot path skips
 * (fastify's hooks, Kong's per-phase plugin lists).
 */
export function buildChain(entries: Array<{ name: string; handler: PolicyHandler }>): CompiledChain {
  const request = entries.filter((e) => e.handler.onRequest).map((e) => ({ name: e.name, run: e.handler.onRequest!.bind(e.handler), allowed: allowDecision(e.name) }));
  const response = entries
    .filter((e) => e.handler.onResponse)
    .map((e) => ({ name: e.name, run: e.handler.onResponse!.bind(e.handler), allowed: allowDecision(e.name) }))
    .reverse();
  const log = entries.filter((e) => e.handler.onLog).map((e) => ({ name: e.name, run: e.handler.onLog!.bind(e.handler) }));
  const release = entries.filter((e) => e.handler.beforeRelease).map((e) => ({ name: e.name, run: e.handler.beforeRelease!.bind(e.handler) }));
  return Object.freeze({
    request: Object.freeze(request) as CompiledChain['request'],
    response: Object.freeze(response) as CompiledChain['response'],
    log: Object.freeze(log) as CompiledChain['log'],
    release: Object.freeze(release) as CompiledChain['release'],
    needsResponseBody: entries.some((e) => e.handler.needsResponseBody),
    needsRequestBody: entries.some((e) => e.handler.needsRequestBody),
    handlers: Object.freeze(entries.map((e) => e.handler)) as PolicyHandler[],
  });
}

/** Built once per step: the trace entry of a policy that let the request pass without saying more. */
const allowDecision = (policy: string): PolicyDecision => Object.freeze({ policy, outcome: 'allow' });

type DenyingStep = { name: string; allowed: PolicyDecision; run(ex: Exchange, response?: ResponseBody): void | Promise<void> };

/**
 * Runs the steps in order and leaves the decision trace on the exchange: every step that ran has an entry
 * (its own, richer one when it pushed one; else `allow`), and a throwing policy is recorded as the denier
 * with its reason code before its error propagates. The trace holds codes only, never values.
 */
async function runDenying(steps: ReadonlyArray<DenyingStep>, ex: Exchange, response?: ResponseBody): Promise<void> {
  const phase = response ? 'response' : 'request';
  for (const step of steps) {
    const before = ex.decisions.length;
    try {
      const startMs = ex.trace ? performance.now() : 0;
      const r = step.run(ex, response);
      if (r) await (ex.trace ? traced(ex.trace, step.name, phase, startMs, r) : r);
    } catch (err) {
      ex.deniedBy ??= step.name;
      const ge = toGatewayError(err);
      ex.decisions.push({ policy: step.name, outcome: 'deny', reason: ge.reason ?? ge.code });
      throw ge;
    }
    if (ex.decisions.length === before) ex.decisions.push(step.allowed);
  }
}

/**
 * A span for a policy step that went asynchronous (it did I/O: a key fetch, a store call, a consent
 * look-up); synchronous steps get none. Started when the step began, so its time is the step's own.
 */
function traced(trace: TraceSpan, policy: string, phase: string, startMs: number, work: Promise<void>): Promise<void> {
  const span = trace.child(`policy ${policy}`, { 'hcgw.policy': policy, 'hcgw.phase': phase }, startMs);
  return work.then(
    () => span.end(),
    (err: unknown) => {
      span.end(undefined, err);
      throw err;
    },
  );
}

export function runRequestPhase(chain: CompiledChain, ex: Exchange): Promise<void> {
  return runDenying(chain.request, ex);
}

export function runResponsePhase(chain: CompiledChain, ex: Exchange, response: ResponseBody): Promise<void> {
  return runDenying(chain.response as ReadonlyArray<DenyingStep>, ex, response);
}

/** Log handlers never affect the response; a failing one is logged and the others still run. */
export async function runLogPhase(chain: CompiledChain, ex: Exchange, logger: Logger): Promise<void> {
  for (const step of chain.log) {
    try {
      await step.run(ex);
    } catch (err) {
      logger.error('log-phase policy failed', { policy: step.name, route: ex.route.id, error: err });
    }
  }
}
