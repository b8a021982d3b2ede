import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRoute, Exchange } from './types.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A client-supplied id is kept only if it is short and plain: it lands in logs and upstream headers. */
export function requestIdOf(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
}

/**
 * W3C trace context: keep the caller's trace id and flags, and name ourselves as the parent span of the
 * upstream call; an absent or malformed header starts a new trace.
 */
export function traceparentOf(req: IncomingMessage): string {
  const h = req.headers.traceparent;
  const m = typeof h === 'string' ? TRACEPARENT.exec(h) : null;
  const span = randomBytes(8).toString('hex');
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomBytes(16).toString('hex')}-${span}-01`;
}

export function createExchange(init: {
  id: string;
  traceparent: string;
  req: IncomingMessage;
  res: ServerResponse;
  route: CompiledRoute;
  params: Record<string, string>;
  rawQuery: string;
  ip: string;
}): Exchange {
  return {
    id: init.id,
    traceparent: init.traceparent,
    req: init.req,
    res: init.res,
    route: init.route,
    ip: init.ip,
    method: init.req.method ?? 'GET',
    params: init.params,
    query: new URLSearchParams(init.rawQuery),
    upstreamPath: '',
    decisions: [],
    upstreamHeaders: {},
    responseHeaders: {},
    startedAt: performance.now(),
    receivedAt: new Date(),
    upstream: {},
    locals: new Map(),
  };
}
