import type { FhirInteraction, GatewayConfig, RouteConfig } from '../config/types.ts';
import { neededScopes, permissionFor, type SmartContext } from '../../policies/scopes/smart.ts';
import type { FhirServerConfig } from './schema.ts';

/** FHIR R4 TypeRestfulInteraction codes for the route interactions. */
const INTERACTION: Record<FhirInteraction, string> = {
  read: 'read',
  vread: 'vread',
  update: 'update',
  patch: 'patch',
  delete: 'delete',
  history: 'history-instance',
  create: 'create',
  search: 'search-type',
};
const SMART_CONTEXTS: SmartContext[] = ['patient', 'user', 'system'];
export const SMART_OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

const policy = (route: RouteConfig, name: string) => route.policies.map((p) => p[name]).find((c) => c !== undefined) as Record<string, any> | undefined;

/** The routes of one FHIR group: under its base and declaring their resource type and interaction. */
export function groupRoutes(config: GatewayConfig, server: FhirServerConfig): RouteConfig[] {
  return config.routes.filter((r) => r.fhir && r.match.path.startsWith(`${server.base}/`));
}

/** FHIR search parameter type from the JSON Schema the route's `validate.query` gives the parameter. */
function searchParamType(schema: Record<string, any> | undefined): string {
  const s = Array.isArray(schema?.type) ? schema?.type[0] : schema?.type;
  if (s === 'integer' || s === 'number') return 'number';
  if (schema?.format === 'date' || schema?.format === 'date-time') return 'date';
  if (typeof schema?.pattern === 'string' && schema.pattern.includes('|')) return 'token';
  return 'string';
}

/**
 * Search parameters a search route lets through: the names its `validate.query` schema declares. A route
 * without a query schema exposes none that the gateway can vouch for, so none is listed.
 */
function searchParams(route: RouteConfig): Array<{ name: string; type: string }> {
  const props = (policy(route, 'validate')?.query?.properties ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(props).map(([name, schema]) => ({ name, type: searchParamType(schema) }));
}

/** SMART scopes the group's routes ask for (scopes: { smart: true }), for scopes_supported. */
export function groupScopes(routes: RouteConfig[]): string[] {
  const out = new Set<string>();
  for (const r of routes) {
    const scopes = policy(r, 'scopes');
    if (!scopes?.smart || !r.fhir) continue;
    const need = { resourceType: r.fhir.resourceType, permission: permissionFor(r.fhir.interaction, /:[A-Za-z]/.test(r.match.path)), contexts: new Set<SmartContext>(scopes.smartContexts ?? SMART_CONTEXTS) };
    for (const s of neededScopes(need).split(' ')) out.add(s);
    for (const s of [...(scopes.allOf ?? []), ...(scopes.anyOf ?? [])]) out.add(s);
  }
  return [...out].sort();
}

/**
 * The CapabilityStatement of one group, from its governed routes only: the resource types, the
 * interactions and the search parameters the gateway actually lets through — not the upstream's.
 */
export function capabilityStatement(config: GatewayConfig, server: FhirServerConfig, baseUrl: string, issuedAt: Date): Record<string, unknown> {
  const byType = new Map<string, { interactions: Set<string>; params: Map<string, string> }>();
  for (const r of groupRoutes(config, server)) {
    const entry = byType.get(r.fhir!.resourceType) ?? { interactions: new Set<string>(), params: new Map<string, string>() };
    byType.set(r.fhir!.resourceType, entry);
    entry.interactions.add(INTERACTION[r.fhir!.interaction]);
    if (r.fhir!.interaction === 'search') for (const p of searchParams(r)) entry.params.set(p.name, p.type);
  }
  const smart = server.smart;
  const security = smart
    ? {
        cors: false,
        service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }], text: 'OAuth2 using SMART-on-FHIR profile' }],
        extension: [
          {
            url: SMART_OAUTH_URIS,
            extension: [
              { url: 'token', valueUri: smart.tokenEndpoint ?? config.identity.issuers.find((i) => i.name === smart.issuer)?.tokenEndpoint },
              ...(smart.authorizationEndpoint ? [{ url: 'authorize', valueUri: smart.authorizationEndpoint }] : []),
              ...(smart.registrationEndpoint ? [{ url: 'register', valueUri: smart.registrationEndpoint }] : []),
              ...(smart.managementEndpoint ? [{ url: 'manage', valueUri: smart.managementEndpoint }] : []),
            ],
          },
        ],
      }
    : undefined;
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: issuedAt.toISOString(),
    kind: 'instance',
    software: { name: 'hcgw' },
    implementation: { description: server.name ?? `Governed FHIR API at ${server.base}`, url: baseUrl },
    fhirVersion: server.fhirVersion ?? '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        ...(security ? { security } : {}),
        resource: [...byType.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([type, e]) => ({
            type,
            interaction: [...e.interactions].sort().map((code) => ({ code })),
            ...(e.params.size ? { searchParam: [...e.params].sort().map(([name, t]) => ({ name, type: t })) } : {}),
          })),
      },
    ],
  };
}
