import type { ServerResponse } from 'node:http';
import accepts from 'accepts';
import type { GatewayConfig } from '../config/types.ts';
import type { ConfigIssue } from '../config/errors.ts';
import { NotAcceptable, type GatewayError } from '../sdk/errors.ts';
import { writeProblem } from '../http/problem.ts';
import { capabilityStatement, groupRoutes } from './capability.ts';
import { smartConfiguration } from './smart-configuration.ts';
import { writeOperationOutcome } from './operation-outcome.ts';
import type { FhirSection, FhirServerConfig } from './schema.ts';
import type { RoutedRequest } from '../http/request-facts.ts';

export { fhirSectionSchema, type FhirSection } from './schema.ts';

const FHIR_JSON = 'application/fhir+json';
/** `_format` values meaning JSON (FHIR R4 §3.1.0.1.10); any other value is a format the gateway cannot govern. */
const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);
const WELL_KNOWN = '/.well-known/smart-configuration';

const sectionOf = (config: GatewayConfig) => config.fhir as FhirSection | undefined;

/** Cross-references the schema cannot express: a known issuer, no overlapping bases, at least one route per group. */
export function checkFhirSection(config: GatewayConfig): ConfigIssue[] {
  const servers = sectionOf(config)?.servers;
  if (!Array.isArray(servers)) return [];
  const issues: ConfigIssue[] = [];
  servers.forEach((s, i) => {
    if (!s || typeof s.base !== 'string') return;
    const path = `fhir.servers[${i}]`;
    const issuer = s.smart && config.identity.issuers.find((iss) => iss.name === s.smart!.issuer);
    if (s.smart && !issuer) issues.push({ path: `${path}.smart.issuer`, message: `unknown issuer "${s.smart.issuer}" (not in identity.issuers)` });
    if (s.smart && issuer && !s.smart.tokenEndpoint && !issuer.tokenEndpoint) issues.push({ path: `${path}.smart.tokenEndpoint`, message: 'is required when the issuer has no tokenEndpoint' });
    if (servers.some((o, j) => j !== i && typeof o?.base === 'string' && (o.base === s.base || s.base.startsWith(`${o.base}/`)))) issues.push({ path: `${path}.base`, message: 'overlaps another FHIR base' });
    if (Array.isArray(config.routes) && !groupRoutes(config, s).length) issues.push({ path: `${path}.base`, message: 'no route with `fhir:` metadata lies under this base' });
  });
  return issues;
}

/**
 * The FHIR face of a compiled config: discovery documents, the format rule and the error dialect for
 * requests under a declared FHIR base. Built once per compiled config.
 */
export function createFhirSurface(config: GatewayConfig, compiledAt: Date) {
  const servers = sectionOf(config)?.servers ?? [];
  const groupOf = (path: string): FhirServerConfig | undefined => servers.find((s) => path === s.base || path.startsWith(`${s.base}/`));
  const baseUrl = (req: RoutedRequest, s: FhirServerConfig) => `${req.protocol}://${req.headers.host ?? ''}${s.base}`;
  const json = (res: ServerResponse, status: number, body: unknown, type: string) => {
    res.statusCode = status;
    res.setHeader('Content-Type', `${type}; charset=utf-8`);
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.end(JSON.stringify(body));
  };
  /** FHIR clients say so by Accept or `_format`; everyone else gets problem+json. */
  const wantsFhir = (req: RoutedRequest) => {
    const format = new URL(req.url ?? '/', 'http://x').searchParams.get('_format');
    if (format !== null) return JSON_FORMATS.has(format);
    return accepts(req).type(['application/problem+json', FHIR_JSON]) === FHIR_JSON && /fhir\+json|json\+fhir/i.test(req.headers.accept ?? '');
  };

  return {
    enabled: servers.length > 0,
    /**
     * Serves `<base>/metadata`, `<base>/.well-known/smart-configuration` and, with a single group,
     * `/.well-known/smart-configuration`. Returns false for any other request.
     */
    serve(req: RoutedRequest, res: ServerResponse, path: string): boolean {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const root = path === WELL_KNOWN && servers.length === 1 ? servers[0] : undefined;
      const group = root ?? groupOf(path);
      if (!group) return false;
      if (root || path === `${group.base}${WELL_KNOWN}`) {
        const doc = smartConfiguration(config, group);
        if (!doc) return false;
        json(res, 200, doc, 'application/json');
        return true;
      }
      if (path === `${group.base}/metadata`) {
        json(res, 200, capabilityStatement(config, group, baseUrl(req, group), compiledAt), FHIR_JSON);
        return true;
      }
      return false;
    },
    /** 406 for a FHIR request asking for a format the gateway cannot inspect (XML, RDF…): never a silent JSON answer. */
    checkFormat(req: RoutedRequest, path: string): void {
      if (!groupOf(path)) return;
      const format = new URL(req.url ?? '/', 'http://x').searchParams.getAll('_format');
      const refused = format.some((f) => !JSON_FORMATS.has(f)) || (req.headers.accept !== undefined && !accepts(req).type([FHIR_JSON, 'application/json', 'application/json+fhir']));
      if (refused) {
        throw new NotAcceptable({ reason: 'fhir-format', detail: 'Only FHIR JSON (application/fhir+json) is served here', headers: { Vary: 'Accept' } });
      }
    },
    /** The one error writer for requests: OperationOutcome for FHIR clients under a FHIR base, else problem+json. */
    writeError(req: RoutedRequest, res: ServerResponse, path: string, err: GatewayError, requestId: string): void {
      if (groupOf(path) && wantsFhir(req)) writeOperationOutcome(res, err, requestId);
      else writeProblem(res, err, requestId);
    },
  };
}

export type FhirSurface = ReturnType<typeof createFhirSurface>;
