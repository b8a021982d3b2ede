import { PolicyConfigError, GatewayError, principalFrom, definePolicy, type TrustedIssuer, type Policy } from '../../gateway/sdk/index.ts';
import { bearerToken, looksLikeJwt } from './bearer.ts';
import { introspectToken, verifyJwt } from './verify.ts';

export interface JwtConfig {
  issuers: string[];
}

/** Why a trusted issuer cannot serve this route; undefined when it can. */
function unusable(t: TrustedIssuer): string | undefined {
  if (t.problems.length) return `identity issuer "${t.name}": ${t.problems.join('; ')}`;
  // A JWT without an audience check is accepted by every API of the same IdP (token confusion).
  if (t.getKey && !t.config.audiences?.length) return `identity issuer "${t.name}" verifies JWTs but has no \`audiences\``;
  return undefined;
}

/**
 * Authentication: a Bearer token from one of the route's trusted issuers, verified locally when it is a
 * JWT (jose: JWKS or static keys, algorithm allow-list, iss/aud/exp/nbf/iat) or by RFC 7662
 * introspection when it is opaque. The verified principal goes on the exchange for later policies.
 * Always fails closed: an unverifiable token is a 401, an unreachable key or introspection endpoint a 503.
 */
export const jwtPolicy = definePolicy({
  name: 'jwt',
  dependencies: { provides: ['principal'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['issuers'],
    properties: {
      issuers: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: { type: 'string' },
        description: 'Names of `identity.issuers` entries this route trusts, in the order opaque tokens are introspected; tokens of any other issuer are refused',
      },
    },
  },
  create(config, ctx) {
    const trusted = config.issuers.map((name, i) => {
      const t = ctx.identity.get(name);
      if (!t) throw new PolicyConfigError(`unknown issuer "${name}" (not in identity.issuers)`, `issuers[${i}]`);
      const problem = unusable(t);
      if (problem) throw new PolicyConfigError(problem, `issuers[${i}]`);
      return t;
    });
    const onCacheError = (err: unknown) => {
      ctx.metrics.storeFailures.inc({ policy: 'jwt', mode: 'bypass-cache' });
      ctx.logger.warn('introspection cache unavailable; asking the endpoint directly', { route: ctx.route.id, error: (err as Error)?.message });
    };
    const deps = { store: ctx.store, now: ctx.now, onCacheError };

    return {
      async onRequest(ex) {
        const token = bearerToken(ex);
        try {
          const { claims, issuer } = looksLikeJwt(token) ? await verifyJwt(token, trusted, ctx.now()) : await introspectToken(token, trusted, deps);
          ex.principal = principalFrom(claims, issuer);
        } catch (err) {
          if (err instanceof GatewayError && err.status === 503) {
            ctx.logger.warn('token verification unavailable', { route: ctx.route.id, requestId: ex.id, reason: err.reason, error: (err.cause as Error)?.message });
          }
          throw err;
        }
      },
    };
  },
});

export default jwtPolicy;
