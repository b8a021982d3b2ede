/** Demo EHR: a minimal FHIR R4 JSON server (read, search, create, update) over the synthetic seed. */
import { fhirSeed, SEED_TIME, type Resource } from './data.ts';
import { HttpError, reply, startUpstream, type Ctx, type ListenOpts, type UpstreamServer } from './http.ts';

export const FHIR_JSON = 'application/fhir+json';
const TYPES = new Set(['Patient', 'Encounter', 'Observation', 'Consent', 'Organization', 'Practitioner']);
const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

const outcome = (e: HttpError) => ({
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: e.status === 404 ? 'not-found' : e.status === 400 ? 'invalid' : e.status === 405 ? 'not-supported' : e.status === 409 ? 'conflict' : 'exception', diagnostics: e.message }],
});

type Coding = { system?: string; code?: string };
type Concept = { coding?: Coding[] };

/** FHIR token match: `code`, `system|code` or `system|`. */
function tokenMatches(concepts: Concept[], token: string): boolean {
  const [system, code] = token.includes('|') ? token.split('|', 2) : [undefined, token];
  return concepts.some((c) => c?.coding?.some((cd) => (!system || cd.system === system) && (!code || cd.code === code)));
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
/** Whose record a resource belongs to: `subject` (Observation, Encounter) or `patient` (Consent). */
const patientOf = (r: Resource): string | undefined => (r.resourceType === 'Patient' ? `Patient/${r.id}` : r.subject?.reference ?? r.patient?.reference);
const asRef = (v: string, type: string) => (v.includes('/') ? v : `${type}/${v}`);

/** Search parameters; comma-separated values are ORs (FHIR semantics). Unknown parameters are ignored. */
const SEARCH: Record<string, (r: Resource, v: string) => boolean> = {
  _id: (r, v) => r.id === v,
  patient: (r, v) => patientOf(r) === asRef(v, 'Patient'),
  subject: (r, v) => patientOf(r) === asRef(v, 'Patient'),
  encounter: (r, v) => r.encounter?.reference === asRef(v, 'Encounter'),
  category: (r, v) => tokenMatches(asArray(r.category), v),
  code: (r, v) => tokenMatches(asArray(r.code), v),
  type: (r, v) => tokenMatches(asArray(r.type), v),
  status: (r, v) => r.status === v,
  identifier: (r, v) => { const [s, val] = v.includes('|') ? v.split('|', 2) : [undefined, v]; return asArray<Coding & { value?: string }>(r.identifier).some((i) => (!s || i.system === s) && i.value === val); },
  family: (r, v) => asArray<{ family?: string }>(r.name).some((n) => n.family?.toLowerCase().startsWith(v.toLowerCase())),
};

export async function startEhr(opts: ListenOpts = {}): Promise<UpstreamServer> {
  let store = new Map<string, Map<string, Resource>>();
  let nextId = 1;
  const reset = () => {
    store = new Map([...TYPES].map((t) => [t, new Map()]));
    for (const r of fhirSeed()) {
      r.meta = { versionId: '1', lastUpdated: SEED_TIME, ...r.meta };
      store.get(r.resourceType)!.set(r.id, r);
    }
    nextId = 1;
  };
  reset();

  const table = (type: string) => {
    const t = store.get(type);
    if (!t) throw new HttpError(404, `Resource type '${type}' is not supported`);
    return t;
  };
  const withVersion = (status: number, r: Resource, ctx: Ctx, location = false) => reply(status, r, {
    etag: `W/"${r.meta.versionId}"`, 'last-modified': new Date(r.meta.lastUpdated).toUTCString(),
    ...(location ? { location: `${ctx.baseUrl}/${r.resourceType}/${r.id}/_history/${r.meta.versionId}` } : {}),
  });
  const bodyResource = (ctx: Ctx): Resource => {
    const r = ctx.json<Resource>();
    if (r.resourceType !== ctx.params.type) throw new HttpError(400, `resourceType must be '${ctx.params.type}'`);
    return r;
  };
  const stamp = (r: Resource, version: number) => {
    r.meta = { ...r.meta, versionId: String(version), lastUpdated: new Date().toISOString() };
    return r;
  };

  const search = (ctx: Ctx) => {
    const all = [...table(ctx.params.type).values()];
    const filters = [...ctx.query].filter(([k]) => Object.hasOwn(SEARCH, k));
    const matches = all.filter((r) => filters.every(([k, v]) => v.split(',').some((alt) => SEARCH[k](r, alt))));
    const countParam = ctx.query.get('_count');
    const count = countParam === null ? matches.length : Number(countParam);
    if (!Number.isInteger(count) || count < 0) throw new HttpError(400, '_count must be a non-negative integer');
    const offsetParam = ctx.query.get('_offset');
    const offset = offsetParam === null ? 0 : Number(offsetParam);
    if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, '_offset must be a non-negative integer');
    // Paging as FHIR servers do it: absolute self/next/previous links under the server's own base URL.
    const pageUrl = (at: number) => {
      const q = new URLSearchParams(ctx.query);
      if (at === 0) q.delete('_offset');
      else q.set('_offset', String(at));
      const qs = q.toString();
      return `${ctx.baseUrl}/${ctx.params.type}${qs ? `?${qs}` : ''}`;
    };
    const link = [{ relation: 'self', url: pageUrl(offset) }];
    if (count > 0 && offset + count < matches.length) link.push({ relation: 'next', url: pageUrl(offset + count) });
    if (count > 0 && offset > 0) link.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
    return reply(200, {
      resourceType: 'Bundle', id: crypto.randomUUID(), meta: { lastUpdated: new Date().toISOString() },
      type: 'searchset', total: matches.length, link,
      entry: matches.slice(offset, offset + count).map((resource) => ({ fullUrl: `${ctx.baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } })),
    });
  };

  return startUpstream({
    name: 'ehr', basePath: '/fhir', contentType: FHIR_JSON, errorBody: outcome, reset,
    routes: [
      ['GET', '/metadata', () => reply(200, {
        resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1', format: ['json'], date: SEED_TIME,
        software: { name: 'hcgw sandbox EHR (synthetic data)' },
        rest: [{ mode: 'server', resource: [...TYPES].map((type) => ({ type, interaction: ['read', 'search-type', 'create', 'update'].map((code) => ({ code })), searchParam: Object.keys(SEARCH).map((name) => ({ name })) })) }],
      })],
      ['GET', '/:type', search],
      ['GET', '/:type/:id', (ctx) => {
        const r = table(ctx.params.type).get(ctx.params.id);
        if (!r) throw new HttpError(404, `${ctx.params.type}/${ctx.params.id} not found`);
        return withVersion(200, r, ctx);
      }],
      ['POST', '/:type', (ctx) => {
        const t = table(ctx.params.type);
        const r = bodyResource(ctx);
        // Server assigns ids on create; a client-supplied one is ignored, as in FHIR.
        let id: string;
        do id = `${ctx.params.type.toLowerCase()}-${nextId++}`; while (t.has(id));
        r.id = id;
        t.set(id, stamp(r, 1));
        return withVersion(201, r, ctx, true);
      }],
      ['PUT', '/:type/:id', (ctx) => {
        const t = table(ctx.params.type);
        const r = bodyResource(ctx);
        const { id } = ctx.params;
        if (!ID_RE.test(id)) throw new HttpError(400, 'Invalid resource id');
        if (r.id !== undefined && r.id !== id) throw new HttpError(400, `Resource id '${r.id}' does not match URL id '${id}'`);
        const prev = t.get(id);
        r.id = id;
        t.set(id, stamp(r, prev ? Number(prev.meta.versionId) + 1 : 1));
        return withVersion(prev ? 200 : 201, r, ctx, !prev);
      }],
    ],
  }, opts);
}
