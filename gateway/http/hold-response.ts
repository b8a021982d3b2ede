import type { ServerResponse } from 'node:http';
import type { Logger } from 'winston';
import { ServiceUnavailable } from '../sdk/errors.ts';
import type { CompiledChain, Exchange } from '../sdk/types.ts';
import { writeProblem } from './problem.ts';

/**
 * Holds back the last bytes of the response until every `beforeRelease` step agreed: audit durability
 * `before-response` writes the record there. The last written chunk is always kept back (with a
 * Content-Length the client would take the final data chunk as the end), so the client can never hold a
 * complete answer before its record exists. A step that says no, or throws, withholds the response: a
 * 503 problem if nothing was sent yet, else a cut connection.
 */
export function holdResponse(ex: Exchange, steps: CompiledChain['release'], logger: Logger): void {
  const res = ex.res;
  const write = res.write as (...args: unknown[]) => boolean;
  const end = res.end as (...args: unknown[]) => ServerResponse;
  let kept: unknown[] | undefined;
  let ending = false;
  res.write = function holdWrite(...args: unknown[]) {
    if (ending) return write.apply(res, args);
    const previous = kept;
    kept = args;
    return previous ? write.apply(res, previous) : true;
  } as typeof res.write;
  res.end = function holdEnd(...args: unknown[]) {
    if (ending) return end.apply(res, args);
    ending = true;
    void release(ex, steps, logger).then((ok) => {
      if (!ok) return writeProblem(res, new ServiceUnavailable({ reason: 'audit-unavailable', detail: 'The audit record could not be written; try again later' }), ex.id);
      if (kept) write.apply(res, kept);
      end.apply(res, args);
    });
    return res;
  } as typeof res.end;
}

async function release(ex: Exchange, steps: CompiledChain['release'], logger: Logger): Promise<boolean> {
  for (const step of steps) {
    try {
      if (!(await step.run(ex))) return false;
    } catch (err) {
      logger.error('release step failed', { policy: step.name, route: ex.route.id, error: err });
      return false;
    }
  }
  return true;
}
