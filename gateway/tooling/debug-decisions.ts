/**
 * `server.debugDecisions: true`: every gateway answer carries its decision trace in a response header, for
 * developers of partner apps asking "which policy refused me, and why". Codes only, never values. Refused
 * by the config compiler unless the listener is loopback-only: a trace tells an attacker which check to
 * work around, so it is for a developer's own machine, never a shared listener.
 */
import { isIP } from 'node:net';
import type { ConfigIssue } from '../config/errors.ts';
import type { Exchange, GatewayConfig, PolicyDecision } from '../sdk/types.ts';

export const DECISIONS_HEADER = 'X-Hcgw-Decisions';

export const debugDecisionsProperty = {
  debugDecisions: {
    type: 'boolean',
    default: false,
    description: `Send the decision trace (policy=outcome(reason), in order) in the ${DECISIONS_HEADER} response header; only with a loopback server.host`,
  },
} as const;

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export function checkDebugDecisions(config: GatewayConfig): ConfigIssue[] {
  const server = config.server;
  if (!server.debugDecisions || isLoopback(server.host)) return [];
  return [{ path: 'server.debugDecisions', message: `is allowed only when server.host is a loopback address (it is "${server.host}")` }];
}

/** `jwt=allow, scopes=deny(smart-scope-missing)`: short, and safe in a header (codes are [a-z0-9-]). */
export function formatTrace(decisions: readonly PolicyDecision[]): string {
  return decisions.map((d) => `${d.policy}=${d.outcome}${d.reason ? `(${d.reason})` : ''}`).join(', ');
}

/**
 * Adds the header just before the head is written, when the response phase has run, whatever writes the
 * answer (proxy, buffered JSON, problem). Installed per exchange only when enabled: no cost otherwise.
 */
export function exposeDecisions(ex: Exchange): void {
  const res = ex.res;
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadWithTrace(this: typeof res, ...args: Parameters<typeof writeHead>) {
    if (!res.headersSent) res.setHeader(DECISIONS_HEADER, formatTrace(ex.decisions));
    return writeHead.apply(this, args);
  } as typeof writeHead;
}
