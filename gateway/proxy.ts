import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { createProxyMiddleware } from 'http-proxy-middleware';
import type { Logger } from 'winston';
import { BadGateway, GatewayError, GatewayTimeout } from './errors.ts';
import type { Metrics } from './metrics.ts';
import { isJsonType, sendBufferedJson } from './respond.ts';
import type { Upstream } from './upstreams.ts';
import type { Exchange } from './types.ts';

/** RFC 9110 §7.6.1 hop-by-hop headers: meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** A buffered upstream body larger than this is refused (502) instead of exhausting memory. */
const MAX_BUFFERED_RESPONSE = 16 * 1024 * 1024;

interface InFlight {
  ex: Exchange;
  resolve(): void;
  reject(err: GatewayError): void;
  sentAt: number;
  timedOut: boolean;
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

  const onProxyReq = (proxyReq: ClientRequest, req: IncomingMessage) => {
    const state = inflight.get(req);
    if (!state) return;
    const { ex } = state;
    for (const h of connectionListed(req.headers)) proxyReq.removeHeader(h);
    for (const h of HOP_BY_HOP) proxyReq.removeHeader(h);
    if (!forwardAuth) proxyReq.removeHeader('authorization');
    // Buffered routes re-serialise JSON; ask for identity so the body can be parsed without inflating it.
    if (buffer) proxyReq.setHeader('accept-encoding', 'identity');
    proxyReq.setHeader('x-request-id', ex.id);
    proxyReq.setHeader('traceparent', ex.traceparent);
    for (const [k, v] of Object.entries(ex.upstreamHeaders)) proxyReq.setHeader(k, v);
    proxyReq.setTimeout(upstream.timeoutMs, () => {
      state.timedOut = true;
      proxyReq.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' }));
    });
    state.sentAt = performance.now();
    if (ex.body) {
      proxyReq.setHeader('content-length', ex.body.length);
      proxyReq.write(ex.body);
    } else if (req.headers['content-length'] === undefined) {
      proxyReq.removeHeader('content-length');
    }
  };

  const onProxyRes = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
    const state = inflight.get(req);
    if (!state) return;
    const { ex } = state;
    const latency = performance.now() - state.sentAt;
    ex.upstream.status = proxyRes.statusCode;
    ex.upstream.latencyMs = latency;
    metrics.upstreamDuration.observe({ upstream: upstream.name }, latency / 1000);
    for (const h of connectionListed(proxyRes.headers)) delete proxyRes.headers[h];
    for (const h of ['keep-alive', 'proxy-authenticate', 'proxy-connection', 'trailer', 'upgrade']) delete proxyRes.headers[h];
    if (!buffer) {
      ex.status = proxyRes.statusCode;
      return; // http-proxy pipes it; the response's 'close' resolves the exchange
    }
    if (!isJsonType(proxyRes.headers['content-type']) || proxyRes.headers['content-encoding']) {
      // Not JSON (or encoded despite identity): policies cannot inspect it, so pass it through unchanged.
      ex.status = proxyRes.statusCode;
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.headers);
      proxyRes.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    proxyRes.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BUFFERED_RESPONSE) {
        proxyRes.destroy();
        state.reject(new BadGateway({ detail: 'Upstream response too large to inspect', reason: 'response-too-large' }));
      } else chunks.push(c);
    });
    proxyRes.on('error', () => state.reject(new BadGateway({ reason: 'reset' })));
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
    const kind = state.timedOut ? 'timeout' : err.code === 'ECONNREFUSED' ? 'connect' : 'reset';
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

  return {
    kind: 'proxy' as const,
    upstream,
    handle(ex: Exchange): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const req = ex.req;
        let settled = false;
        const state: InFlight = {
          ex,
          sentAt: performance.now(),
          timedOut: false,
          resolve: () => {
            if (!settled) (settled = true), resolve();
          },
          reject: (e) => {
            if (!settled) (settled = true), reject(e);
          },
        };
        inflight.set(req, state);
        ex.res.once('close', state.resolve);
        const qs = ex.query.size ? `?${ex.query.toString()}` : '';
        req.url = ex.upstreamPath + qs;
        middleware(req as never, ex.res as never, (err?: unknown) => state.reject(err ? new BadGateway({ cause: err }) : new BadGateway()));
      });
    },
  };
}

export type ProxyTarget = ReturnType<typeof createProxyTarget>;
