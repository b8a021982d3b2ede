/** Public endpoints of an issuer's authorization server, published by the gateway (OpenAPI, SMART discovery). */
export const issuerDiscoveryProperties = {
  tokenEndpoint: {
    type: 'string',
    format: 'uri',
    pattern: '^https?://',
    description: "The issuer's token endpoint: published in the OpenAPI document (OAuth 2.0 client credentials flow with the routes' scopes) and the default of SMART discovery",
  },
} as const;

export interface IssuerDiscoveryConfig {
  tokenEndpoint?: string;
}
