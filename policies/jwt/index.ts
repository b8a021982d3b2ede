import { BEARER_CHALLENGE, PolicyConfigError, GatewayError, principalFrom, definePolicy, type TrustedIssuer, type Policy } from '../../gateway/sdk/index.ts';
import { accessToken, looksLikeJwt } from './bearer.ts';
import { createSenderConstraint } from './sender-constraint.ts';
import { introspectToken, verifyJwt } from './verify.ts';

export interface JwtConfig {
  issuers: string[];
}

/** Why a trusted issuer cannot serve this route; undefined when it can. */
function unusable(t: TrustedIssuer): string | undefined {
  if (t.problems.length) return `identity issuer "${t.name}": ${t.problems.join('; ')}`;
  // A token without an audience check is accepted by every API of the same IdP (token confusion); an
  // introspection answer is a token's claims too, so introspection-only issuers need audiences as well.
  if (!t.config.audiences?.length) return `identity issuer "${t.name}" has no \`audiences\` (required for every trusted issuer)`;
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
    const senderConstraint = createSenderConstraint(trusted, {
      store: ctx.store,
      now: ctx.now,
      onStoreError: (err) => {
        ctx.metrics.storeFailures.inc({ policy: 'jwt', mode: 'fail-closed' });
        ctx.logger.warn('DPoP replay store unavailable; proof refused', { route: ctx.route.id, error: (err as Error)?.message });
      },
    });
    // Clients of an issuer that demands bound tokens learn from the first 401 that DPoP is expected.
    const missingChallenge = trusted.some((t) => t.config.senderConstraint === 'required') ? `${BEARER_CHALLENGE}, ${senderConstraint.challenge}` : BEARER_CHALLENGE;

    return {
      async onRequest(ex) {
        const { token, scheme } = accessToken(ex, missingChallenge);
        try {
          const { claims, issuer } = looksLikeJwt(token) ? await verifyJwt(token, trusted, ctx.now()) : await introspectToken(token, trusted, deps);
          await senderConstraint.check(ex, token, scheme, claims, issuer);
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
