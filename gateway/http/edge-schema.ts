/**
 * The `server` keys of the edge (how the gateway names itself to clients), spliced into the routes.yaml
 * schema (gateway/config/schema.ts). Documented in docs/routes-reference.md and docs/security.md.
 */
export const edgeServerProperties = {
  publicBaseUrl: {
    type: 'string',
    format: 'uri',
    pattern: '^https?://[^?#]*$',
    description: "The gateway's public base URL (scheme, host, optional path prefix): upstream URLs in responses are rewritten under it. Unset: derived from the request's Host, only when Host is in allowedHosts",
  },
  allowedHosts: {
    type: 'array',
    uniqueItems: true,
    items: { type: 'string', pattern: '^[A-Za-z0-9.\\[\\]:-]+$' },
    description: 'Host header values (host[:port]) the gateway answers to; any other Host → 400 (routes, /healthz, /readyz). Unset: every Host is answered, and upstream URLs are rewritten only under publicBaseUrl',
  },
} as const;
