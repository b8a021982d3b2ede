import { BadRequest, Unauthorized, BEARER_CHALLENGE, invalidToken, type Exchange } from '../../gateway/sdk/index.ts';

/** RFC 6750 §2.1 / RFC 9449 §7.1: scheme and b64token, with optional padding. */
const TOKEN = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;
const FORM = /^application\/x-www-form-urlencoded\b/i;

/** RFC 6750 §3.1 invalid_request: a token sent in a place we refuse is a malformed request (400). */
const tokenElsewhere = (reason: string) =>
  new BadRequest({
    reason,
    detail: 'Access tokens are accepted only in the Authorization header',
    headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="invalid_request", error_description="Send the token in the Authorization header"` },
  });

/**
 * The access token and its scheme, from `Authorization: Bearer` or `Authorization: DPoP` (RFC 9449 §7.1)
 * only. A token in the query (it ends up in logs, caches and Referer headers) or in a form body is refused
 * even when the header is present too. `challenge` is the WWW-Authenticate value for a missing token.
 */
export function accessToken(ex: Exchange, challenge = BEARER_CHALLENGE): { token: string; scheme: 'bearer' | 'dpop' } {
  if (ex.query.has('access_token')) throw tokenElsewhere('token-in-query');
  if (ex.body?.length && FORM.test(String(ex.req.headers['content-type'] ?? '')) && new URLSearchParams(ex.body.toString('utf8')).has('access_token')) {
    throw tokenElsewhere('token-in-body');
  }
  const auth = ex.req.headers.authorization;
  // RFC 6750 §3.1: no error code when the client sent no credentials or used another scheme.
  if (auth === undefined || !/^(Bearer|DPoP)(\s|$)/i.test(auth)) throw new Unauthorized({ reason: 'missing-token', headers: { 'WWW-Authenticate': challenge } });
  const m = TOKEN.exec(auth);
  if (!m) throw invalidToken('malformed', 'The access token is malformed');
  return { token: m[2], scheme: m[1].toLowerCase() as 'bearer' | 'dpop' };
}

/** Three base64url segments (the last may be empty, as in an `alg: none` token): a JWS compact JWT. */
export const looksLikeJwt = (token: string) => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
