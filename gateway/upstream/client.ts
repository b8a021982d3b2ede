import http from 'node:http';
import https from 'node:https';
import { BadGateway, GatewayTimeout, type GatewayError } from '../sdk/errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import { ABORTED, callResilient } from './resilience.ts';
import { isJsonType } from '../http/respond.ts';
import type { Exchange, ResponseBody, UpstreamCall, UpstreamClient } from '../sdk/types.ts';
import { failureKind, type Upstream } from './upstreams.ts';
import type { Credentials } from './auth/index.ts';
import { forwardingHeaders } from './forwarding.ts';

export type { UpstreamCall } from '../sdk/types.ts';

const MAX_BODY = 16 * 1024 * 1024;

/**
 * The gateway's own HTTP client for calls it makes itself (process steps, experience sources, consent
 * look-ups): same keep-alive agent, timeout, retry budget and circuit breaker as the proxy, request id and
 * traceparent always sent, JSON in and out. Fails with a GatewayError (502/503/504), never hangs.
 */
export async function callUpstream(upstream: Upstream, call: UpstreamCall, ex: Exchange | undefined, metrics?: Metrics): Promise<ResponseBody> {
  const keyed = Object.keys(call.headers ?? {}).some((h) => h.toLowerCase() === 'idempotency-key');
  const retries = upstream.resilience.retriesFor(call.method.toUpperCase(), keyed);
  const run = (credentials?: Credentials) =>
    callResilient(upstream.resilience, { retries, retryOn5xx: true, signal: call.signal }, () => sendOnce(upstream, call, ex, metrics, credentials));
  if (!upstream.auth) return run();
  const credentials = await upstream.auth.credentials(ex);
  const res = await run(credentials);
  // One retry with fresh credentials when the upstream refused the gateway's token (revoked, rotated).
  return res.status === 401 && credentials.rejected() ? run(await upstream.auth.credentials(ex)) : res;
}

function sendOnce(upstream: Upstream, call: UpstreamCall, ex: Exchange | undefined, metrics?: Metrics, credentials?: Credentials): Promise<ResponseBody> {
  const qs = call.query?.size ? `?${call.query.toString()}` : '';
  const url = new URL(upstream.base + call.path + qs);
  const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
  const headers: Record<string, string> = { accept: 'application/json, application/fhir+json', 'accept-encoding': 'identity', ...call.headers, ...credentials?.headers };
  const span = ex?.trace?.child(`upstream ${upstream.name}`, { 'hcgw.upstream': upstream.name, 'http.request.method': call.method });
  if (ex) {
    headers['x-request-id'] = ex.id;
    headers.traceparent = span?.traceparent ?? ex.traceparent;
    Object.assign(headers, forwardingHeaders(ex));
  }
  if (payload) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(payload.length);
  }
  const timeoutMs = call.timeoutMs ?? upstream.timeoutMs;
  const started = performance.now();
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise<ResponseBody>((resolveCall, rejectCall) => {
    let settled = false;
    const resolve = (v: ResponseBody) => ((settled = true), span?.end({ 'http.response.status_code': v.status }), resolveCall(v));
    const reject = (e: GatewayError) => ((settled = true), span?.end(undefined, e), rejectCall(e));
    let timedOut = false;
    let tooLarge = false;
    const fail = (kind: string, err: GatewayError) => {
      metrics?.upstreamErrors.inc({ upstream: upstream.name, kind });
      reject(err);
    };
    // The request and its response may both report one breakage; the first report wins.
    const broken = (err: NodeJS.ErrnoException) => {
      if (settled) return;
      if (call.signal?.aborted) reject(new BadGateway({ reason: ABORTED }));
      else if (timedOut) fail('timeout', new GatewayTimeout({ reason: 'timeout' }));
      else if (tooLarge) fail('too-large', new BadGateway({ detail: 'Upstream response too large', reason: 'response-too-large' }));
      else fail(failureKind(err), new BadGateway({ reason: failureKind(err) }));
    };
    if (call.signal?.aborted) return reject(new BadGateway({ reason: ABORTED }));
    const req = lib.request(url, { method: call.method, headers, agent: upstream.agent, signal: call.signal }, (res) => {
      metrics?.upstreamDuration.observe({ upstream: upstream.name }, (performance.now() - started) / 1000);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          tooLarge = true;
          req.destroy(new Error('too large'));
        } else chunks.push(c);
      });
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let body: unknown = raw.length ? raw.toString('utf8') : null;
        if (raw.length && isJsonType(res.headers['content-type'])) {
          try {
            body = JSON.parse(raw.toString('utf8'));
          } catch {
            return fail('bad-json', new BadGateway({ detail: `Upstream ${upstream.name} sent malformed JSON`, reason: 'bad-json' }));
          }
        }
        resolve({ status: res.statusCode ?? 502, headers: res.headers, body });
      });
      res.on('error', broken);
    });
    req.setTimeout(timeoutMs, () => {
      timedOut = true;
      req.destroy(new Error('timeout'));
    });
    req.on('error', broken);
    req.end(payload);
  });
}

/**
 * Headers of a call the gateway makes for a request (process steps, experience sources): the policies'
 * upstream headers, and the client's Authorization only to an upstream configured with forwardAuthorization.
 */
export function stepHeaders(ex: Exchange, upstream: Upstream): Record<string, string> {
  const headers: Record<string, string> = { ...ex.upstreamHeaders };
  const auth = ex.req.headers.authorization;
  if (upstream.config.forwardAuthorization === true && auth) headers.authorization = auth;
  return headers;
}

/** The narrow client a policy gets for one upstream (PolicyContext.upstream). */
export function upstreamClient(upstream: Upstream, metrics?: Metrics): UpstreamClient {
  return Object.freeze({ name: upstream.name, call: (call: UpstreamCall, ex?: Exchange) => callUpstream(upstream, call, ex, metrics) });
}
