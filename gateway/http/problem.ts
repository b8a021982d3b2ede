import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../sdk/errors.ts';

/**
 * The one writer of error bodies (RFC 9457). `instance` is the request id, never the URL: the URL may
 * hold identifiers (PHI). Nothing from the request is echoed.
 */
export function writeProblem(res: ServerResponse, err: GatewayError, requestId?: string): void {
  const body = {
    ...err.extensions,
    type: err.type,
    title: err.title,
    status: err.status,
    ...(err.detail ? { detail: err.detail } : {}),
    ...(requestId ? { instance: `urn:request:${requestId}` } : {}),
  };
  writeErrorBody(res, err, 'application/problem+json', body);
}

/** Status, the error's headers and a JSON body in one of the error dialects (problem+json, FHIR OperationOutcome). */
export function writeErrorBody(res: ServerResponse, err: GatewayError, contentType: string, document: unknown): void {
  if (res.headersSent) {
    // Too late for a clean error: cut the connection so the client cannot mistake a partial body for a whole one.
    res.destroy();
    return;
  }
  const body = JSON.stringify(document);
  for (const h of ['content-encoding', 'etag', 'last-modified', 'content-location', 'location']) res.removeHeader(h);
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.statusCode = err.status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
