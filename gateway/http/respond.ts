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
const NOT_FORWARDED = [...REPRESENTATION_HEADERS, ...HOP_BY_HOP];

/**
 * Writes a buffered JSON response whose response phase has already run (gateway/pipeline/dispatch.ts).
 * When the body changed, the validators follow: Content-Length is recomputed and an upstream ETag becomes
 * a weak ETag of the bytes actually sent, so caches never pair the minimised body with the full one's
 * validator. A HEAD gets exactly the headers the GET would (Content-Length of the filtered body), no body.
 */
export function writeBufferedJson(ex: Exchange, response: ResponseBody, original?: Buffer): void {
  const text = JSON.stringify(response.body) ?? 'null';
  const length = Buffer.byteLength(text);
  // Unchanged only when the bytes are equal: a string comparison would call an upstream's invalid UTF-8
  // equal to its U+FFFD re-encoding. A different length already says changed, with no second copy made.
  if (original !== undefined && original.length === length && original.equals(Buffer.from(text))) send(ex, response, original, original.length, true);
  // The text itself is written: node encodes it into the socket write and frees that memory when the write
  // completes, where a Buffer of it would wait for a garbage collection (~30 KB per 50-entry Bundle).
  else send(ex, response, text, length, false);
}

/**
 * Writes the upstream's own bytes, when nothing in the gateway changes the body (the pipeline decides): the
 * same headers as a re-serialised body, without serialising it.
 */
export function writeVerbatimJson(ex: Exchange, response: ResponseBody, original: Buffer): void {
  send(ex, response, original, original.length, true);
}

/** `out` is the body as bytes, or as text sent UTF-8 encoded; `length` its length in bytes. */
function send(ex: Exchange, response: ResponseBody, out: Buffer | string, length: number, unchanged: boolean): void {
  const headers: OutgoingHttpHeaders = { ...response.headers };
  for (const h of NOT_FORWARDED) delete headers[h];
  if (headers.etag && !unchanged) {
    headers.etag = `W/"${createHash('sha256').update(out).digest('base64url').slice(0, 27)}"`;
  }
  headers['content-length'] = String(length);
  const res = ex.res;
  res.statusCode = response.status;
  for (const k in headers) {
    const v = headers[k];
    if (v !== undefined) res.setHeader(k, v);
  }
  ex.status = response.status;
  res.end(ex.method === 'HEAD' ? undefined : out);
}
