import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type { Logger } from 'winston';
import { BadGateway, GatewayError, GatewayTimeout } from '../sdk/errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import { ABORTED, callResilient, isAborted } from './resilience.ts';
import { isJsonType } from '../http/respond.ts';
import type { PublicLinks } from '../http/public-links.ts';
import { replaceForwarding } from './forwarding.ts';
import { failureKind, type Upstream } from './upstreams.ts';
import type { Exchange, TargetResult } from '../sdk/types.ts';
import type { Credentials } from './auth/index.ts';

/** RFC 9110 §7.6.1 hop-by-hop headers: meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** A buffered upstream body larger than this is refused (502) instead of exhausting memory. */
const MAX_BUFFERED_RESPONSE = 16 * 1024 * 1024;

/**
 * The attempt an outgoing request belongs to, as a property of that request. Not a WeakMap keyed by
 * request: a WeakMap holding an entry for every request in flight made V8's garbage collector trace
 * ephemerons on every scavenge; at a fixed 1,500 req/s the bare route's peak RSS was ~205 MB with them,
 * ~130 MB without.
 */
const IN_FLIGHT = Symbol('hcgw.inFlight');
type Tracked = IncomingMessage & { [IN_FLIGHT]?: InFlight };
const stateOf = (req: IncomingMessage) => (req as Tracked)[IN_FLIGHT];

/** One attempt at proxying a request (a retry is a new attempt on the same request). */
interface InFlight {
  ex: Exchange;
  /** The upstream's response headers arrived: the attempt can no longer be retried. */
  answered(status: number): void;
  /** The upstream refused the gateway's credentials (401) and fresh ones may differ: nothing was sent to the client. */
  refused(): void;
  /** The gateway's credentials sent on this attempt, when a 401 to them may still be retried. */
  retryableCredentials?: Credentials;
  /** The response is buffered for the pipeline, or finished (streamed, or the client left). */
  resolve(result?: TargetResult): void;
  reject(err: GatewayError): void;
  sentAt: number;
  timedOut: boolean;
  proxyReq?: ClientRequest;
}

/** A request with no body to send: the client's message can be forwarded as it is. */
function bodiless(ex: Exchange): boolean {
  return !ex.body?.length && ex.req.headers['content-length'] === undefined && ex.req.headers['transfer-encoding'] === undefined;
}

/**
 * Asked of a route whose policies judge the body, these would let the upstream answer without one (304,
 * 206, 412) and so without the response phase: a HEAD or `If-None-Match` on another patient's record must
 * not answer differently from the GET that the policies refuse.
 */
const CONDITIONAL = ['if-none-match', 'if-modified-since'];
/** A part of a JSON body can be neither parsed nor have its URLs rewritten: bodies are asked for whole. */
const PARTIAL = ['range', 'if-range'];

function connectionListed(headers: IncomingMessage['headers']): string[] {
  const c = headers.connection;
  return typeof c === 'string' ? c.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) : [];
}

export interface ProxyTargetOptions {
  upstream: Upstream;
  /** Path template of the route's target, compiled by the caller into `exchange.upstreamPath`. */
  buffer: boolean;
  /** Headers of streamed responses are rewritten here (buffered ones by the pipeline). */
  links: PublicLinks;
  logger: Logger;
  metrics: Metrics;
}

/**
 * A system target: one http-proxy-middleware instance per upstream and mode, built at config load. JSON
 * responses are buffered and handed to the pipeline (URL rewriting; the response phase on routes whose
 * chain needs the body); other bodies are piped, and refused (502) on routes whose policies must see them.
 * Each request resolves when the body is buffered or the piped response is done, or rejects with a
 * GatewayError (502/504) while nothing was sent yet, so the server's one error writer answers.
 */
export function createProxyTarget(opts: ProxyTargetOptions) {
  const { upstream, buffer, links, logger, metrics } = opts;
  const forwardAuth = upstream.config.forwardAuthorization === true;

  /**
   * What http-proxy reads of a request (method, url, headers, socket), with the already-buffered body as a
   * fresh stream. Headers are final and the body queued before the outgoing request exists: http-proxy
   * signals `proxyReq` only once a pooled socket is free, too late to edit a request that had to wait
   * for one (maxSockets). A fresh one per attempt also lets a retry start from the client's headers.
   */
  function outgoing(ex: Exchange, credentials?: Credentials): IncomingMessage {
    const req = ex.req;
    // A HEAD on a buffered route is asked as a GET, so the response phase judges the body it describes.
    const method = buffer && ex.method === 'HEAD' ? 'GET' : ex.method;
    const headers: IncomingHttpHeaders = bodiless(ex) && method === req.method ? req.headers : { ...req.headers };
    for (const h of connectionListed(req.headers)) delete headers[h];
    for (const h of HOP_BY_HOP) delete headers[h];
    if (!forwardAuth) delete headers.authorization;
    // A DPoP proof is bound to this gateway's URL and the caller's key: meaningless (and replayable) further on.
    delete headers.dpop;
    if (buffer) for (const h of CONDITIONAL) delete headers[h];
    for (const h of PARTIAL) delete headers[h];
    replaceForwarding(headers, ex);
    // Every JSON body is re-serialised (URL rewriting, and on buffer routes the policies): ask for identity so
    // it can be parsed without inflating it, and so no compressed body slips past either.
    headers['accept-encoding'] = 'identity';
    headers['x-request-id'] = ex.id;
    headers.traceparent = ex.traceparent;
    for (const k in ex.upstreamHeaders) headers[k.toLowerCase()] = ex.upstreamHeaders[k];
    if (credentials) Object.assign(headers, credentials.headers);
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
      method,
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
    const state = stateOf(req);
    if (!state) return;
    state.proxyReq = proxyReq;
    proxyReq.setTimeout(upstream.timeoutMs, () => {
      state.timedOut = true;
      proxyReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' }));
    });
    state.sentAt = performance.now();
  };

  const onProxyRes = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
    const state = stateOf(req);
    if (!state) return;
    const { ex } = state;
    if (proxyRes.statusCode === 401 && state.retryableCredentials?.rejected()) {
      proxyRes.resume();
      state.refused();
      return;
    }
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
    const upstreamUrl = upstream.base + ex.upstreamPath;
    let size = 0;
    // (A HEAD is asked upstream as GET on buffer routes: that answer has the body the policies judge.)
    const hasBody = !((ex.method === 'HEAD' && !buffer) || proxyRes.statusCode === 204 || proxyRes.statusCode === 304 || proxyRes.headers['content-length'] === '0');
    // JSON is buffered on every route: the pipeline rewrites upstream URLs in it (and runs the response
    // phase where policies need the body). Anything else is piped, on routes whose policies need no body.
    const piped = !hasBody || !isJsonType(proxyRes.headers['content-type']) || proxyRes.headers['content-encoding'] !== undefined;
    // An upstream that breaks off mid-body (reset, crash) must not leave a truncated body looking whole: a
    // buffered body answers 502; a piped one cuts the client connection, as the upstream cut ours.
    proxyRes.on('error', () => undefined);
    proxyRes.once('close', () => {
      if (proxyRes.complete || size > MAX_BUFFERED_RESPONSE || res.destroyed) return;
      const kind = state.timedOut ? 'timeout' : 'reset';
      ex.upstream.error = kind;
      metrics.upstreamErrors.inc({ upstream: upstream.name, kind });
      // Rejected before the cut below, so the breaker counts an upstream failure, not a client that left.
      state.reject(state.timedOut ? new GatewayTimeout({ reason: kind }) : new BadGateway({ reason: kind }));
      if (piped) res.destroy();
    });
    if (piped) {
      // The route's policies (minimization, consent, compartment) must see the body to release it. A body
      // they cannot inspect (XML via _format, compressed despite identity) fails closed; only bodiless
      // answers (204, 304, HEAD, empty) pass.
      if (buffer && hasBody) {
        proxyRes.resume();
        state.reject(new BadGateway({ detail: 'Upstream response cannot be inspected by the route policies', reason: 'uninspectable-body' }));
        return;
      }
      ex.status = proxyRes.statusCode;
      links.rewriteHeaders(proxyRes.headers, ex.route, ex.req, upstreamUrl);
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.headers);
      proxyRes.pipe(res);
      return; // the response's 'close' resolves the exchange as streamed
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
      // One chunk (the common case for bodies up to a socket read) is the body itself: no copy to collect.
      const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      let body: unknown;
      try {
        body = raw.length ? JSON.parse(raw.toString('utf8')) : null;
      } catch {
        state.reject(new BadGateway({ detail: 'Upstream sent malformed JSON', reason: 'bad-json' }));
        return;
      }
      state.resolve({ response: { status: proxyRes.statusCode ?? 502, headers: { ...proxyRes.headers }, body }, original: raw, upstreamUrl });
    });
  };

  const onError = (err: NodeJS.ErrnoException, req: IncomingMessage) => {
    const state = stateOf(req);
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
    xfwd: false, // set by replaceForwarding: http-proxy's would append to the client's values
    agent: upstream.agent,
    // Every response is handled here: JSON is buffered (see onProxyRes), the rest piped; and a 401 to the
    // gateway's own credentials is retried once with fresh ones before anything reaches the client.
    selfHandleResponse: true,
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
   * failed before that, which is the only case a retry may follow); `done` when the body is buffered for the
   * pipeline or the streamed response is finished.
   */
  function attempt(ex: Exchange, credentials: Credentials | undefined, retryAuth: boolean) {
    let answer!: (v: Answer) => void;
    let failEarly!: (e: GatewayError) => void;
    const answer$ = new Promise<Answer>((res, rej) => ((answer = res), (failEarly = rej)));
    let finish!: (r: TargetResult) => void;
    let failLate!: (e: GatewayError) => void;
    const done = new Promise<TargetResult>((res, rej) => ((finish = res), (failLate = rej)));
    done.catch(() => undefined); // awaited only by the caller of the pass that was answered
    let hasAnswer = false;
    let settled = false;
    // The upstream span of this attempt: from sending until the response headers (the upstream's time).
    const span = ex.trace?.child(`upstream ${upstream.name}`, { 'hcgw.upstream': upstream.name, 'http.request.method': ex.method });
    const state: InFlight = {
      ex,
      sentAt: performance.now(),
      timedOut: false,
      retryableCredentials: retryAuth ? credentials : undefined,
      answered(status) {
        hasAnswer = true;
        span?.end({ 'http.response.status_code': status });
        answer({ status, done });
      },
      refused() {
        hasAnswer = settled = true;
        span?.end({ 'http.response.status_code': 401 });
        answer({ status: 401, done: Promise.resolve('streamed'), refused: true });
      },
      resolve(result = 'streamed') {
        if (settled) return;
        settled = true;
        if (!hasAnswer) {
          span?.end(undefined, ABORTED);
          failEarly(new BadGateway({ reason: ABORTED }));
        }
        finish(result);
      },
      reject(e) {
        if (settled) return;
        settled = true;
        if (hasAnswer) failLate(e);
        else {
          span?.end(undefined, e);
          failEarly(e);
        }
      },
    };
    const req = outgoing(ex, credentials);
    // The upstream sees this attempt's span as its parent (outgoing() set the request span's).
    if (span) req.headers.traceparent = span.traceparent;
    (req as Tracked)[IN_FLIGHT] = state;
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
    async handle(ex: Exchange): Promise<TargetResult> {
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
      const pass = async (retryAuth: boolean) => {
        const credentials = await upstream.auth?.credentials(ex);
        return callResilient(upstream.resilience, { retries, retryOn5xx: false, signal: clientGone?.signal }, () => {
          const one = attempt(ex, credentials, retryAuth);
          current = one.state;
          return one.answer$;
        });
      };
      try {
        let answered = await pass(true);
        if (answered.refused) answered = await pass(false);
        return await answered.done;
      } catch (err) {
        if (isAborted(err)) return 'streamed'; // the client left: nobody to answer
        if (err instanceof GatewayError) ex.upstream.error ??= err.reason;
        throw err;
      }
    },
  };
}

export type ProxyTarget = ReturnType<typeof createProxyTarget>;

/** How one proxy pass ended: the upstream's status, and a promise for the end of the response. */
interface Answer {
  status: number;
  done: Promise<TargetResult>;
  /** The upstream refused the gateway's credentials; the pass may be repeated with fresh ones. */
  refused?: boolean;
}

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
