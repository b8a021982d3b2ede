import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * helmet decides the security headers; we ask it once and replay its answer on every response. Its
 * defaults are static (no per-request nonces), and re-running its dozen sub-middlewares per request cost
 * more than the proxying itself.
 */
export function securityHeaders(options?: Parameters<typeof helmet>[0]) {
  const set: Array<[string, string]> = [];
  const removed: string[] = [];
  const recorder = {
    setHeader(name: string, value: string | number | string[]) {
      set.push([name, String(value)]);
    },
    removeHeader(name: string) {
      removed.push(name);
    },
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, () => undefined);
  return function applySecurityHeaders(_req: IncomingMessage, res: ServerResponse, next: () => void): void {
    for (let i = 0; i < set.length; i++) res.setHeader(set[i][0], set[i][1]);
    for (let i = 0; i < removed.length; i++) res.removeHeader(removed[i]);
    next();
  };
}
