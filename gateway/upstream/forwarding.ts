import type { IncomingHttpHeaders } from 'node:http';
import type { Exchange } from '../sdk/types.ts';
import type { RequestFacts } from '../http/request-facts.ts';

/**
 * Who the request came from, as the gateway tells its upstreams. Client-sent forwarding headers are never
 * passed on: a backend that trusts X-Forwarded-For or X-Real-IP for allow-lists, rate limits or audit
 * would otherwise believe whatever the client wrote. The gateway sets X-Forwarded-For/-Proto/-Host and
 * `Forwarded` itself, from the socket address and the hops that `server.trustProxy` trusts (express's
 * reading of them), replacing — never appending to — what came in. Idempotent, so a retry sets the same.
 */

/** Headers by which a client (or an untrusted hop) claims an address, scheme or host. */
const CLIENT_FORWARDING = /^(x-forwarded-.*|forwarded|x-real-ip|x-client-ip|true-client-ip|cf-connecting-ip|x-cluster-client-ip|x-original-forwarded-for|x-original-host|x-original-url|x-rewrite-url|x-forwarded)$/;

/**
 * The request's client address chain, protocol and host under `server.trustProxy` (gateway/http/request-facts.ts
 * on routed requests, express's getters on the ones express answers); absent on the gateway's own exchanges.
 */
type TrustedView = Partial<Pick<RequestFacts, 'ips' | 'protocol' | 'host'>> & { socket: { remoteAddress?: string } };

/** The exchange's forwarding headers, computed once, kept on the exchange (no per-request WeakMap: see proxy.ts). */
const FORWARDING = Symbol('hcgw.forwarding');
type WithForwarding = Exchange & { [FORWARDING]?: Record<string, string> };

/** RFC 7239 node: IPv6 addresses are quoted and bracketed. */
const forwardedNode = (addr: string) => (addr.includes(':') ? `"[${addr}]"` : addr);
/** RFC 7239 values outside token characters are quoted. */
const forwardedValue = (v: string) => (/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(v) ? v : `"${v.replace(/["\\]/g, '\\$&')}"`);

/** The forwarding headers for this exchange's upstream calls (computed once per exchange). */
export function forwardingHeaders(ex: Exchange): Record<string, string> {
  let h = (ex as WithForwarding)[FORWARDING];
  if (h) return h;
  const req = ex.req as unknown as TrustedView;
  const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  // req.ips: the trusted part of the client's X-Forwarded-For, client first; empty when nothing is trusted.
  const chain = [...(req.ips ?? []).map((a) => a.replace(/^::ffff:/, '')), peer].filter(Boolean);
  const proto = req.protocol === 'https' ? 'https' : 'http';
  const host = typeof req.host === 'string' && req.host ? req.host : typeof ex.req.headers.host === 'string' ? ex.req.headers.host : '';
  h = {
    'x-forwarded-for': chain.join(', '),
    'x-forwarded-proto': proto,
    ...(host ? { 'x-forwarded-host': host } : {}),
    forwarded: chain.map((a, i) => `for=${forwardedNode(a)}${i === 0 ? `;proto=${proto}${host ? `;host=${forwardedValue(host)}` : ''}` : ''}`).join(', '),
  };
  (ex as WithForwarding)[FORWARDING] = h;
  return h;
}

/** Removes every client forwarding header and sets the gateway's own (in place). */
export function replaceForwarding(headers: IncomingHttpHeaders | Record<string, string>, ex: Exchange): void {
  // Read before the edit: the client's own headers may be the ones edited in place (proxy.ts).
  const own = forwardingHeaders(ex);
  for (const k of Object.keys(headers)) if (CLIENT_FORWARDING.test(k.toLowerCase())) delete headers[k];
  Object.assign(headers, own);
}
