/**
 * One gateway in front of a hostile loopback FHIR upstream for the response-filter tests
 * (filters-attack, filters-property): the upstream answers each path with whatever body the test put in
 * `serve`, and `/Consent` with the pages in `consentPages` (linked by `next`).
 */
import { startIdp, type DevIdp } from '../gateway/sandbox/index.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

export const PSY = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' };

/** p2 permits everything but PSY-labelled data; p1 permits everything; p3 has no consent. */
export const consentDenyingPsy = (patient: string, id = `c-${patient}-psy`) => ({
  resourceType: 'Consent',
  id,
  status: 'active',
  patient: { reference: `Patient/${patient}` },
  provision: { type: 'permit', provision: [{ type: 'deny', securityLabel: [PSY] }] },
});
export const consentPermitting = (patient: string, id = `c-${patient}-permit`) => ({
  resourceType: 'Consent',
  id,
  status: 'active',
  patient: { reference: `Patient/${patient}` },
  provision: { type: 'permit' },
});
export const consentDenyingAll = (patient: string, id = `c-${patient}-deny`) => ({
  resourceType: 'Consent',
  id,
  status: 'active',
  patient: { reference: `Patient/${patient}` },
  provision: { type: 'deny' },
});

export interface FilterHarness {
  gw: TestGateway;
  upstream: TestUpstream;
  /** Path (without query) → response body of the hostile upstream. */
  serve: Map<string, unknown>;
  /** Patient id → Consent search pages (each a list of Consents); `next` links are added. */
  consentPages: Map<string, unknown[][]>;
  /** Overrides the `next` link of page n (1-based) of a patient's Consent search. */
  nextLink: (patient: string, page: number, base: string) => string | undefined;
  tokens: { p1: string; clinician: string };
  get(path: string, token: string): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

const searchset = (entry: unknown[]) => ({ resourceType: 'Bundle', type: 'searchset', entry });

function compartmentRoute(id: string, path: string, fhir: string) {
  return `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: /pc${path} }
    fhir: { ${fhir} }
    target: { upstream: hostile, path: ${path} }
    policies:
      - jwt: { issuers: [dev] }
      - patient-compartment: { foreignRead: not-found }`;
}

function consentRoute(id: string, prefix: string, path: string, consent: string) {
  return `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: /${prefix}${path} }
    target: { upstream: hostile, path: ${path} }
    policies:
      - jwt: { issuers: [dev] }
      - consent: ${consent}`;
}

export async function startFilterHarness(): Promise<FilterHarness> {
  const serve = new Map<string, unknown>();
  const consentPages = new Map<string, unknown[][]>();
  const h = { nextLink: (_p: string, _n: number, _base: string): string | undefined => undefined } as Pick<FilterHarness, 'nextLink'>;
  let base = '';
  const upstream = await startUpstream((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/fhir+json');
    if (url.pathname === '/Consent') {
      const patient = (url.searchParams.get('patient') ?? '').replace(/^Patient\//, '');
      const pages = consentPages.get(patient) ?? [[]];
      const n = Number(url.searchParams.get('_page') ?? '1');
      const page = pages[n - 1] ?? [];
      const next = n < pages.length ? (h.nextLink(patient, n, base) ?? `${base}/Consent?patient=${patient}&status=active&_page=${n + 1}`) : undefined;
      return res.end(JSON.stringify({ ...searchset(page.map((resource) => ({ resource }))), ...(next ? { link: [{ relation: 'next', url: next }] } : {}) }));
    }
    if (!serve.has(url.pathname)) {
      res.statusCode = 404;
      return res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
    }
    res.end(JSON.stringify(serve.get(url.pathname)));
  });
  base = upstream.url;
  const idp: DevIdp = await startIdp({ port: 0 });
  const consentSrc = '{ upstream: hostile }';
  let gw: TestGateway;
  try {
    gw = await startGateway(`version: 1
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  hostile: { url: "${upstream.url}", timeoutMs: 3000 }
minimization:
  profiles:
    clinical:
      resources:
        Bundle: [resourceType, type, total, link]
        Observation: [id, meta, status, code, subject, contained]
        Patient: [id, name]
        Practitioner: [id, name]
routes:${compartmentRoute('pc-patient-search', '/Patient', 'resourceType: Patient, interaction: search')}${compartmentRoute(
      'pc-patient-read',
      '/Patient/:id',
      'resourceType: Patient, interaction: read',
    )}${compartmentRoute('pc-obs-search', '/Observation', 'resourceType: Observation, interaction: search')}${compartmentRoute(
      'pc-obs-read',
      '/Observation/:id',
      'resourceType: Observation, interaction: read',
    )}${consentRoute('consent-obs-search', 'cs', '/Observation', `{ source: ${consentSrc}, cache: { ttlMs: 0 } }`)}${consentRoute(
      'consent-obs-read',
      'cs',
      '/Observation/:id',
      `{ source: ${consentSrc}, cache: { ttlMs: 0 } }`,
    )}${consentRoute('consent-obs-optin', 'optin', '/Observation', `{ source: ${consentSrc}, cache: { ttlMs: 0 }, withoutConsent: deny }`)}
  - id: minimize-any
    layer: system
    match: { methods: [GET], path: /min/Observation }
    target: { upstream: hostile, path: /Observation }
    policies:
      - jwt: { issuers: [dev] }
      - minimize: { select: [{ profile: clinical }] }
`);
  } catch (err) {
    await Promise.all([idp.close(), upstream.close()]);
    throw err;
  }
  const tokens = {
    p1: await idp.mint({ clientId: 'portal-app', patient: 'p1', fhirUser: 'Patient/p1', scopes: ['patient/*.rs'] }),
    clinician: await idp.mint({ clientId: 'clinician-app', fhirUser: 'Practitioner/pr-1', scopes: ['user/*.rs'] }),
  };
  const harness: FilterHarness = {
    gw,
    upstream,
    serve,
    consentPages,
    get nextLink() {
      return h.nextLink;
    },
    set nextLink(fn) {
      h.nextLink = fn;
    },
    tokens,
    async get(path, token) {
      const res = await fetch(gw.url + path, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      return { status: res.status, body, text };
    },
    async close() {
      await gw.close();
      await Promise.all([idp.close(), upstream.close()]);
    },
  };
  return harness;
}

export { searchset };
