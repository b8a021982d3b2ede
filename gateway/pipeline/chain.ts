import type { CompiledChain, Exchange, PolicyHandler, ResponseBody, TraceSpan } from '../sdk/types.ts';
import { toGatewayError } from '../sdk/errors.ts';
import type { Logger } from 'winston';

/**
 * Phases are collected once per route; an empty phase is an empty array the hot path skips
 * (fastify's hooks, Kong's per-phase plugin lists).
 */
export function buildChain(entries: Array<{ name: string; handler: PolicyHandler }>): CompiledChain {
  const request = entries.filter((e) => e.handler.onRequest).map((e) => ({ name: e.name, run: e.handler.onRequest!.bind(e.handler) }));
  const response = entries
    .filter((e) => e.handler.onResponse)
    .map((e) => ({ name: e.name, run: e.handler.onResponse!.bind(e.handler) }))
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

/** Runs the steps in order; a throwing policy is recorded as the denier and its error propagates. */
async function runDenying(steps: ReadonlyArray<{ name: string; run(ex: Exchange, response?: ResponseBody): void | Promise<void> }>, ex: Exchange, response?: ResponseBody): Promise<void> {
  const phase = response ? 'response' : 'request';
  for (const step of steps) {
    try {
      const startMs = ex.trace ? performance.now() : 0;
      const r = step.run(ex, response);
      if (r) await (ex.trace ? traced(ex.trace, step.name, phase, startMs, r) : r);
    } catch (err) {
      ex.deniedBy ??= step.name;
      throw toGatewayError(err);
    }
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
  return runDenying(chain.response as ReadonlyArray<{ name: string; run(ex: Exchange, response?: ResponseBody): void | Promise<void> }>, ex, response);
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
