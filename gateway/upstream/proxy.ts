import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type { Logger } from 'winston';
import { BadGateway, GatewayError, GatewayTimeout } from '../sdk/errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import { ABORTED, callResilient, isAborted } from './resilience.ts';
import { isJsonType, sendBufferedJson } from '../http/respond.ts';
import { failureKind, type Upstream } from './upstreams.ts';
import type { Exchange } from '../sdk/types.ts';

/** RFC 9110 §7.6.1 hop-by-hop headers: meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** A buffered upstream body larger than this is refused (502) instead of exhausting memory. */
const MAX_BUFFERED_RESPONSE = 16 * 1024 * 1024;

/** One attempt at proxying a request (a retry is a new attempt on the same request). */
interface InFlight {
  ex: Exchange;
  /** The upstream's response headers arrived: the attempt can no longer be retried. */
  answered(status: number): void;
  /** The response is finished (or the client left). */
  resolve(): void;
  reject(err: GatewayError): void;
  sentAt: number;
  timedOut: boolean;
  proxyReq?: ClientRequest;
}

/** A request with no body to send: the client's message can be forwarded as it is. */
function bodiless(ex: Exchange): boolean {
  return !ex.body?.length && ex.req.headers['content-length'] === undefined && ex.req.headers['transfer-encoding'] === undefined;
}

function connectionListed(headers: IncomingMessage['headers']): string[] {
  const c = headers.connection;
  return typeof c === 'string' ? c.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) : [];
}

export interface ProxyTargetOptions {
  upstream: Upstream;
  /** Path template of the route's target, compiled by the caller into `exchange.upstreamPath`. */
  buffer: boolean;
  logger: Logger;
  metrics: Metrics;
}

/**
 * A system target: one http-proxy-middleware instance per route, built at config load. Streaming routes
 * pipe bytes through untouched; routes whose chain needs the response body buffer JSON responses and
 * run the response phase. Each request resolves when the response is done, or rejects with a
 * GatewayError (502/504) while nothing was sent yet, so the server's one error writer answers.
 */
export function createProxyTarget(opts: ProxyTargetOptions) {
  const { upstream, buffer, logger, metrics } = opts;
  const inflight = new WeakMap<IncomingMessage, InFlight>();
  const forwardAuth = upstream.config.forwardAuthorization === true;

  /**
   * What http-proxy reads of a request (method, url, headers, socket), with the already-buffered body as a
   * fresh stream. Headers are final and the body queued before the outgoing request exists: http-proxy
   * signals `proxyReq` only once a pooled socket is free, too late to edit a request that had to wait
   * for one (maxSockets). A fresh one per attempt also lets a retry start from the client's headers.
   */
  function outgoing(ex: Exchange): IncomingMessage {
    const req = ex.req;
    const headers: IncomingHttpHeaders = bodiless(ex) ? req.headers : { ...req.headers };
    for (const h of connectionListed(req.headers)) delete headers[h];
    for (const h of HOP_BY_HOP) delete headers[h];
    if (!forwardAuth) delete headers.authorization;
    // Buffered routes re-serialise JSON; ask for identity so the body can be parsed without inflating it.
    if (buffer) headers['accept-encoding'] = 'identity';
    headers['x-request-id'] = ex.id;
    headers.traceparent = ex.traceparent;
    for (const k in ex.upstreamHeaders) headers[k.toLowerCase()] = ex.upstreamHeaders[k];
    const url = ex.upstreamPath + ex.upstreamQueryString();
    if (headers === req.headers) {
      // No body to replay: the client's own (fully read) request serves as the source, edited in place, so
      // the common GET costs no stream and no header copy. Every edit above is idempotent, so a retry
      // can run this again.
      req.url = url;
      return req;
    }
    if (ex.body) headers['content-length'] = String(ex.body.length);
    return Object.assign(Readable.from(ex.body?.length ? [ex.body] : []), {
      method: ex.method,
      url,
      headers,
      httpVersion: req.httpVersion,
      httpVersionMajor: req.httpVersionMajor,
      httpVersionMinor: req.httpVersionMinor,
      socket: req.socket,
      connection: req.socket,
    }) as unknown as IncomingMessage;
  }

  const onProxyReq = (proxyReq: ClientRequest, req: IncomingMessage) => {
    const state = inflight.get(req);
    if (!state) return;
    state.proxyReq = proxyReq;
    proxyReq.setTimeout(upstream.timeoutMs, () => {
      state.timedOut = true;
      proxyReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' }));
    });
    state.sentAt = performance.now();
  };

  const onProxyRes = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
    const state = inflight.get(req);
    if (!state) return;
    const { ex } = state;
    const latency = performance.now() - state.sentAt;
    state.answered(proxyRes.statusCode ?? 502);
    ex.upstream.status = proxyRes.statusCode;
    ex.upstream.error = undefined;
    ex.upstream.latencyMs = latency;
    metrics.upstreamDuration.observe({ upstream: upstream.name }, latency / 1000);
    for (const h of connectionListed(proxyRes.headers)) delete proxyRes.headers[h];
    for (const h of ['keep-alive', 'proxy-authenticate', 'proxy-connection', 'trailer', 'upgrade']) delete proxyRes.headers[h];
    // Connection is hop-by-hop too: the upstream's keep-alive must not reopen a client connection that the
    // client asked to close or that the gateway closes while draining for shutdown.
    // (shouldKeepAlive is node's reading of the client's request; its headers may have been edited in place.)
    const close = !res.shouldKeepAlive || /close/i.test(String(res.getHeader('connection') ?? ''));
    if (close) proxyRes.headers.connection = 'close';
    else delete proxyRes.headers.connection;
    let size = 0;
    // An upstream that breaks off mid-body (reset, crash) must not leave a truncated body looking whole: a
    // buffered route answers 502; a streamed one cuts the client connection, as the upstream cut ours.
    proxyRes.on('error', () => undefined);
    proxyRes.once('close', () => {
      if (proxyRes.complete || size > MAX_BUFFERED_RESPONSE || res.destroyed) return;
      const kind = state.timedOut ? 'timeout' : 'reset';
      ex.upstream.error = kind;
      metrics.upstreamErrors.inc({ upstream: upstream.name, kind });
      // Rejected before the cut below, so the breaker counts an upstream failure, not a client that left.
      state.reject(state.timedOut ? new GatewayTimeout({ reason: kind }) : new BadGateway({ reason: kind }));
      if (!buffer) res.destroy();
    });
    if (!buffer) {
      ex.status = proxyRes.statusCode;
      return; // http-proxy pipes it; the response's 'close' resolves the exchange
    }
    if (!isJsonType(proxyRes.headers['content-type']) || proxyRes.headers['content-encoding']) {
      // The route's policies (minimization, consent, compartment) must see the body to release it. A body
      // they cannot inspect (XML via _format, compressed despite identity) fails closed; only bodiless
      // answers (204, 304, HEAD, empty) pass.
      const bodiless = ex.method === 'HEAD' || proxyRes.statusCode === 204 || proxyRes.statusCode === 304 || proxyRes.headers['content-length'] === '0';
      if (!bodiless) {
        proxyRes.resume();
        state.reject(new BadGateway({ detail: 'Upstream response cannot be inspected by the route policies', reason: 'uninspectable-body' }));
        return;
      }
      ex.status = proxyRes.statusCode;
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.headers);
      proxyRes.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    proxyRes.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BUFFERED_RESPONSE) {
        proxyRes.destroy();
        state.reject(new BadGateway({ detail: 'Upstream response too large to inspect', reason: 'response-too-large' }));
      } else chunks.push(c);
    });
    proxyRes.on('end', () => {
      if (size > MAX_BUFFERED_RESPONSE) return;
      const raw = Buffer.concat(chunks);
      let body: unknown;
      try {
        body = raw.length ? JSON.parse(raw.toString('utf8')) : null;
      } catch {
        state.reject(new BadGateway({ detail: 'Upstream sent malformed JSON', reason: 'bad-json' }));
        return;
      }
      sendBufferedJson(ex, { status: proxyRes.statusCode ?? 502, headers: { ...proxyRes.headers }, body }, raw).then(
        () => state.resolve(),
        (err: unknown) => state.reject(err instanceof GatewayError ? err : new BadGateway({ cause: err })),
      );
    });
  };

  const onError = (err: NodeJS.ErrnoException, req: IncomingMessage) => {
    const state = inflight.get(req);
    if (!state) return;
    const kind = state.timedOut ? 'timeout' : failureKind(err);
    state.ex.upstream.error = kind;
    metrics.upstreamErrors.inc({ upstream: upstream.name, kind });
    logger.warn('upstream error', { upstream: upstream.name, kind, code: err.code, requestId: state.ex.id, route: state.ex.route.id });
    state.reject(state.timedOut ? new GatewayTimeout({ reason: 'timeout' }) : new BadGateway({ reason: kind }));
  };

  const middleware = createProxyMiddleware({
    target: upstream.base,
    changeOrigin: true,
    xfwd: true,
    agent: upstream.agent,
    selfHandleResponse: buffer,
    ejectPlugins: true,
    plugins: [
      (proxy) => {
        proxy.on('proxyReq', onProxyReq);
        proxy.on('proxyRes', onProxyRes);
        proxy.on('error', onError as never);
      },
    ],
  });

  /**
   * Starts one pass through http-proxy. `answer` settles when the upstream's headers arrive (or the pass
   * failed before that, which is the only case a retry may follow); `done` when the response is finished.
   */
  function attempt(ex: Exchange) {
    let answer!: (v: { status: number; done: Promise<void> }) => void;
    let failEarly!: (e: GatewayError) => void;
    const answer$ = new Promise<{ status: number; done: Promise<void> }>((res, rej) => ((answer = res), (failEarly = rej)));
    let finish!: () => void;
    let failLate!: (e: GatewayError) => void;
    const done = new Promise<void>((res, rej) => ((finish = res), (failLate = rej)));
    done.catch(() => undefined); // awaited only by the caller of the pass that was answered
    let hasAnswer = false;
    let settled = false;
    const state: InFlight = {
      ex,
      sentAt: performance.now(),
      timedOut: false,
      answered(status) {
        hasAnswer = true;
        answer({ status, done });
      },
      resolve() {
        if (settled) return;
        settled = true;
        if (!hasAnswer) failEarly(new BadGateway({ reason: ABORTED }));
        finish();
      },
      reject(e) {
        if (settled) return;
        settled = true;
        if (hasAnswer) failLate(e);
        else failEarly(e);
      },
    };
    const req = outgoing(ex);
    inflight.set(req, state);
    middleware(req as never, ex.res as never, (err?: unknown) => state.reject(err ? new BadGateway({ cause: err }) : new BadGateway()));
    return { state, answer$ };
  }

  return {
    kind: 'proxy' as const,
    upstream,
    /**
     * Breaker check, then the proxy pass; a pass that failed before any response byte (connect error,
     * timeout) is re-run for requests that are safe to repeat. A 5xx answer is never retried here: its
     * bytes may already be streaming to the client (composer calls retry 5xx, see upstream-client.ts).
     */
    async handle(ex: Exchange): Promise<void> {
      const retries = upstream.resilience.retriesFor(ex.method, ex.req.headers['idempotency-key'] !== undefined);
      let current: InFlight | undefined;
      // Only a request that may be retried waits in backoff, so only it needs a signal to stop waiting.
      const clientGone = retries > 0 ? new AbortController() : undefined;
      ex.res.once('close', () => {
        if (!ex.res.writableFinished) {
          // The client left before the response was complete: stop the upstream exchange too. The pass
          // ends as aborted, which tells the breaker nothing about the upstream.
          current?.reject(new BadGateway({ reason: ABORTED }));
          current?.proxyReq?.destroy();
          clientGone?.abort();
        }
        current?.resolve();
      });
      try {
        const answered = await callResilient(upstream.resilience, { retries, retryOn5xx: false, signal: clientGone?.signal }, () => {
          const pass = attempt(ex);
          current = pass.state;
          return pass.answer$;
        });
        await answered.done;
      } catch (err) {
        if (isAborted(err)) return; // the client left: nobody to answer
        if (err instanceof GatewayError) ex.upstream.error ??= err.reason;
        throw err;
      }
    },
  };
}

export type ProxyTarget = ReturnType<typeof createProxyTarget>;

/**
 * One proxy per upstream and mode, shared by the routes of a compiled config. http-proxy-middleware
 * subscribes each instance to the server's 'close' event and never unsubscribes, so one instance per
 * route would pile up listeners (and retain retired routers) with every reload. Keyed by the upstream
 * object, which belongs to one compiled config, so a reload gets fresh proxies over its fresh agents.
 */
const shared = new WeakMap<Upstream, Map<boolean, ProxyTarget>>();
export function proxyFor(opts: ProxyTargetOptions): ProxyTarget {
  let byMode = shared.get(opts.upstream);
  if (!byMode) shared.set(opts.upstream, (byMode = new Map()));
  let proxy = byMode.get(opts.buffer);
  if (!proxy) byMode.set(opts.buffer, (proxy = createProxyTarget(opts)));
  return proxy;
}
