import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parsePath, type Token } from 'path-to-regexp';
import { PURPOSE_OF_USE_CODES } from '../lib/purpose-of-use.ts';
import { SchemaBundle } from './openapi-bundle.ts';
import { tidyComponents } from './openapi-tidy.ts';
import { neededScopes, permissionFor, type SmartContext } from '../../policies/scopes/smart.ts';
import { PROBLEM_BASE } from '../sdk/errors.ts';
import type { GatewayConfig, IssuerConfig, RouteConfig } from '../sdk/types.ts';

/**
 * The governed surface of a routes.yaml as an OpenAPI 3.1 document, for partners to read and generate
 * clients from: paths and their parameters, request schemas (validate), security (jwt issuers, scopes)
 * and the problem+json answers each chain can give. Built from the config alone — nothing is fetched,
 * and nothing secret is read: issuers contribute their public URL and audiences, never keys or secrets.
 */

type Schema = Record<string, unknown>;
type Policies = Map<string, Record<string, any>>;

/** Statuses a policy can answer with (its GatewayErrors), so an operation lists only those of its chain. */
const POLICY_STATUSES: Record<string, number[]> = {
  jwt: [400, 401, 503],
  scopes: [403],
  'patient-compartment': [400, 403, 404, 415, 502],
  consent: [403, 503],
  minimize: [400, 403],
  validate: [400, 415],
  'rate-limit': [429, 503],
  lane: [503],
  idempotency: [400, 409, 422, 503],
  audit: [503],
  'ip-allow': [403],
};
const TARGET_STATUSES: Record<string, number[]> = { system: [502, 504], compose: [400, 404, 409, 422, 502, 503, 504] };
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const SMART_CONTEXTS: SmartContext[] = ['patient', 'user', 'system'];
/** OpenAPI ignores header parameters with these names (they are described by other means). */
const RESERVED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

const PROBLEM_SCHEMA = {
  type: 'object',
  description: 'RFC 9457 problem details. Never carries request data, token text or identifiers.',
  required: ['type', 'title', 'status'],
  properties: {
    type: { type: 'string', format: 'uri', description: `Stable error kind, ${PROBLEM_BASE}<code>` },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    detail: { type: 'string' },
    instance: { type: 'string', description: 'urn:request:<X-Request-Id>' },
    errors: {
      type: 'array',
      description: 'Validation failures (validation-failed): where, never the offending value',
      items: { type: 'object', properties: { in: { enum: ['body', 'query', 'path', 'header'] }, pointer: { type: 'string' }, message: { type: 'string' } } },
    },
  },
};

const policiesOf = (route: RouteConfig): Policies =>
  new Map(route.policies.map((p) => Object.entries(p)[0] as [string, Record<string, any>]).map(([n, c]) => [n, c ?? {}]));

/** path-to-regexp tokens → OpenAPI paths; an optional group `{…}` gives one path with and one without it. */
function expand(tokens: Token[]): Array<{ path: string; params: string[] }> {
  let out = [{ path: '', params: [] as string[] }];
  for (const t of tokens) {
    if (t.type === 'text') out = out.map((o) => ({ ...o, path: o.path + t.value }));
    else if (t.type === 'param' || t.type === 'wildcard') out = out.map((o) => ({ path: `${o.path}{${t.name}}`, params: [...o.params, t.name] }));
    else out = out.flatMap((o) => [o, ...expand(t.tokens).map((g) => ({ path: o.path + g.path, params: [...o.params, ...g.params] }))]);
  }
  return out;
}

function schemeName(issuer: IssuerConfig): string {
  return issuer.name.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * Bearer tokens of an issuer. With a known token endpoint (`tokenEndpoint`), an OAuth 2.0 client
 * credentials flow listing every scope the routes ask for (so each security requirement names declared
 * scopes); else OIDC discovery when its issuer is a URL (where OIDC says discovery lives).
 */
function securityScheme(issuer: IssuerConfig, scopes: ReadonlySet<string>): Schema {
  const audiences = issuer.audiences?.length ? ` for audience ${issuer.audiences.join(', ')}` : '';
  const bound = issuer.senderConstraint === 'required' ? ' DPoP-bound (Authorization: DPoP plus a DPoP proof) or mTLS-bound tokens only.' : '';
  const description = `Access tokens issued by ${issuer.issuer}${audiences}, sent as Authorization: Bearer.${bound}`;
  if (issuer.tokenEndpoint) {
    return { type: 'oauth2', description, flows: { clientCredentials: { tokenUrl: issuer.tokenEndpoint, scopes: Object.fromEntries([...scopes].sort().map((s) => [s, scopeDescription(s)])) } } };
  }
  if (issuer.jwksUri && /^https?:\/\//.test(issuer.issuer)) {
    return { type: 'openIdConnect', openIdConnectUrl: `${issuer.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, description };
  }
  return { type: 'http', scheme: 'bearer', ...(issuer.introspection && !issuer.jwksUri && !issuer.keys ? {} : { bearerFormat: 'JWT' }), description };
}

/** Alternatives of scope sets a token may hold (scopes policy): allOf in each, one anyOf and one SMART scope per alternative. */
function scopeAlternatives(route: RouteConfig, scopes: Record<string, any> | undefined): string[][] {
  if (!scopes) return [[]];
  const allOf: string[] = scopes.allOf ?? [];
  const anyOf: string[] = scopes.anyOf ?? [];
  let alternatives = anyOf.length ? anyOf.map((s) => [...allOf, s]) : [[...allOf]];
  if (scopes.smart && route.fhir) {
    const need = { resourceType: route.fhir.resourceType, permission: permissionFor(route.fhir.interaction, /:[A-Za-z]/.test(route.match.path)), contexts: new Set<SmartContext>(scopes.smartContexts ?? SMART_CONTEXTS) };
    const smart = neededScopes(need).split(' ');
    alternatives = alternatives.flatMap((a) => smart.map((s) => [...a, s]));
  }
  return alternatives;
}

function scopeDescription(scope: string): string {
  const smart = /^(patient|user|system)\/([A-Za-z*]+)\.([a-z*]+)$/.exec(scope);
  return smart ? `SMART ${smart[1]}-level access to ${smart[2]} (${smart[3]})` : `Scope ${scope}`;
}

function parameter(name: string, where: 'path' | 'query' | 'header', schema: unknown, required: boolean, description?: string): Schema {
  return { name, in: where, required, ...(description ? { description } : {}), schema: schema ?? { type: 'string' } };
}

/** Each named property of a validate `query`/`headers`/`params` schema as one parameter. */
function parametersFrom(schema: Schema | undefined, where: 'path' | 'query' | 'header', bundle: SchemaBundle, base: URL, hint: string): Schema[] {
  if (!schema) return [];
  const inlined = bundle.inline(schema, base, hint) as Schema;
  const props = (inlined.properties ?? {}) as Record<string, unknown>;
  const required = new Set((inlined.required ?? []) as string[]);
  return Object.entries(props)
    .filter(([name]) => where !== 'header' || !RESERVED_HEADERS.has(name.toLowerCase()))
    .map(([name, s]) => parameter(name, where, s, where === 'path' || required.has(name), (s as Schema)?.description as string | undefined ?? `${where === 'query' ? 'Query' : where === 'path' ? 'Path' : 'Header'} parameter ${name}`));
}

/** Headers that policies of the chain read (purpose of use, idempotency keys). */
function policyHeaders(policies: Policies): Schema[] {
  const out: Schema[] = [];
  const minimize = policies.get('minimize');
  if (minimize) {
    const pou = minimize.purposeOfUse ?? {};
    out.push(parameter('X-Purpose-Of-Use', 'header', { enum: pou.allowed ?? [...PURPOSE_OF_USE_CODES] }, pou.required === true, 'HL7 PurposeOfUse code; chooses the data minimization profile'));
  }
  const idem = policies.get('idempotency');
  if (idem) out.push(parameter('Idempotency-Key', 'header', { type: 'string', minLength: 1, maxLength: 255 }, idem.required === true, 'Repeats with the same key replay the first answer'));
  return out;
}

function problemStatuses(route: RouteConfig, method: string, policies: Policies): number[] {
  const statuses = new Set<number>([400]);
  if (BODY_METHODS.has(method)) statuses.add(413);
  for (const name of policies.keys()) for (const s of POLICY_STATUSES[name] ?? []) statuses.add(s);
  const target = route.target as Record<string, unknown>;
  for (const s of TARGET_STATUSES['compose' in target ? 'compose' : 'system']) statuses.add(s);
  return [...statuses].sort((a, b) => a - b);
}

function successStatus(route: RouteConfig): string {
  const declared = (route.target as { status?: number }).status;
  return String(declared ?? (route.fhir?.interaction === 'create' ? 201 : 200));
}

function mediaType(route: RouteConfig): string {
  return route.fhir ? 'application/fhir+json' : 'application/json';
}

export interface OpenApiOptions {
  title?: string;
  /** Public base URL of the gateway (servers[0]); omitted: relative to where the document is served. */
  serverUrl?: string;
  /** info.version; default: the config version (hash of the file). */
  version?: string;
  contact?: { name?: string; email?: string; url?: string };
  license?: { name: string; url?: string; identifier?: string };
}

/** routes.yaml (already loaded and checked) → OpenAPI 3.1 document. */
export function buildOpenApi(config: GatewayConfig, file: string, opts: OpenApiOptions = {}): Schema {
  const base = pathToFileURL(`${dirname(resolve(file))}/`);
  const bundle = new SchemaBundle();
  bundle.components.Problem = PROBLEM_SCHEMA;
  const issuers = new Map(config.identity.issuers.map((i) => [i.name, i]));
  const usedIssuers = new Map<string, IssuerConfig>();
  const scopesOf = new Map<string, Set<string>>();
  const paths: Record<string, Record<string, unknown>> = {};
  const layers = new Set<string>();

  for (const route of config.routes) {
    const policies = policiesOf(route);
    const validate = policies.get('validate');
    const jwtIssuers = ((policies.get('jwt')?.issuers ?? []) as string[]).flatMap((n) => (issuers.has(n) ? [issuers.get(n)!] : []));
    const alternatives = scopeAlternatives(route, policies.get('scopes'));
    for (const i of jwtIssuers) {
      usedIssuers.set(schemeName(i), i);
      const set = scopesOf.get(schemeName(i)) ?? new Set<string>();
      scopesOf.set(schemeName(i), set);
      for (const a of alternatives) for (const sc of a) set.add(sc);
    }
    const security = jwtIssuers.flatMap((i) => alternatives.map((scopes) => ({ [schemeName(i)]: scopes })));
    const body = validate?.body ? bundle.component(validate.body, base, `${route.id}.body`) : undefined;
    const pathSchemas = parametersFrom(validate?.params, 'path', bundle, base, `${route.id}.params`);
    const otherParams = [
      ...parametersFrom(validate?.query, 'query', bundle, base, `${route.id}.query`),
      ...parametersFrom(validate?.headers, 'header', bundle, base, `${route.id}.headers`),
      ...policyHeaders(policies),
    ];
    layers.add(route.layer);

    for (const [vi, variant] of expand(parsePath(route.match.path).tokens).entries()) {
      const params = [...variant.params.map((p) => pathSchemas.find((s) => s.name === p) ?? parameter(p, 'path', undefined, true, `Path parameter ${p}`)), ...otherParams];
      const item = (paths[variant.path] ??= {});
      for (const method of route.match.methods) {
        const responses: Record<string, unknown> = { [successStatus(route)]: { description: 'Success', content: { [mediaType(route)]: { schema: {} } } } };
        for (const s of problemStatuses(route, method, policies)) responses[String(s)] = { $ref: `#/components/responses/Problem${s}` };
        const suffix = (route.match.methods.length > 1 ? `.${method.toLowerCase()}` : '') + (vi ? `.${vi + 1}` : '');
        item[method.toLowerCase()] = {
          operationId: route.id + suffix,
          tags: [route.layer],
          summary: route.description ?? summaryOf(route, method),
          description: `${route.description ?? summaryOf(route, method)}. Route \`${route.id}\` (${route.layer} layer); policies: ${[...policies.keys()].join(', ') || 'none'}.`,
          'x-hcgw-route': route.id,
          'x-hcgw-layer': route.layer,
          ...(route.fhir ? { 'x-fhir': route.fhir } : {}),
          ...(params.length ? { parameters: params } : {}),
          ...(body && BODY_METHODS.has(method)
            ? { requestBody: { required: true, content: { [mediaType(route)]: { schema: body }, ...(route.fhir ? { 'application/json': { schema: body } } : {}) } } }
            : {}),
          security,
          responses,
        };
      }
    }
  }

  const statuses = new Set(Object.values(paths).flatMap((item) => Object.values(item).flatMap((op) => Object.keys((op as { responses: object }).responses))));
  const problemResponses = Object.fromEntries(
    [...statuses].filter((s) => Number(s) >= 400).sort().map((s) => [`Problem${s}`, { description: `Problem (${s})`, ...(s === '429' || s === '503' ? { headers: THROTTLE_HEADERS } : {}), content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } }]),
  );
  const usedSchemes = Object.fromEntries([...usedIssuers].map(([name, i]) => [name, securityScheme(i, scopesOf.get(name)!)]));
  return tidyComponents({
    openapi: '3.1.0',
    info: {
      title: opts.title ?? 'hcgw governed API',
      version: opts.version ?? 'unversioned',
      description: 'Generated by `hcgw openapi` from routes.yaml: the routes, their inputs and the answers of their policy chains.',
      contact: opts.contact ?? { name: 'hcgw API operations', url: 'https://hcgw.dev/support', email: 'api-operations@hcgw.dev' },
      license: opts.license ?? { name: 'Proprietary', url: 'https://hcgw.dev/license' },
    },
    servers: [opts.serverUrl ? { url: opts.serverUrl } : { url: '/', description: 'The gateway serving this document' }],
    tags: [...layers].sort().map((name) => ({ name, description: `${name} APIs` })),
    paths,
    components: {
      schemas: bundle.components,
      responses: problemResponses,
      securitySchemes: usedSchemes,
    },
  });
}

/** Rate limiting and lane queueing answers carry these (IETF RateLimit draft, RFC 9110 Retry-After). */
const THROTTLE_HEADERS = {
  'Retry-After': { description: 'Seconds until a retry may succeed', schema: { type: 'integer', minimum: 0 } },
  RateLimit: { description: 'Remaining quota and reset time of the limit that applied (IETF RateLimit header fields)', schema: { type: 'string' } },
  'RateLimit-Policy': { description: 'The limits that apply to this client', schema: { type: 'string' } },
};

const FHIR_SUMMARY: Record<string, string> = { read: 'Read', vread: 'Read a version of', search: 'Search', create: 'Create', update: 'Update', patch: 'Patch', delete: 'Delete', history: 'History of' };

/** A summary for routes without `description`: from the FHIR interaction, else the method and path. */
function summaryOf(route: RouteConfig, method: string): string {
  if (route.fhir) return `${FHIR_SUMMARY[route.fhir.interaction]} ${route.fhir.resourceType}`;
  return `${method} ${route.match.path}`;
}
