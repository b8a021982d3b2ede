import type { GatewayConfig } from '../config/types.ts';
import { groupRoutes, groupScopes } from './capability.ts';
import type { FhirServerConfig } from './schema.ts';

/**
 * SMART App Launch 2.x `/.well-known/smart-configuration` of one group, from config alone: the issuer's
 * public URL and JWKS, the authorization server's endpoints, and what the group's routes need.
 */
export function smartConfiguration(config: GatewayConfig, server: FhirServerConfig): Record<string, unknown> | undefined {
  const smart = server.smart;
  if (!smart) return undefined;
  const issuer = config.identity.issuers.find((i) => i.name === smart.issuer);
  const dpopAlgs = issuer?.dpop?.algorithms;
  const optional = {
    jwks_uri: issuer?.jwksUri,
    authorization_endpoint: smart.authorizationEndpoint,
    registration_endpoint: smart.registrationEndpoint,
    introspection_endpoint: smart.introspectionEndpoint,
    revocation_endpoint: smart.revocationEndpoint,
    management_endpoint: smart.managementEndpoint,
    dpop_signing_alg_values_supported: dpopAlgs,
  };
  return {
    issuer: issuer?.issuer,
    token_endpoint: smart.tokenEndpoint ?? issuer?.tokenEndpoint,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
    grant_types_supported: smart.grantTypesSupported,
    token_endpoint_auth_methods_supported: smart.tokenEndpointAuthMethodsSupported,
    token_endpoint_auth_signing_alg_values_supported: smart.tokenEndpointAuthSigningAlgValuesSupported,
    scopes_supported: smart.scopesSupported ?? groupScopes(groupRoutes(config, server)),
    response_types_supported: smart.authorizationEndpoint ? ['code'] : [],
    capabilities: smart.capabilities,
    code_challenge_methods_supported: smart.codeChallengeMethodsSupported,
  };
}
