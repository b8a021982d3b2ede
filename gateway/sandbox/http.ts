/**
 * The tiny HTTP framework every sandbox server (EHR, billing, ERP, dev IdP) is built on, so that routing,
 * fault injection, stats, echo diagnostics and error shapes behave identically everywhere and each
 * server file only holds its own domain logic. Plain node:http: no middleware stack to slow benchmarks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const LOOPBACK = '127.0.0.1';
const BODY_LIMIT = 1024 * 1024;

/** Thrown by handlers; each server renders it in its own error dialect (OperationOutcome, OAuth, …). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = codeFor(status),
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function codeFor(status: number): string {
  return { 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 409: 'conflict', 413: 'payload_too_large', 422: 'unprocessable' }[status] ?? (status >= 500 ? 'server_error' : 'error');
}

export interface Reply { status: number; body?: unknown; headers?: Record<string, string> }
export const reply = (status: number, body?: unknown, headers?: Record<string, string>): Reply => ({ status, body, headers });

export interface Ctx {
  method: string;
  /** Path relative to the server's base path (`/Patient/p1` on the EHR), no query. */
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  /** Raw request body (already read, bounded). */
  text: string;
  /** Parsed JSON body; throws HttpError 400 when malformed or not an object. */
  json<T = Record<string, any>>(): T;
  /** Absolute URL of this server including the base path, for Location / fullUrl. */
  baseUrl: string;
}

export type Handler = (ctx: Ctx) => Reply | Promise<Reply>;
/** [method, pattern with `:name` segments, handler]; first match wins. */
export type Route = [string, string, Handler];

export interface Fault {
  delayMs?: number;
  status?: number;
  /** Destroy the socket after sending headers and part of the body. */
  reset?: boolean;
  /** How many of the next matching requests are affected; unlimited when absent. */
  count?: number;
  /** Prefix of the request path (with or without the server's base path). */
  path?: string;
  method?: string;
}

export interface Stats { requests: Record<string, number>; total: number }

export interface UpstreamSpec {
  name: string;
  /** Prefix every domain route lives under (`/fhir` for the EHR). `/_sandbox` and `/_echo` work with or without it. */
  basePath?: string;
  contentType?: string;
  routes: Route[];
  errorBody?: (err: HttpError) => unknown;
  /** Restore seed data. */
  reset?: () => void;
}

export interface UpstreamServer {
  name: string;
  /** Base URL including the base path (e.g. `http://127.0.0.1:9101/fhir`). */
  url: string;
  /** Scheme, host and port only. */
  origin: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
  /** Newest fault wins when several match, so a test can layer a short-lived fault over a standing one. */
  setFault(f: Fault): void;
  clearFaults(): void;
  faults(): Fault[];
  stats(): Stats;
  /** Seed data, faults and stats back to the start state. */
  reset(): void;
}

export interface ListenOpts { host?: string; port?: number }

const defaultErrorBody = (e: HttpError) => ({ error: e.code, message: e.message, ...e.extra });

function compile(routes: Route[]) {
  return routes.map(([method, pattern, handler]) => {
    const names: string[] = [];
    const source = pattern.replace(/[.$]/g, '\\$&').replace(/:(\w+)/g, (_, n: string) => (names.push(n), '([^/]+)'));
    return { method, re: new RegExp(`^${source}/?$`), names, handler };
  });
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Keep draining so the keep-alive connection stays usable; just stop buffering.
      if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on('end', () => (size > BODY_LIMIT ? reject(new HttpError(413, 'Request body too large')) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function parseJson<T>(text: string): T {
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object') return v as T;
  } catch { /* fall through */ }
  throw new HttpError(400, 'Malformed JSON body');
}

function validateFault(f: Record<string, unknown>): Fault {
  const num = (k: string) => f[k] === undefined || (typeof f[k] === 'number' && Number.isFinite(f[k]) && (f[k] as number) >= 0);
  const str = (k: string) => f[k] === undefined || typeof f[k] === 'string';
  const okStatus = f.status === undefined || (Number.isInteger(f.status) && (f.status as number) >= 100 && (f.status as number) <= 599);
  if (!num('delayMs') || !num('count') || !okStatus || !str('path') || !str('method') || (f.reset !== undefined && typeof f.reset !== 'boolean')) {
    throw new HttpError(400, 'Invalid fault: expected {delayMs?, status?, reset?, count?, path?, method?}');
  }
  const { delayMs, status, reset, count, path, method } = f as Fault;
  return { delayMs, status, reset, count, path, method };
}

export async function startUpstream(spec: UpstreamSpec, opts: ListenOpts = {}): Promise<UpstreamServer> {
  const base = spec.basePath ?? '';
  const contentType = spec.contentType ?? 'application/json';
  const errorBody = spec.errorBody ?? defaultErrorBody;
  const routes = compile(spec.routes);
  let faults: Fault[] = [];
  let stats: Stats = { requests: {}, total: 0 };
  // Delay timers are tracked so close() never waits for a long injected delay to run out.
  const timers = new Set<NodeJS.Timeout>();
  const sleep = (ms: number) => new Promise<void>((r) => { const t = setTimeout(() => (timers.delete(t), r()), ms); timers.add(t); });

  const send = (res: http.ServerResponse, r: Reply) => {
    if (res.headersSent || res.destroyed) return;
    // 204/304 must not carry a body (an injected `status: 204` fault would otherwise send one).
    const payload = r.body === undefined || r.status === 204 || r.status === 304 ? '' : JSON.stringify(r.body);
    res.writeHead(r.status, { ...(payload ? { 'content-type': contentType } : {}), 'content-length': Buffer.byteLength(payload), ...r.headers });
    res.end(payload);
  };
  const sendError = (res: http.ServerResponse, e: HttpError) => send(res, reply(e.status, errorBody(e), e.headers));

  function takeFault(method: string, full: string, rel: string): Fault | undefined {
    for (let i = faults.length - 1; i >= 0; i--) {
      const f = faults[i];
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (f.path && !full.startsWith(f.path) && !rel.startsWith(f.path)) continue;
      if (f.count !== undefined && --f.count <= 0) faults.splice(i, 1);
      return f;
    }
    return undefined;
  }

  function control(method: string, rel: string, text: string): Reply {
    const what = rel.slice('/_sandbox'.length);
    if (what === '/faults' && method === 'POST') {
      const f = validateFault(parseJson(text || '{}'));
      if (f.count !== 0) faults.push(f);
      return reply(204);
    }
    if (what === '/faults' && method === 'DELETE') return (faults = [], reply(204));
    if (what === '/faults' && method === 'GET') return reply(200, { faults });
    if (what === '/stats' && method === 'GET') return reply(200, stats);
    if (what === '/reset' && method === 'POST') return (api.reset(), reply(204));
    throw new HttpError(404, `No sandbox control endpoint ${method} ${rel}`);
  }

  const echo = (req: http.IncomingMessage, text: string): Reply => {
    let body: unknown = text === '' ? null : text;
    if (/json/.test(req.headers['content-type'] ?? '')) try { body = JSON.parse(text); } catch { /* keep raw */ }
    return reply(200, { method: req.method, url: req.url, headers: req.headers, body }, { 'content-type': 'application/json' });
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    const full = url.pathname;
    const underBase = base === '' || full === base || full.startsWith(base + '/');
    const rel = base && underBase ? full.slice(base.length) || '/' : full;
    const isControl = rel === '/_sandbox' || rel.startsWith('/_sandbox/');
    const text = await readBody(req);
    if (isControl) return send(res, control(method, rel, text));

    stats.total++;
    stats.requests[`${method} ${full}`] = (stats.requests[`${method} ${full}`] ?? 0) + 1;

    const fault = takeFault(method, full, rel);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.reset) {
      // Promise more bytes than we send, so clients see a truncated body / reset, not a short success.
      res.writeHead(fault.status ?? 200, { 'content-type': contentType, 'content-length': 1000 });
      res.write('{"partial":');
      setImmediate(() => res.socket?.destroy());
      return;
    }
    if (fault?.status) throw new HttpError(fault.status, `Injected fault (status ${fault.status})`, 'injected_fault');

    if (rel === '/_echo' || rel.startsWith('/_echo/')) return send(res, echo(req, text));
    if (!underBase) throw new HttpError(404, `No resource at ${full}`);

    let pathMatched = false;
    for (const r of routes) {
      const m = r.re.exec(rel);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      const params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
      const ctx: Ctx = {
        method, path: rel, query: url.searchParams, params, headers: req.headers, text,
        json: <T>() => parseJson<T>(text), baseUrl: api.url,
      };
      return send(res, await r.handler(ctx));
    }
    if (pathMatched) throw new HttpError(405, `${method} not allowed on ${full}`);
    throw new HttpError(404, `No resource at ${full}`);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err
        : err instanceof URIError ? new HttpError(400, 'Malformed URL encoding')
        : new HttpError(500, 'Internal sandbox error');
      sendError(res, e);
    });
  });
  // Longer than typical client agents' idle timeouts, so the gateway's pooled sockets are not closed under it.
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 31_000;
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? LOOPBACK, () => (server.off('error', reject), resolve()));
  });
  const { port, address } = server.address() as AddressInfo;
  const origin = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;

  const api: UpstreamServer = {
    name: spec.name, url: origin + base, origin, port, server,
    close: () => new Promise<void>((resolve) => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
    setFault: (f) => { const v = validateFault(f as Record<string, unknown>); if (v.count !== 0) faults.push(v); },
    clearFaults: () => { faults = []; },
    faults: () => faults.map((f) => ({ ...f })),
    stats: () => ({ requests: { ...stats.requests }, total: stats.total }),
    reset: () => { spec.reset?.(); faults = []; stats = { requests: {}, total: 0 }; },
  };
  return api;
}

// ---- small shared domain helpers (billing and ERP speak plain JSON with FHIR-style references) ----

/** `Patient/p1` and `p1` name the same thing; plain-JSON systems accept either. */
export const refId = (ref: unknown) => (typeof ref === 'string' ? ref.slice(ref.lastIndexOf('/') + 1) : undefined);
export const sameRef = (a: unknown, b: unknown) => a !== undefined && b !== undefined && refId(a) === refId(b);

/** Keep rows whose field matches each given query parameter (references compared by id). */
export function filterBy<T extends Record<string, any>>(rows: T[], query: URLSearchParams, fields: Record<string, keyof T>): T[] {
  return rows.filter((row) => Object.entries(fields).every(([param, field]) => !query.has(param) || sameRef(row[field], query.get(param))));
}

export const list = <T>(data: T[]) => reply(200, { data, total: data.length });

export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new HttpError(404, `${what} not found`);
  return value;
}

export const money = (value: number, currency = 'USD') => ({ value: Math.round(value * 100) / 100, currency });

export function requireFields(body: Record<string, unknown>, spec: Record<string, 'string' | 'number' | 'integer' | 'array'>) {
  for (const [k, t] of Object.entries(spec)) {
    const v = body[k];
    const ok = t === 'integer' ? Number.isInteger(v) : t === 'array' ? Array.isArray(v) : typeof v === t && (t !== 'number' || Number.isFinite(v));
    if (!ok) throw new HttpError(400, `Field '${k}' must be ${t === 'integer' ? 'an integer' : `a ${t}`}`);
  }
}

/** Sequential ids per store so test output is readable and stable across a reset. */
export function counter(prefix: string, start = 1) {
  let n = start;
  return { next: () => `${prefix}${n++}`, reset: () => { n = start; } };
}
