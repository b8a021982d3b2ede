import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

/** express's compiled `trust proxy` setting (`app.get('trust proxy fn')`). */
export type TrustProxyFn = (addr: string | undefined, hop: number) => boolean;

/**
 * What the routed path reads of a request beyond node's own fields: express's `req.ip`, `req.ips`,
 * `req.protocol` and `req.host`, with express's meaning under `server.trustProxy`.
 */
export interface RequestFacts {
  /** The client address: the socket's, or the nearest untrusted hop of X-Forwarded-For. */
  ip: string | undefined;
  /** The trusted part of X-Forwarded-For, client first; empty when no hop is trusted. */
  ips: string[];
  /** http or https; X-Forwarded-Proto only from a trusted peer. */
  protocol: string;
  /** The Host header; X-Forwarded-Host only from a trusted peer. */
  host: string | undefined;
}

export type RoutedRequest = IncomingMessage & RequestFacts;

/**
 * Writes the facts onto the request as plain data properties, computed once, the way express's getters
 * compute them (express 5 lib/request.js, proxy-addr for the address chain). Routed requests do not get
 * express's prototypes: swapping the prototype of node's request and response objects cost more CPU
 * than the rest of a bare proxied request, and the code on the routed path reads only these four.
 */
export function addRequestFacts(req: IncomingMessage, trust: TrustProxyFn): RoutedRequest {
  const r = req as RoutedRequest;
  const peerTrusted = trust(req.socket.remoteAddress, 0);
  const addrs = proxyaddr.all(req, trust);
  r.ip = addrs[addrs.length - 1];
  // proxy-addr lists the socket address first; express's `ips` is the rest, farthest first.
  r.ips = addrs.slice(1).reverse();
  r.protocol = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  let host = req.headers.host;
  if (peerTrusted) {
    const proto = req.headers['x-forwarded-proto'];
    if (typeof proto === 'string' && proto) r.protocol = firstOf(proto);
    const fwdHost = req.headers['x-forwarded-host'];
    if (typeof fwdHost === 'string' && fwdHost) host = firstOf(fwdHost);
  }
  r.host = host || undefined;
  return r;
}

/** The first of a comma-separated list, trimmed (express keeps the nearest proxy's first value). */
const firstOf = (v: string) => {
  const i = v.indexOf(',');
  return (i === -1 ? v : v.slice(0, i)).trim();
};
