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

/* Named classes (jose's ERR_* style): callers branch on `code` or `instanceof`, never on messages. */
export class BadRequest extends GatewayError {
  static readonly code = 'bad-request';
  constructor(opts: GatewayErrorOptions = {}) {
    super('bad-request', 400, 'Bad request', opts);
    this.name = 'BadRequest';
  }
}

export class ValidationFailed extends GatewayError {
  static readonly code = 'validation-failed';
  constructor(opts: GatewayErrorOptions = {}) {
    super('validation-failed', 400, 'Request validation failed', opts);
    this.name = 'ValidationFailed';
  }
}

export class Unauthorized extends GatewayError {
  static readonly code = 'unauthorized';
  constructor(opts: GatewayErrorOptions = {}) {
    super('unauthorized', 401, 'Authentication required', opts);
    this.name = 'Unauthorized';
  }
}

export class InvalidToken extends GatewayError {
  static readonly code = 'invalid-token';
  constructor(opts: GatewayErrorOptions = {}) {
    super('invalid-token', 401, 'Invalid access token', opts);
    this.name = 'InvalidToken';
  }
}

export class Forbidden extends GatewayError {
  static readonly code = 'forbidden';
  constructor(opts: GatewayErrorOptions = {}) {
    super('forbidden', 403, 'Forbidden', opts);
    this.name = 'Forbidden';
  }
}

export class InsufficientScope extends GatewayError {
  static readonly code = 'insufficient-scope';
  constructor(opts: GatewayErrorOptions = {}) {
    super('insufficient-scope', 403, 'Insufficient scope', opts);
    this.name = 'InsufficientScope';
  }
}

export class RouteNotFound extends GatewayError {
  static readonly code = 'route-not-found';
  constructor(opts: GatewayErrorOptions = {}) {
    super('route-not-found', 404, 'No route matches the request', opts);
    this.name = 'RouteNotFound';
  }
}

/** A resource an upstream reported missing (e.g. the Encounter a process starts from); not an unmatched route. */
export class ResourceNotFound extends GatewayError {
  static readonly code = 'not-found';
  constructor(opts: GatewayErrorOptions = {}) {
    super('not-found', 404, 'Resource not found', opts);
    this.name = 'ResourceNotFound';
  }
}

export class MethodNotAllowed extends GatewayError {
  static readonly code = 'method-not-allowed';
  constructor(opts: GatewayErrorOptions = {}) {
    super('method-not-allowed', 405, 'Method not allowed', opts);
    this.name = 'MethodNotAllowed';
  }
}

/** The client accepts no representation the gateway can govern (e.g. FHIR XML). */
export class NotAcceptable extends GatewayError {
  static readonly code = 'not-acceptable';
  constructor(opts: GatewayErrorOptions = {}) {
    super('not-acceptable', 406, 'Not acceptable', opts);
    this.name = 'NotAcceptable';
  }
}

export class Conflict extends GatewayError {
  static readonly code = 'conflict';
  constructor(opts: GatewayErrorOptions = {}) {
    super('conflict', 409, 'Conflict', opts);
    this.name = 'Conflict';
  }
}

export class PayloadTooLarge extends GatewayError {
  static readonly code = 'payload-too-large';
  constructor(opts: GatewayErrorOptions = {}) {
    super('payload-too-large', 413, 'Request body too large', opts);
    this.name = 'PayloadTooLarge';
  }
}

export class UriTooLong extends GatewayError {
  static readonly code = 'uri-too-long';
  constructor(opts: GatewayErrorOptions = {}) {
    super('uri-too-long', 414, 'Request URI too long', opts);
    this.name = 'UriTooLong';
  }
}

export class UnsupportedMediaType extends GatewayError {
  static readonly code = 'unsupported-media-type';
  constructor(opts: GatewayErrorOptions = {}) {
    super('unsupported-media-type', 415, 'Unsupported media type', opts);
    this.name = 'UnsupportedMediaType';
  }
}

export class Unprocessable extends GatewayError {
  static readonly code = 'unprocessable';
  constructor(opts: GatewayErrorOptions = {}) {
    super('unprocessable', 422, 'Unprocessable request', opts);
    this.name = 'Unprocessable';
  }
}

export class TooManyRequests extends GatewayError {
  static readonly code = 'rate-limited';
  constructor(opts: GatewayErrorOptions = {}) {
    super('rate-limited', 429, 'Too many requests', opts);
    this.name = 'TooManyRequests';
  }
}

export class InternalError extends GatewayError {
  static readonly code = 'internal';
  constructor(opts: GatewayErrorOptions = {}) {
    super('internal', 500, 'Internal gateway error', opts);
    this.name = 'InternalError';
  }
}

export class BadGateway extends GatewayError {
  static readonly code = 'bad-gateway';
  constructor(opts: GatewayErrorOptions = {}) {
    super('bad-gateway', 502, 'Upstream failed', opts);
    this.name = 'BadGateway';
  }
}

export class ServiceUnavailable extends GatewayError {
  static readonly code = 'unavailable';
  constructor(opts: GatewayErrorOptions = {}) {
    super('unavailable', 503, 'Service unavailable', opts);
    this.name = 'ServiceUnavailable';
  }
}

export class GatewayTimeout extends GatewayError {
  static readonly code = 'upstream-timeout';
  constructor(opts: GatewayErrorOptions = {}) {
    super('upstream-timeout', 504, 'Upstream timed out', opts);
    this.name = 'GatewayTimeout';
  }
}

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

/** Thrown by a policy's create() for problems its schema cannot express (an unknown issuer name, …). */
export class PolicyConfigError extends Error {
  readonly code: string = 'ERR_POLICY_CONFIG';
  constructor(
    message: string,
    /** Path relative to the policy's config object, e.g. `issuers[1]`. */
    readonly path = '',
  ) {
    super(message);
    this.name = 'PolicyConfigError';
  }
}

/** Several problems found by one create() (a process target checks every step): all are reported. */
export class PolicyConfigErrors extends PolicyConfigError {
  override readonly code = 'ERR_POLICY_CONFIG_MULTIPLE';
  constructor(readonly issues: Array<{ path: string; message: string }>) {
    super(issues.map((i) => i.message).join('; '), issues[0]?.path ?? '');
    this.name = 'PolicyConfigErrors';
  }
}
