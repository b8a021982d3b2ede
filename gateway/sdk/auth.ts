import { InsufficientScope, InvalidToken, Unauthorized } from './errors.ts';
import type { Exchange, Principal } from './types.ts';

/** RFC 6750 challenge sent with every 401/403 of the identity policies. */
export const BEARER_CHALLENGE = 'Bearer realm="hcgw"';

/**
 * 401 invalid_token. `description` is one of our fixed sentences: nothing from the token reaches the
 * header or the problem body.
 */
export function invalidToken(reason: string, description: string): InstanceType<typeof InvalidToken> {
  return new InvalidToken({ reason, detail: description, headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="invalid_token", error_description="${description}"` } });
}

/** 403 insufficient_scope naming the scope(s) that would have been enough, in the header and the body. */
export function insufficientScope(scope: string, reason: string, detail = 'The access token does not carry the scope this request needs'): InstanceType<typeof InsufficientScope> {
  return new InsufficientScope({
    reason,
    detail,
    headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="insufficient_scope", scope="${scope}"` },
    extensions: { scope },
  });
}

/** The principal `jwt` put on the exchange; a policy placed without `jwt` before it refuses (fail closed). */
export function requirePrincipal(ex: Exchange): Principal {
  if (!ex.principal) throw new Unauthorized({ reason: 'no-principal', headers: { 'WWW-Authenticate': BEARER_CHALLENGE } });
  return ex.principal;
}
