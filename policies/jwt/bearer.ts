import { BadRequest, Unauthorized, BEARER_CHALLENGE, invalidToken, type Exchange } from '../../gateway/sdk/index.ts';

/** RFC 6750 §2.1 b64token, with optional padding. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const FORM = /^application\/x-www-form-urlencoded\b/i;

/** RFC 6750 §3.1 invalid_request: a token sent in a place we refuse is a malformed request (400). */
const tokenElsewhere = (reason: string) =>
  new BadRequest({
    reason,
    detail: 'Access tokens are accepted only in the Authorization header',
    headers: { 'WWW-Authenticate': `${BEARER_CHALLENGE}, error="invalid_request", error_description="Send the token in the Authorization header"` },
  });

/**
 * The access token, from `Authorization: Bearer` only. A token in the query (it ends up in logs, caches
 * and Referer headers) or in a form body is refused even when the header is present too.
 */
export function bearerToken(ex: Exchange): string {
  if (ex.query.has('access_token')) throw tokenElsewhere('token-in-query');
  if (ex.body?.length && FORM.test(String(ex.req.headers['content-type'] ?? '')) && new URLSearchParams(ex.body.toString('utf8')).has('access_token')) {
    throw tokenElsewhere('token-in-body');
  }
  const auth = ex.req.headers.authorization;
  // RFC 6750 §3.1: no error code when the client sent no credentials or used another scheme.
  if (auth === undefined || !/^Bearer(\s|$)/i.test(auth)) throw new Unauthorized({ reason: 'missing-token', headers: { 'WWW-Authenticate': BEARER_CHALLENGE } });
  const m = BEARER.exec(auth);
  if (!m) throw invalidToken('malformed', 'The access token is malformed');
  return m[1];
}

/** Three base64url segments (the last may be empty, as in an `alg: none` token): a JWS compact JWT. */
export const looksLikeJwt = (token: string) => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
