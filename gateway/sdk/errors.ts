/**
 * One error family for the whole gateway. Callers branch on `code`, never on messages (as jose does).
 * Every error body is written by `writeProblem` as RFC 9457 problem+json; `detail` must never hold PHI,
 * token text or a stack trace — it is written for the caller, so keep it generic.
 */
export const PROBLEM_BASE = 'https://hcgw.dev/problems/';

export interface GatewayErrorOptions {
  detail?: string;
  /** Extra response headers (WWW-Authenticate, Retry-After, RateLimit-*). */
  headers?: Record<string, string>;
  /** Extra members of the problem document (e.g. `errors` for validation); must be safe to show. */
  extensions?: Record<string, unknown>;
  /** Machine-readable reason for metrics/audit (e.g. `expired`, `unknown-kid`). */
  reason?: string;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;
  readonly reason?: string;

  constructor(code: string, status: number, title: string, opts: GatewayErrorOptions = {}) {
    super(opts.detail ?? title, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = status;
    this.title = title;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
    this.extensions = opts.extensions ?? {};
    this.reason = opts.reason;
  }

  /** Stable problem `type` URI: derived from the code so that it cannot drift. */
  get type(): string {
    return PROBLEM_BASE + this.code;
  }
}

const make = (code: string, status: number, title: string) =>
  class extends GatewayError {
    constructor(opts: GatewayErrorOptions = {}) {
      super(code, status, title, opts);
    }
  };

export const BadRequest = make('bad-request', 400, 'Bad request');
export const ValidationFailed = make('validation-failed', 400, 'Request validation failed');
export const Unauthorized = make('unauthorized', 401, 'Authentication required');
export const InvalidToken = make('invalid-token', 401, 'Invalid access token');
export const Forbidden = make('forbidden', 403, 'Forbidden');
export const InsufficientScope = make('insufficient-scope', 403, 'Insufficient scope');
export const RouteNotFound = make('route-not-found', 404, 'No route matches the request');
/** A resource an upstream reported missing (e.g. the Encounter a process starts from); not an unmatched route. */
export const ResourceNotFound = make('not-found', 404, 'Resource not found');
export const MethodNotAllowed = make('method-not-allowed', 405, 'Method not allowed');
export const Conflict = make('conflict', 409, 'Conflict');
export const PayloadTooLarge = make('payload-too-large', 413, 'Request body too large');
export const UriTooLong = make('uri-too-long', 414, 'Request URI too long');
export const UnsupportedMediaType = make('unsupported-media-type', 415, 'Unsupported media type');
export const Unprocessable = make('unprocessable', 422, 'Unprocessable request');
export const TooManyRequests = make('rate-limited', 429, 'Too many requests');
export const InternalError = make('internal', 500, 'Internal gateway error');
export const BadGateway = make('bad-gateway', 502, 'Upstream failed');
export const ServiceUnavailable = make('unavailable', 503, 'Service unavailable');
export const GatewayTimeout = make('upstream-timeout', 504, 'Upstream timed out');

/** Turn anything thrown into a GatewayError without leaking its message. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { status?: number; statusCode?: number; type?: string } | undefined;
  // body-parser / raw-body style errors carry a status and a type we can map safely.
  const status = e?.status ?? e?.statusCode;
  if (status === 413 || e?.type === 'entity.too.large') return new PayloadTooLarge();
  if (e?.type === 'entity.parse.failed') return new BadRequest({ detail: 'Malformed JSON body' });
  if (status === 400) return new BadRequest();
  if (status === 415) return new UnsupportedMediaType();
  return new InternalError({ cause: err });
}
