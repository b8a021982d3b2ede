import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRoute, Exchange } from '../sdk/types.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A client-supplied id is kept only if it is short and plain: it lands in logs and upstream headers. */
export function requestIdOf(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
}

/**
 * Random bytes for span and trace ids, drawn from a pooled buffer: a randomBytes() call per request costs
 * more than everything else the exchange does.
 */
const POOL_SIZE = 8192;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;
function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/**
 * W3C trace context: keep the caller's trace id and flags, and name ourselves as the parent span of the
 * upstream call; an absent or malformed header starts a new trace.
 */
export function traceparentOf(req: IncomingMessage): string {
  const h = req.headers.traceparent;
  const m = typeof h === 'string' ? TRACEPARENT.exec(h) : null;
  const span = randomHex(8);
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) return `00-${m[1]}-${span}-${m[3]}`;
  return `00-${randomHex(16)}-${span}-01`;
}

interface ExchangeInit {
  id: string;
  traceparent: string;
  req: IncomingMessage;
  res: ServerResponse;
  route: CompiledRoute;
  params: Record<string, string>;
  rawQuery: string;
  ip: string;
}

/**
 * The per-request state. A class rather than a literal so that what most requests never touch (the parsed
 * query, the policy locals) is built only on first use; the upstream query string is the client's raw one
 * unless a policy looked at or rewrote the query.
 */
class GatewayExchange implements Exchange {
  readonly id: string;
  readonly traceparent: string;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: CompiledRoute;
  readonly ip: string;
  readonly method: string;
  params: Record<string, string>;
  upstreamPath = '';
  body?: Buffer;
  json?: unknown;
  principal?: Exchange['principal'];
  purposeOfUse?: string;
  consent?: Exchange['consent'];
  decisions: Exchange['decisions'] = [];
  upstreamHeaders: Record<string, string> = {};
  responseHeaders: Record<string, string> = {};
  readonly startedAt = performance.now();
  readonly receivedAt = new Date();
  upstream: Exchange['upstream'] = {};
  status?: number;
  error?: Exchange['error'];
  deniedBy?: string;
  trace?: Exchange['trace'];
  replay?: Exchange['replay'];
  private readonly rawQuery: string;
  private parsedQuery?: URLSearchParams;
  private localsMap?: Map<object, unknown>;

  constructor(init: ExchangeInit) {
    this.id = init.id;
    this.traceparent = init.traceparent;
    this.req = init.req;
    this.res = init.res;
    this.route = init.route;
    this.ip = init.ip;
    this.method = init.req.method ?? 'GET';
    this.params = init.params;
    this.rawQuery = init.rawQuery;
  }

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.rawQuery));
  }

  set query(q: URLSearchParams) {
    this.parsedQuery = q;
  }

  get locals(): Map<object, unknown> {
    return (this.localsMap ??= new Map());
  }

  upstreamQueryString(): string {
    if (!this.parsedQuery) return this.rawQuery ? `?${this.rawQuery}` : '';
    return this.parsedQuery.size ? `?${this.parsedQuery.toString()}` : '';
  }
}

export function createExchange(init: ExchangeInit): Exchange {
  return new GatewayExchange(init);
}
