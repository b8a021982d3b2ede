import winston from 'winston';

/** Keys whose values never reach a log line, at any depth. */
const SECRET_KEYS = /^(authorization|proxy-authorization|cookie|set-cookie|token|access_token|id_token|refresh_token|client_secret|clientsecret|secret|password|body|json)$/i;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
const JWT_LIKE = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.replace(BEARER, '$1 [redacted]').replace(JWT_LIKE, '[redacted-jwt]');
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { name: value.name, code: (value as { code?: unknown }).code };
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '[redacted]' : scrub(v, depth + 1);
  return out;
}

/**
 * Redaction is a format, so it runs for every transport and no call site can forget it. Errors are reduced
 * to name and code: their messages and stacks may carry request data.
 */
const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message' || key === 'timestamp') continue;
    info[key] = SECRET_KEYS.test(key) ? '[redacted]' : scrub(info[key], 0);
  }
  if (typeof info.message === 'string') info.message = scrub(info.message, 0) as string;
  return info;
});

export interface LoggerOptions {
  level?: string;
  /** Extra transports (tests capture lines with a stream transport). */
  transports?: winston.transport[];
  silent?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): winston.Logger {
  return winston.createLogger({
    level: process.env.HCGW_LOG_LEVEL ?? opts.level ?? 'info',
    silent: opts.silent,
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.json()),
    transports: opts.transports ?? [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
  });
}

export type { Logger } from 'winston';
