import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Exchange, ResponseBody } from '../sdk/types.ts';

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;

export function isJsonType(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && JSON_TYPE.test(contentType);
}

/** Headers describing the upstream's bytes that no longer hold once the body is re-serialised. */
const REPRESENTATION_HEADERS = ['content-length', 'content-encoding', 'transfer-encoding', 'content-md5', 'digest', 'repr-digest', 'content-digest'];
/** The upstream's connection handling is not the client's: node decides it for the client connection. */
const HOP_BY_HOP = ['connection', 'keep-alive'];

/**
 * Writes a buffered JSON response whose response phase has already run (gateway/pipeline/dispatch.ts).
 * When the body changed, the validators follow: Content-Length is recomputed and an upstream ETag becomes
 * a weak ETag of the bytes actually sent, so caches never pair the minimised body with the full one's
 * validator. A HEAD gets exactly the headers the GET would (Content-Length of the filtered body), no body.
 */
export function writeBufferedJson(ex: Exchange, response: ResponseBody, original?: Buffer): void {
  const out = Buffer.from(JSON.stringify(response.body) ?? 'null');
  const headers: OutgoingHttpHeaders = { ...response.headers };
  for (const h of [...REPRESENTATION_HEADERS, ...HOP_BY_HOP]) delete headers[h];
  if (headers.etag && !(original && original.equals(out))) {
    headers.etag = `W/"${createHash('sha256').update(out).digest('base64url').slice(0, 27)}"`;
  }
  headers['content-length'] = String(out.length);
  const res = ex.res;
  res.statusCode = response.status;
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) res.setHeader(k, v);
  ex.status = response.status;
  res.end(ex.method === 'HEAD' ? undefined : out);
}
