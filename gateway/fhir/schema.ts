/**
 * `fhir:` — FHIR route groups. A group is declared once by its base path; the gateway then serves the
 * group's SMART discovery document and CapabilityStatement and speaks FHIR errors on its routes.
 */
const uri = (description: string) => ({ type: 'string', format: 'uri', pattern: '^https?://', description });
const strings = (description: string, dflt?: string[]) => ({ type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true, ...(dflt ? { default: dflt } : {}), description });

export const fhirSectionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['servers'],
  description: 'FHIR route groups: SMART discovery, CapabilityStatement, OperationOutcome errors, 406 for formats the gateway cannot govern',
  properties: {
    servers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['base'],
        properties: {
          base: { type: 'string', pattern: '^(/[A-Za-z0-9_.~-]+)+$', description: 'Path prefix of the group (the FHIR base), e.g. /portal/fhir; routes under it with `fhir:` metadata make up its CapabilityStatement' },
          name: { type: 'string', minLength: 1, description: 'Name shown in the CapabilityStatement' },
          fhirVersion: { type: 'string', pattern: '^[0-9]+\\.[0-9]+\\.[0-9]+$', default: '4.0.1', description: 'FHIR version of the upstream server' },
          smart: {
            type: 'object',
            additionalProperties: false,
            required: ['issuer'],
            description: 'Served as <base>/.well-known/smart-configuration (SMART App Launch 2.x) and in the CapabilityStatement security section',
            properties: {
              issuer: { type: 'string', minLength: 1, description: 'Name of the identity.issuers entry whose tokens the group accepts (its issuer URL and JWKS are published)' },
              tokenEndpoint: uri("Token endpoint of the authorization server (default: the issuer's tokenEndpoint)"),
              authorizationEndpoint: uri('Authorization endpoint (for launch flows)'),
              registrationEndpoint: uri('Dynamic client registration endpoint'),
              introspectionEndpoint: uri('RFC 7662 introspection endpoint'),
              revocationEndpoint: uri('RFC 7009 revocation endpoint'),
              managementEndpoint: uri('Where users manage their authorizations'),
              grantTypesSupported: strings('grant_types_supported', ['client_credentials']),
              tokenEndpointAuthMethodsSupported: strings('token_endpoint_auth_methods_supported', ['private_key_jwt', 'client_secret_basic']),
              tokenEndpointAuthSigningAlgValuesSupported: strings('token_endpoint_auth_signing_alg_values_supported', ['RS384', 'ES384']),
              scopesSupported: strings('scopes_supported; default: the SMART scopes the group\'s routes ask for'),
              capabilities: strings('SMART capabilities', ['client-confidential-asymmetric', 'permission-v2']),
              codeChallengeMethodsSupported: strings('code_challenge_methods_supported', ['S256']),
            },
          },
        },
      },
    },
  },
} as const;

export interface SmartConfig {
  issuer: string;
  tokenEndpoint?: string;
  authorizationEndpoint?: string;
  registrationEndpoint?: string;
  introspectionEndpoint?: string;
  revocationEndpoint?: string;
  managementEndpoint?: string;
  grantTypesSupported?: string[];
  tokenEndpointAuthMethodsSupported?: string[];
  tokenEndpointAuthSigningAlgValuesSupported?: string[];
  scopesSupported?: string[];
  capabilities?: string[];
  codeChallengeMethodsSupported?: string[];
}

export interface FhirServerConfig {
  base: string;
  name?: string;
  fhirVersion?: string;
  smart?: SmartConfig;
}

export interface FhirSection {
  servers: FhirServerConfig[];
}
