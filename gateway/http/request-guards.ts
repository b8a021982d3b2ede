import type http from 'node:http';
import { BadRequest, GatewayError, UriTooLong } from '../sdk/errors.ts';
import { isPlainObject } from '../lib/json-path.ts';
import type { Exchange } from '../sdk/types.ts';

/**
 * Checks every request passes before anything answers it — routes and /healthz, /readyz alike — and the
 * method-override refusal that runs once the body is read. Each refusal is a problem with a stable type.
 */

/**
 * Longest request target answered normally (414 above). Longer URLs are more often attacks or mistakes
 * than searches, and many backends cut at 8 KiB; a request head over 16 KiB is refused by the parser (431).
 */
const MAX_URL_LENGTH = 8 * 1024;

/**
 * Headers that must have one meaning: node keeps only the first of duplicates, but a backend or an
 * intermediary may keep the last, so two Authorization or Host headers are refused rather than guessed.
 */
const SINGLETON_HEADERS = new Set(['authorization', 'host', 'content-type', 'content-length', 'x-request-id', 'traceparent', 'x-purpose-of-use', 'idempotency-key']);
function ambiguousHeaders(req: http.IncomingMessage): boolean {
  // One pass over the raw list (name, value, name, value …) without building headersDistinct's object.
  const raw = req.rawHeaders;
  let seen: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!SINGLETON_HEADERS.has(name)) continue;
    if (seen?.includes(name)) return true;
    (seen ??= []).push(name);
  }
  return false;
}

/** The edge checks of one request; `allowedHosts` lower-cased (undefined: every Host is answered). */
export function edgeRefusal(req: http.IncomingMessage, allowedHosts: ReadonlySet<string> | undefined): GatewayError | undefined {
  if ((req.url ?? '/').length > MAX_URL_LENGTH) return new UriTooLong({ reason: 'uri-too-long' });
  if (ambiguousHeaders(req)) return new BadRequest({ detail: 'Duplicate or conflicting request headers', reason: 'duplicate-header' });
  const host = req.headers.host;
  // node's own answer to a missing Host would be a bare 400 without a problem body (requireHostHeader is off).
  if (host === undefined && req.httpVersion === '1.1') return new BadRequest({ detail: 'The Host header is required', reason: 'missing-host' });
  if (allowedHosts && (host === undefined || !allowedHosts.has(host.trim().toLowerCase()))) {
    return new BadRequest({ detail: 'This gateway does not answer for the requested host', reason: 'host-not-allowed' });
  }
  return undefined;
}

/** A request that asks the upstream to execute another method than the one the gateway authorized. */
export class MethodOverride extends GatewayError {
  static readonly code = 'method-override';
  constructor() {
    super('method-override', 400, 'Method override refused', {
      detail: 'Method-override headers and _method parameters are not accepted: send the intended HTTP method',
      reason: 'method-override',
    });
  }
}

/** Headers by which frameworks (Rails, Express method-override, ASP.NET, Spring) let a client change the method. */
const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];
const OVERRIDE_PARAM = '_method';
const FORM_TYPE = /^application\/x-www-form-urlencoded\b/i;
const MULTIPART_TYPE = /^multipart\/form-data\b/i;
/** A multipart part named `_method` (quoted or not), however the client cased the name. */
const MULTIPART_OVERRIDE = /name\s*=\s*"?_method"?\s*[;\r\n]/i;

const namesOverride = (keys: Iterable<string>) => {
  for (const k of keys) if (k.toLowerCase() === OVERRIDE_PARAM) return true;
  return false;
};

/**
 * Method override, in any of its spellings, is refused on every route: the upstream must execute exactly
 * the method the gateway authorized (a create-only token must not delete through a server that honours
 * `X-HTTP-Method-Override: DELETE`). Headers, the query, form and multipart fields and top-level JSON keys
 * are checked. Runs after the body is read (and JSON parsed), before the request phase.
 */
export function refuseMethodOverride(ex: Exchange): void {
  const h = ex.req.headers;
  if (OVERRIDE_HEADERS.some((n) => h[n] !== undefined)) throw new MethodOverride();
  // A separate parse of the query string: reading ex.query would re-serialise what goes upstream.
  const qs = ex.upstreamQueryString();
  if (/_|%5f/i.test(qs) && namesOverride(new URLSearchParams(qs).keys())) throw new MethodOverride();
  if (!ex.body?.length) return;
  if (isPlainObject(ex.json) && namesOverride(Object.keys(ex.json))) throw new MethodOverride();
  const type = h['content-type'] ?? '';
  if (FORM_TYPE.test(type) && namesOverride(new URLSearchParams(ex.body.toString('latin1')).keys())) throw new MethodOverride();
  if (MULTIPART_TYPE.test(type) && MULTIPART_OVERRIDE.test(ex.body.toString('latin1'))) throw new MethodOverride();
}
