import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { runResponsePhase } from '../pipeline/chain.ts';
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
 * Sends a JSON response after the route's response phase. When a policy changed the body, the
 * validators follow: Content-Length is recomputed and an upstream ETag becomes a weak ETag of the bytes
 * actually sent, so caches never pair the minimised body with the full one's validator.
 * `project` (experience routes) reshapes the body after the response phase, so that consent and
 * minimization always judge the source resources, never a projection of them.
 */
export async function sendBufferedJson(ex: Exchange, response: ResponseBody, original?: Buffer, project?: (body: unknown) => unknown): Promise<void> {
  if (ex.route.chain.response.length) await runResponsePhase(ex.route.chain, ex, response);
  if (project) response.body = project(response.body);
  const out = Buffer.from(JSON.stringify(response.body));
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
