import { Forbidden, definePolicy, requirePrincipal } from '../../gateway/sdk/index.ts';

/**
 * Worked plugin: admit only the listed OAuth clients (partner apps) on a route, and tag the upstream
 * request with the client's tier. It needs the caller's identity, so it declares `requires: [principal]`:
 * a routes.yaml that lists it above `jwt` is refused at load with the path and the fix.
 */
export const clientAllow = definePolicy({
  name: 'client-allow',
  dependencies: { requires: ['principal'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['clients'],
    properties: {
      clients: {
        type: 'object',
        minProperties: 1,
        propertyNames: { minLength: 1, maxLength: 128 },
        additionalProperties: { enum: ['gold', 'standard'] },
        description: 'Client ids (token `client_id`/`azp`) allowed on the route, each with its tier',
      },
      tierHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'X-Partner-Tier', description: 'Upstream request header that carries the tier' },
    },
  },
  // `config` is typed from the schema above: config.clients is Record<string, 'gold' | 'standard'>.
  create(config) {
    const tiers = new Map(Object.entries(config.clients));
    const header = config.tierHeader.toLowerCase();
    return {
      onRequest(ex) {
        const tier = tiers.get(requirePrincipal(ex).clientId ?? '');
        // Fail closed: a token without a client id is not on the list.
        if (!tier) throw new Forbidden({ reason: 'client-not-allowed', detail: 'This application may not call this route' });
        ex.upstreamHeaders[header] = tier;
        ex.decisions.push({ policy: 'client-allow', outcome: 'allow', reason: `tier-${tier}` });
      },
    };
  },
});

export default clientAllow;
