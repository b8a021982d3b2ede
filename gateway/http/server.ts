import { exposeDecisions } from '../tooling/debug-decisions.ts';
import http from 'node:http';
import https from 'node:https';
import { dirname, resolve } from 'node:path';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import express from 'express';
import getRawBody from 'raw-body';
import type { Logger } from 'winston';
import { runLogPhase } from '../pipeline/chain.ts';
import { runExchange } from '../pipeline/dispatch.ts';
import { compileConfig, type CompiledGateway } from '../config/compile.ts';
import { ConfigError } from '../config/errors.ts';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import { BadRequest, GatewayError, MethodNotAllowed, PayloadTooLarge, RouteNotFound, toGatewayError } from '../sdk/errors.ts';
import { jsonDeeperThan, MAX_JSON_DEPTH } from '../lib/json-depth.ts';
import { createExchange, requestIdOf, traceparentOf } from '../pipeline/exchange.ts';
import { createLogger } from '../ops/logger.ts';
import { createMetrics, type Metrics } from '../ops/metrics.ts';
import { createAdminApp, listenAdmin, mountHealth, type OpsDeps, type Readiness } from '../ops/admin.ts';
import { createTelemetry, type Telemetry } from '../ops/telemetry.ts';
import type { TelemetryConfig } from '../ops/telemetry-schema.ts';
import { createAuditRegistry, type AuditRegistry } from '../audit/registry.ts';
import { writeProblem } from './problem.ts';
import { holdResponse } from './hold-response.ts';
import { addRequestFacts, type RoutedRequest, type TrustProxyFn } from './request-facts.ts';
import { trackConnections } from './drain.ts';
import { securityHeaders } from './security-headers.ts';
import { serverTlsOptions } from './tls.ts';
import { createFhirSurface, type FhirSurface } from '../fhir/index.ts';
import { reloadConfig } from '../ops/reload.ts';
import { isJsonType } from './respond.ts';
import { edgeRefusal, refuseMethodOverride } from './request-guards.ts';
import { createStore, type Store } from '../store/index.ts';
import { startEventBackbone, type EventBackbone } from '../events/backbone.ts';
import { mountEventsAdmin } from '../events/admin.ts';
import type { CompiledRoute, Exchange, GatewayConfig } from '../sdk/types.ts';
import type { CloudEvent } from '../events/types.ts';

const noop = () => undefined;

export interface GatewayOptions {
  /** Path of routes.yaml (used for reloads). */
  file: string;
  /** Already loaded config (else the file is read). */
  loaded?: LoadedConfig;
  logger?: Logger;
  /** Overrides server.port / host (tests use port 0). */
  port?: number;
  host?: string;
  now?: () => number;
}

const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };
export function parseSize(s: string): number {
  const m = /^(\d+)(b|kb|mb)$/.exec(s);
  return m ? Number(m[1]) * UNITS[m[2]] : 1024 * 1024;
}

/** Settings bound to the sockets and clients made at start: a reload cannot change them. */
function restartOnlyChanges(a: GatewayConfig, b: GatewayConfig): string[] {
  const keys = ['port', 'host', 'requestTimeoutMs', 'headersTimeoutMs', 'keepAliveTimeoutMs', 'logLevel'] as const;
  const out = keys.filter((k) => a.server[k] !== b.server[k]).map((k) => `server.${k}`);
  if (a.server.admin?.port !== b.server.admin?.port || a.server.admin?.host !== b.server.admin?.host) out.push('server.admin');
  if (!isDeepStrictEqual(a.store, b.store)) out.push('store');
  if (!isDeepStrictEqual(a.telemetry, b.telemetry)) out.push('telemetry');
  return out;
}


interface Generation {
  compiled: CompiledGateway;
  inflight: number;
  retired: boolean;
}

/**
 * The running gateway: one HTTP server, one store, and the current compiled router. Each request pins
 * the generation it started on, so a reload swaps atomically and retired routers are closed only after
 * their last request.
 */
export class Gateway {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly file: string;
  /** Audit trails live as long as the gateway, so the hash chain continues across reloads. */
  readonly audit: AuditRegistry;
  store!: Store;
  /** Undefined when `telemetry.otlp` is not configured: nothing traces, nothing is loaded. */
  telemetry?: Telemetry;
  /** The event backbone, when `events:` is configured; it outlives reloads like the audit trails. */
  events?: EventBackbone;
  private current!: Generation;
  private server?: http.Server;
  private connections?: ReturnType<typeof trackConnections>;
  private adminServer?: http.Server;
  private bodyLimit = 1024 * 1024;
  /** `server.allowedHosts`, lower-cased; undefined answers every Host. */
  private allowedHosts?: ReadonlySet<string>;
  private readonly app = express();
  private closing = false;
  private inflightTotal = 0;
  /** Responses still being written, so a shutdown can tell their clients not to reuse the connection. */
  private readonly liveResponses = new Set<http.ServerResponse>();
  private drainWaiters: Array<() => void> = [];
  private reloading: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: GatewayOptions, logger: Logger) {
    this.logger = logger;
    this.file = opts.file;
    this.metrics = createMetrics({ defaultMetrics: true });
    this.audit = createAuditRegistry({ logger, metrics: this.metrics });
  }

  static async create(opts: GatewayOptions): Promise<Gateway> {
    const loaded = opts.loaded ?? (await loadConfigFile(opts.file));
    const logger = opts.logger ?? createLogger({ level: loaded.config.server.logLevel });
    const gw = new Gateway(opts, logger);
    gw.store = await createStore(loaded.config.store, logger, { onEvict: () => gw.metrics.storeEvictions.inc() });
    gw.telemetry = await createTelemetry(loaded.config.telemetry as TelemetryConfig | undefined, logger);
    try {
      gw.current = { compiled: await compileConfig(loaded, gw.deps()), inflight: 0, retired: false };
      gw.events = await startEventBackbone(gw.current.compiled, logger, gw.metrics.registry);
    } catch (err) {
      await gw.current?.compiled.close();
      await gw.store.close();
      await gw.telemetry?.close();
      throw err;
    }
    gw.applyServerSettings(loaded.config);
    gw.buildApp();
    return gw;
  }

  /** The server settings a reload applies at once. */
  private applyServerSettings(config: GatewayConfig): void {
    this.bodyLimit = parseSize(config.server.bodyLimit);
    const hosts = config.server.allowedHosts;
    this.allowedHosts = hosts?.length ? new Set(hosts.map((h) => h.toLowerCase())) : undefined;
    this.app.set('trust proxy', config.server.trustProxy);
  }

  private deps() {
    return { logger: this.logger, metrics: this.metrics, store: this.store, now: this.opts.now, audit: this.audit, events: { publish: (e: CloudEvent) => (this.events ? this.events.publish(e) : Promise.reject(new Error('event backbone not started'))) } };
  }

  private async readiness(): Promise<Readiness> {
    const storeOk = await this.store.ping();
    const eventsOk = this.events ? await this.events.ready() : undefined;
    const c = this.compiled;
    const ready = storeOk && eventsOk !== false && !this.closing;
    return {
      ready,
      body: {
        status: ready ? 'ready' : 'not-ready',
        store: { kind: this.store.kind, ok: storeOk },
        ...(this.events ? { events: { engine: this.events.log.kind, ok: eventsOk } } : {}),
        config: { version: c.hash, routes: c.routes.length, loadedAt: c.compiledAt.toISOString() },
      },
    };
  }

  private ops(): OpsDeps {
    return { metrics: this.metrics, readiness: () => this.readiness(), compiled: () => this.compiled };
  }

  get compiled(): CompiledGateway {
    return this.current.compiled;
  }

  private readonly applySecurityHeaders = securityHeaders();

  /**
   * What every response gets before anything answers, health endpoints included: Connection: close while
   * draining (a reused keep-alive connection could carry a request that the final cut would lose), the
   * security headers, and the Host and header checks. False when the request was answered (refused).
   */
  private prelude(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.closing) res.setHeader('Connection', 'close');
    this.applySecurityHeaders(req, res, noop);
    const refusal = edgeRefusal(req, this.allowedHosts);
    if (!refusal) return true;
    const id = requestIdOf(req);
    res.setHeader('X-Request-Id', id);
    writeProblem(res, refusal, id);
    return false;
  }

  private buildApp(): void {
    const app = this.app;
    const cfg = this.compiled.config.server;
    app.disable('x-powered-by');
    app.disable('etag');
    app.use((req, res, next) => {
      if (this.prelude(req, res)) next();
    });
    this.expressPaths = mountHealth(app, this.ops(), { metrics: !cfg.admin });
    app.use((req, res) => void this.dispatch(req, res));
  }

  /** Paths express answers itself (health, metrics), as its router matches them: any case, optional trailing slash. */
  private expressPaths: ReadonlySet<string> = new Set();

  /**
   * node's request listener. Routed requests go straight to the prelude and the compiled router: walking
   * express's middleware stack cost more per request than the routing itself. Express still answers the
   * paths it owns, with the same prelude. Routed requests keep node's own prototypes (see
   * request-facts.ts); what they need of express's request getters is written on them once.
   */
  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = (q === -1 ? url : url.slice(0, q)).toLowerCase();
    // Anything express might route itself (an absolute-form target too) goes to express: its stack ends in
    // the same dispatch, so sending it a request it does not own changes nothing but the cost.
    if (url[0] !== '/' || this.expressPaths.has(path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path)) return void this.app(req, res);
    const routed = addRequestFacts(req, this.app.get('trust proxy fn') as TrustProxyFn);
    try {
      if (this.prelude(routed, res)) void this.dispatch(routed, res);
    } catch (err) {
      // express's final handler would have answered a throwing middleware with a 500: so do we, as a problem.
      this.logger.error('internal error', { error: err });
      if (!res.headersSent) writeProblem(res, toGatewayError(err), requestIdOf(req));
      else res.destroy();
    }
  };

  /** The request path: match → read body → pipeline (request phase, target, response phase) → (log phase on close). */
  private async dispatch(req: RoutedRequest, res: http.ServerResponse): Promise<void> {
    const id = requestIdOf(req);
    res.setHeader('X-Request-Id', id);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const gen = this.current;
    const fhir = this.fhirSurface(gen.compiled);
    // Under a FHIR base, FHIR clients get their errors as OperationOutcome resources.
    const fail = (err: GatewayError) => fhir.writeError(req, res, path, err, id);
    if (fhir.enabled) {
      try {
        fhir.checkFormat(req, path);
      } catch (err) {
        return fail(toGatewayError(err));
      }
      if (fhir.serve(req, res, path)) return;
    }
    const m = gen.compiled.router.match(req.method ?? 'GET', path);
    if (m === 'bad-path') return fail(new BadRequest({ detail: 'Malformed or ambiguous request path', reason: 'bad-path' }));
    if (m.kind === 'none') return fail(new RouteNotFound());
    if (m.kind === 'method-not-allowed') return fail(new MethodNotAllowed({ headers: { Allow: m.allow.join(', ') } }));

    const span = this.telemetry?.startRequest(req, m.route);
    const ex = createExchange({ id, traceparent: span?.traceparent ?? traceparentOf(req), req, res, route: m.route, params: m.params, rawQuery: q === -1 ? '' : url.slice(q + 1), ip: req.ip ?? '' });
    if (span) ex.trace = span;
    if (gen.compiled.config.server.debugDecisions) exposeDecisions(ex);
    gen.inflight++;
    this.inflightTotal++;
    this.liveResponses.add(res);
    res.once('close', () => this.finish(ex, gen));
    const route = m.route;
    if (route.chain.release.length) holdResponse(ex, route.chain.release, this.logger);
    try {
      route.target.prepare?.(ex);
      await this.readBody(ex);
      refuseMethodOverride(ex);
      await runExchange(ex, gen.compiled.links);
    } catch (err) {
      const ge = toGatewayError(err);
      ex.error = ge;
      if (ge.status >= 500 && !(err instanceof GatewayError)) this.logger.error('internal error', { requestId: id, traceparent: ex.traceparent, route: route.id, error: err });
      if (ex.deniedBy) this.metrics.denials.inc({ policy: ex.deniedBy, reason: ge.reason ?? ge.code });
      for (const [k, v] of Object.entries(ex.responseHeaders)) if (!res.headersSent) res.setHeader(k, v);
      fail(ge);
    }
  }

  /**
   * Bodies are read whole, bounded by `server.bodyLimit`, so that a slow or oversized body never reaches
   * an upstream and policies can inspect it; JSON is parsed only for chains that need it.
   */
  private async readBody(ex: Exchange): Promise<void> {
    const req = ex.req;
    const len = req.headers['content-length'];
    const hasBody = (len !== undefined && len !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return;
    if (len !== undefined && Number(len) > this.bodyLimit) {
      ex.res.setHeader('Connection', 'close');
      throw new PayloadTooLarge({ reason: 'body-limit' });
    }
    try {
      ex.body = await getRawBody(req, { limit: this.bodyLimit, length: len });
    } catch (err) {
      ex.res.setHeader('Connection', 'close');
      throw (err as { type?: string }).type === 'entity.too.large' ? new PayloadTooLarge({ reason: 'body-limit' }) : new BadRequest({ detail: 'Request body could not be read', reason: 'body-read' });
    }
    if (!isJsonType(req.headers['content-type'])) return;
    // Checked on every JSON body, parsed here or not: it protects the upstream's parser as much as ours.
    if (jsonDeeperThan(ex.body)) throw new BadRequest({ detail: `JSON body nested deeper than ${MAX_JSON_DEPTH} levels`, reason: 'json-too-deep' });
    // Parsed on every route, whether a policy reads it or not: a malformed body never reaches an upstream.
    if (ex.body.length) {
      try {
        ex.json = JSON.parse(ex.body.toString('utf8'));
      } catch {
        throw new BadRequest({ detail: 'Malformed JSON body', reason: 'bad-json' });
      }
    }
  }

  private readonly fhirByConfig = new WeakMap<CompiledGateway, FhirSurface>();
  private fhirSurface(compiled: CompiledGateway): FhirSurface {
    let f = this.fhirByConfig.get(compiled);
    if (!f) this.fhirByConfig.set(compiled, (f = createFhirSurface(compiled.config, compiled.compiledAt)));
    return f;
  }

  /** prom-client label children per route, resolved once: label hashing per request is measurable. */
  private readonly metricsByRoute = new WeakMap<CompiledRoute, ReturnType<Gateway['buildRouteMetrics']>>();
  private routeMetrics(route: CompiledRoute) {
    let m = this.metricsByRoute.get(route);
    if (!m) this.metricsByRoute.set(route, (m = this.buildRouteMetrics(route)));
    return m;
  }
  private buildRouteMetrics(route: CompiledRoute) {
    const byClass = new Map<number, ReturnType<Metrics['requests']['labels']>>();
    return {
      requests: (status: number) => {
        const cls = Math.floor(status / 100);
        let c = byClass.get(cls);
        if (!c) byClass.set(cls, (c = this.metrics.requests.labels(route.id, route.layer, `${cls}xx`)));
        return c;
      },
      duration: this.metrics.duration.labels(route.id, route.layer),
      overhead: this.metrics.overhead.labels(route.id),
    };
  }

  private finish(ex: Exchange, gen: Generation): void {
    this.liveResponses.delete(ex.res);
    ex.status ??= ex.res.statusCode;
    const route = ex.route;
    const seconds = (performance.now() - ex.startedAt) / 1000;
    const m = this.routeMetrics(route);
    m.requests(ex.status).inc();
    m.duration.observe(seconds);
    // A failed upstream call has no latency to subtract: its wait (up to the timeout) is not gateway overhead.
    if (ex.upstream.latencyMs !== undefined || ex.upstream.error === undefined) {
      m.overhead.observe(Math.max(0, seconds - (ex.upstream.latencyMs ?? 0) / 1000));
    }
    const done = () => {
      ex.trace?.end({ 'http.response.status_code': ex.status ?? 0 }, (ex.status ?? 0) >= 500 ? (ex.error ?? 'error') : undefined);
      gen.inflight--;
      this.inflightTotal--;
      if (gen.retired && gen.inflight === 0) void gen.compiled.close();
      if (this.inflightTotal === 0) for (const w of this.drainWaiters.splice(0)) w();
    };
    if (route.chain.log.length) void runLogPhase(route.chain, ex, this.logger).finally(done);
    else done();
  }

  async listen(): Promise<AddressInfo> {
    const cfg = this.compiled.config.server;
    const options = { requestTimeout: cfg.requestTimeoutMs, headersTimeout: cfg.headersTimeoutMs, keepAliveTimeout: cfg.keepAliveTimeoutMs, maxHeaderSize: 16 * 1024, requireHostHeader: false, connectionsCheckingInterval: Math.min(1000, cfg.headersTimeoutMs) };
    const server: http.Server = cfg.tls ? https.createServer({ ...options, ...serverTlsOptions(cfg.tls, dirname(resolve(this.file))) }, this.onRequest) : http.createServer(options, this.onRequest);
    // A malformed request never reaches express: answer it with a problem document, not node's bare 400.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const body = JSON.stringify({ type: `https://hcgw.dev/problems/${status === 431 ? 'headers-too-large' : status === 408 ? 'request-timeout' : 'bad-request'}`, title: http.STATUS_CODES[status], status });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
    this.server = server;
    this.connections = trackConnections(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? cfg.port, this.opts.host ?? cfg.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    this.logger.info('gateway listening', { address: addr.address, port: addr.port, routes: this.compiled.routes.length, config: this.compiled.hash });
    await this.listenAdmin();
    return addr;
  }

  get address(): AddressInfo | undefined {
    return this.server?.address() as AddressInfo | undefined;
  }

  /** The admin port (health, metrics, read-only admin API): started only when `server.admin` is configured. */
  private async listenAdmin(): Promise<void> {
    const admin = this.compiled.config.server.admin;
    if (!admin) return;
    const app = createAdminApp({ ...this.ops(), token: () => this.compiled.config.server.admin?.token, reload: () => reloadConfig(this, 'admin-api'), mount: (a) => mountEventsAdmin(a, () => this.events) });
    this.adminServer = await listenAdmin(app, admin.port, admin.host ?? '127.0.0.1');
    const addr = this.adminServer.address() as AddressInfo;
    this.logger.info('admin listening', { address: addr.address, port: addr.port, api: admin.token ? 'enabled' : 'disabled (no token)' });
  }

  get adminAddress(): AddressInfo | undefined {
    return this.adminServer?.address() as AddressInfo | undefined;
  }

  /**
   * Re-reads the file, compiles off to the side and swaps atomically: requests already running finish on
   * the router they started on, which is closed after their last one. Reloads run one at a time, so the
   * last one asked for always wins. A bad config throws (ConfigError) and the running router keeps serving.
   */
  reload(): Promise<CompiledGateway> {
    const run = this.reloading.then(() => this.swapConfig());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async swapConfig(): Promise<CompiledGateway> {
    if (this.closing) throw new Error('gateway is closing');
    let next: CompiledGateway;
    try {
      next = await compileConfig(await loadConfigFile(this.file), this.deps());
    } catch (err) {
      this.metrics.configReloads.inc({ result: 'rejected' });
      if (err instanceof ConfigError) this.logger.error('config reload rejected', { file: err.file, issues: err.issues });
      else this.logger.error('config reload failed', { file: this.file, error: err });
      throw err;
    }
    if (this.closing) {
      await next.close();
      throw new Error('gateway is closing');
    }
    const old = this.current;
    this.current = { compiled: next, inflight: 0, retired: false };
    await this.events?.apply(next.events);
    this.bodyLimit = parseSize(next.config.server.bodyLimit);
    this.app.set('trust proxy', next.config.server.trustProxy);
    this.applyServerSettings(next.config);
    old.retired = true;
    if (old.inflight === 0) await old.compiled.close();
    this.metrics.configReloads.inc({ result: 'applied' });
    this.logger.info('config reloaded', { config: next.hash, previous: old.compiled.hash, routes: next.routes.length });
    const pending = restartOnlyChanges(old.compiled.config, next.config);
    if (pending.length) this.logger.warn('config changes that apply only after a restart', { keys: pending });
    return next;
  }

  /** Stop accepting, drain in-flight requests (bounded), then close policies, agents and the store. */
  /** Resolves when no request is in flight (log phases included), or after `ms`. */
  private async drained(ms: number): Promise<void> {
    if (this.inflightTotal === 0) return;
    await Promise.race([new Promise<void>((r) => this.drainWaiters.push(r)), new Promise<void>((r) => setTimeout(r, ms).unref())]);
  }

  async close(drainMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const res of this.liveResponses) if (!res.headersSent) res.setHeader('Connection', 'close');
    const server = this.server;
    // Stop accepting first (in a cluster this takes the worker out of the primary's rotation). Then no
    // connection is cut while a request may be crossing: busy ones answer with Connection: close (set
    // above and by the request middleware) and close after their response; quiet ones are ended only
    // once quiet for QUIET_MS. What is still open at drainMs is cut.
    const closed = server ? new Promise<void>((r) => net.Server.prototype.close.call(server, () => r())) : Promise.resolve();
    const until = performance.now() + drainMs;
    while (performance.now() < until && (this.inflightTotal > 0 || (this.connections?.size ?? 0) > 0)) {
      this.connections?.closeQuiet();
      await new Promise((r) => setTimeout(r, 20));
    }
    server?.closeAllConnections();
    await closed;
    // Connections cut above still run their log phase: wait for it, so their audit records are written.
    await this.drained(1000);
    await this.events?.close();
    await this.current.compiled.close();
    await this.audit.close();
    this.adminServer?.closeAllConnections();
    await new Promise<void>((r) => (this.adminServer ? this.adminServer.close(() => r()) : r()));
    await this.store.close();
    await this.telemetry?.close();
  }
}
