import { PolicyConfigError, Forbidden, BadRequest, InternalError, definePolicy, type Exchange, type Policy, type PolicyHandler, type Principal } from '../../gateway/sdk/index.ts';
import { filterResources, isResource, requestJsonFromUpstream, type FhirResource } from '../../gateway/lib/fhir-bundle.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';
import { PURPOSE_OF_USE_CODES, purposeOf } from '../../gateway/lib/purpose-of-use.ts';
import { applyTree, compileSelectors, createPseudonymizer, type FieldTree, type Pseudonymizer } from './fields.ts';
import { compiledProfile, type CompiledProfile, type MinimizationConfig } from './profiles.ts';

interface When {
  purposeOfUse?: string[];
  clientIds?: string[];
  roles?: string[];
  scopes?: string[];
}

export interface MinimizeConfig {
  select: Array<{ when?: When; profile: string }>;
  kind?: string;
  parts?: Record<string, string>;
  purposeOfUse: { required: boolean; allowed?: string[] };
  roleClaim: string;
}

const KIND = { type: 'string', pattern: '^[a-z][a-z0-9-]*$' } as const;
const strings = (description: string) => ({ type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' }, description }) as const;
const purposes = (description: string) => ({ type: 'array', minItems: 1, uniqueItems: true, items: { enum: PURPOSE_OF_USE_CODES }, description }) as const;

/** Error bodies keep only what a client needs to react; upstream diagnostics may echo identifiers. */
const DEFAULT_OUTCOME = compileSelectors(['issue[].severity', 'issue[].code']);
// id, meta and link (paging) stay: the pipeline rewrites link and fullUrl URLs to the gateway's own.
const BUNDLE_ENVELOPE = ['resourceType', 'id', 'meta', 'type', 'total', 'link'];

const matches = (when: When | undefined, purpose: string | undefined, p: Principal | undefined, roles: string[]): boolean => {
  if (!when) return true;
  if (when.purposeOfUse && !(purpose && when.purposeOfUse.includes(purpose))) return false;
  if (when.clientIds && !(p?.clientId && when.clientIds.includes(p.clientId))) return false;
  if (when.roles && !roles.some((r) => when.roles!.includes(r))) return false;
  if (when.scopes && !p?.scopes.some((s) => when.scopes!.includes(s))) return false;
  return true;
};

function rolesOf(p: Principal | undefined, claim: string): string[] {
  const v = p?.claims[claim];
  return typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Applies one profile to a response body; counts resources (or parts) removed whole. */
class Minimizer {
  removed = 0;
  constructor(
    private readonly profile: CompiledProfile,
    private readonly pz: Pseudonymizer,
    private readonly status: number,
  ) {}

  resource(r: FhirResource): FhirResource | undefined {
    const tree = this.profile.resources.get(r.resourceType) ?? (r.resourceType === 'OperationOutcome' ? DEFAULT_OUTCOME : undefined);
    if (!tree) return undefined;
    const kept = applyTree(r, tree, this.pz);
    return { resourceType: r.resourceType, ...(isPlainObject(kept) ? kept : {}) };
  }

  /** Entries were minimized already (the walk goes innermost first): the envelope keeps its listed fields. */
  bundle(b: FhirResource): FhirResource {
    const { entry, ...envelope } = b;
    const envTree = this.profile.resources.get('Bundle');
    const out: Record<string, unknown> = envTree
      ? { ...(applyTree(envelope, envTree, this.pz) as Record<string, unknown> | undefined) }
      : Object.fromEntries(BUNDLE_ENVELOPE.filter((k) => Object.hasOwn(envelope, k)).map((k) => [k, envelope[k]]));
    out.resourceType = 'Bundle';
    if (Array.isArray(entry)) out.entry = entry.map((e) => (isPlainObject(e) ? { ...(typeof e.fullUrl === 'string' ? { fullUrl: e.fullUrl } : {}), resource: e.resource, ...(e.search ? { search: e.search } : {}) } : e));
    return out as FhirResource;
  }

  /**
   * A FHIR body at any depth (Bundles, Parameters, contained): each resource gets its type's fields,
   * anything unclassifiable or of a type the profile does not release is removed.
   */
  fhir(v: FhirResource): FhirResource | undefined {
    const out = filterResources(v, (r) => (r.resourceType === 'Bundle' ? this.bundle(r) : this.resource(r)));
    this.removed += out.removed;
    return out.body as FhirResource | undefined;
  }

  document(v: unknown, kind: string | undefined): unknown {
    const tree: FieldTree | undefined = kind ? this.profile.documents.get(kind) : undefined;
    if (!tree && this.status < 400) throw new Forbidden({ detail: 'The minimization profile releases no documents of this kind', reason: 'kind-not-released' });
    const one = (x: unknown) => (tree ? (applyTree(x, tree, this.pz) ?? {}) : {});
    // Billing/ERP lists: `{data: [...], total}`; the count stays, each record is minimized.
    if (isPlainObject(v) && Array.isArray(v.data)) return { data: v.data.map(one), ...(typeof v.total === 'number' ? { total: v.total } : {}) };
    return one(v);
  }

  /** A composition: listed parts are minimized as FHIR or as their document kind; others are removed. */
  parts(v: Record<string, unknown>, parts: Record<string, string>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, kind] of Object.entries(parts)) {
      if (!Object.hasOwn(v, name)) continue;
      const part = v[name];
      const kept = kind === 'fhir' ? (isResource(part) ? this.fhir(part) : undefined) : this.document(part, kind);
      if (kept === undefined) this.removed++;
      else out[name] = kept;
    }
    this.removed += Object.keys(v).filter((k) => !Object.hasOwn(parts, k)).length;
    return out;
  }
}

/**
 * Field-level data minimization: each request gets the first profile whose conditions (purpose of use,
 * client id, role claim, scopes) match; a response then carries only the fields that profile releases.
 * Deny by default: unlisted fields, resource types and document kinds are removed; no matching profile
 * is a 403 before the upstream is called.
 */
export const minimizePolicy = definePolicy({
  name: 'minimize',
  dependencies: { provides: ['purpose-of-use', 'minimized-body'], after: ['consent-filtered-body', 'compartment-filtered-body'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['select'],
    properties: {
      select: {
        type: 'array',
        minItems: 1,
        description: 'Profile choice, first match wins; a caller matching no entry is refused (403)',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['profile'],
          properties: {
            profile: { type: 'string', description: 'Name of a profile in the top-level `minimization.profiles`' },
            when: {
              type: 'object',
              additionalProperties: false,
              minProperties: 1,
              description: 'All given conditions must hold (each list: any of); no `when` matches every caller',
              properties: {
                purposeOfUse: purposes('Declared purpose of use is one of these'),
                clientIds: strings('Token client id is one of these'),
                roles: strings('Role claim (see roleClaim) has one of these values'),
                scopes: strings('Token has one of these scopes'),
              },
            },
          },
        },
      },
      kind: { ...KIND, description: 'Document kind of non-FHIR bodies on this route (billing claim, ERP item, …); lists `{data: [...]}` are minimized record by record' },
      parts: {
        type: 'object',
        minProperties: 1,
        additionalProperties: KIND,
        description: 'Composite bodies (experience sources): part name → `fhir` or a document kind; unlisted parts are removed',
      },
      purposeOfUse: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Purpose of use (header X-Purpose-Of-Use or token claim purpose_of_use)',
        properties: {
          required: { type: 'boolean', default: false, description: 'Refuse requests that declare none (400)' },
          allowed: purposes('Refuse other purposes (403)'),
        },
      },
      roleClaim: { type: 'string', default: 'role', description: 'Token claim holding the caller role(s) for `when.roles`' },
    },
  },
  create(config, ctx) {
    const section = ctx.section<MinimizationConfig>('minimization');
    if (!section) throw new PolicyConfigError('needs a top-level `minimization:` section with profiles');
    if (config.kind && config.parts) throw new PolicyConfigError('give either `kind` or `parts`, not both', 'parts');
    const rules = config.select.map((s, i) => {
      const profile = compiledProfile(section, s.profile);
      if (!profile) throw new PolicyConfigError(`unknown profile "${s.profile}" (not in minimization.profiles)`, `select[${i}].profile`);
      if (profile.usesHash && !section.pseudonymKey) throw new PolicyConfigError(`profile "${s.profile}" hashes fields but minimization.pseudonymKey is not set`, `select[${i}].profile`);
      return { when: s.when, profile };
    });
    const pz = createPseudonymizer(section.pseudonymKey);
    const { required, allowed } = config.purposeOfUse;

    const handler: PolicyHandler = {
      needsResponseBody: true,
      onRequest(ex: Exchange) {
        const purpose = purposeOf(ex);
        if (!purpose && required) throw new BadRequest({ detail: 'This route requires a purpose of use (X-Purpose-Of-Use)', reason: 'purpose-required' });
        if (purpose && allowed && !(allowed as readonly string[]).includes(purpose)) throw new Forbidden({ detail: 'The declared purpose of use is not allowed on this route', reason: 'purpose-not-allowed' });
        const roles = rolesOf(ex.principal, config.roleClaim);
        const rule = rules.find((r) => matches(r.when, purpose, ex.principal, roles));
        if (!rule) throw new Forbidden({ detail: 'No data minimization profile applies to this caller', reason: 'no-minimization-profile' });
        ex.locals.set(handler, rule.profile);
        requestJsonFromUpstream(ex);
      },
      onResponse(ex, response) {
        const profile = ex.locals.get(handler) as CompiledProfile | undefined;
        // The request phase always chose one; without it nothing may be released.
        if (!profile) throw new InternalError({ reason: 'minimize-no-profile' });
        const m = new Minimizer(profile, pz, response.status);
        const body = response.body;
        if (isResource(body)) {
          const kept = m.fhir(body);
          if (!kept) {
            if (response.status >= 400) response.body = { resourceType: body.resourceType };
            else throw new Forbidden({ detail: `The minimization profile releases no ${body.resourceType} resources`, reason: 'type-not-released' });
          } else response.body = kept;
        } else if (config.parts && isPlainObject(body)) response.body = m.parts(body, config.parts);
        else if (body !== null && body !== undefined) response.body = m.document(body, config.kind);
        ex.decisions.push({ policy: 'minimize', outcome: 'modify', reason: 'fields-minimized', detail: { profile: profile.name, removed: m.removed } });
      },
    };
    return handler;
  },
});

export default minimizePolicy;
