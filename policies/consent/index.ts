import { Counter } from 'prom-client';
import { PolicyConfigError, BadGateway, Forbidden, InternalError, ServiceUnavailable, definePolicy, type ConsentDecision, type Exchange, type Policy, type PolicyContext, type PolicyHandler, type Principal } from '../../gateway/sdk/index.ts';
import { filterResources, requestJsonFromUpstream, type FhirResource, type Visit } from '../../gateway/lib/fhir-bundle.ts';
import { patientIdFrom, patientsReferenced } from '../../gateway/lib/fhir-reference.ts';
import { PATIENT_DATA_TYPES } from '../../gateway/lib/fhir-types.ts';
import { purposeOf } from '../../gateway/lib/purpose-of-use.ts';
import { evaluateAll, factsOf, type AccessContext, type Consent, type Decision } from './evaluate.ts';
import { ConsentIncomplete, ConsentLookupFailed, fileConsentSource, upstreamConsentSource, type ConsentSource } from './source.ts';

export interface ConsentConfig {
  source: { upstream?: string; path: string; file?: string };
  cache: { ttlMs: number; maxEntries: number };
  failMode: 'closed' | 'open';
  onDenied: 'filter' | 'refuse';
  withoutConsent: Decision;
  roleClaim: string;
  actorRoles: Record<string, string[]>;
}

type Lookup = { consents: readonly Consent[] } | { failed: true };

/**
 * Whose consent decides about a resource: every patient it names (any field, see patientsReferenced).
 * `unattributable` when it is health data whose patient cannot be told (subject trimmed by `_elements`,
 * an unresolved `urn:uuid:`): such a resource cannot be evaluated and is withheld.
 */
function subjectsOf(r: FhirResource, at?: Visit): { ids: string[] } | { unattributable: true } {
  if (r.resourceType === 'Bundle' || r.resourceType === 'Parameters') return { ids: [] };
  const named = patientsReferenced(r, at?.resolve);
  if (named.unresolvable) return { unattributable: true };
  // A contained resource that names nobody is part of its parent's record: the parent's patients decide.
  if (named.ids.size === 0 && at?.parent) {
    const parent = subjectsOf(at.parent, { resolve: at.resolve });
    if (!('ids' in parent) || parent.ids.length) return parent;
  }
  if (named.ids.size === 0 && PATIENT_DATA_TYPES.has(r.resourceType)) return { unattributable: true };
  return { ids: [...named.ids] };
}

function lookupFailures(ctx: PolicyContext): Counter<'route' | 'mode'> {
  const name = 'hcgw_consent_lookup_failures_total';
  return (ctx.metrics.registry.getSingleMetric(name) as Counter<'route' | 'mode'> | undefined) ??
    new Counter({ name, help: 'Consent look-ups that failed, by route and the fail mode applied', labelNames: ['route', 'mode'] as const, registers: [ctx.metrics.registry] });
}

/**
 * Enforces the patient's FHIR Consent resources on responses: resources a consent denies to this caller
 * (purpose of use, actor, security label, category, code) are removed from Bundles, and a denied single
 * resource is refused. Patients are taken from each resource's own reference, so a Bundle spanning
 * patients is decided resource by resource. Decisions land on `exchange.consent` for the audit trail.
 *
 * Order: list `consent` after `minimize` so that, in the response phase (reverse order), consent sees the
 * full resources (meta.security, category) before minimize strips fields.
 */
export const consentPolicy = definePolicy({
  name: 'consent',
  // Consent reads security labels and subjects that minimization may remove: its response phase runs first.
  dependencies: { provides: ['consent-decision', 'consent-filtered-body'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['source'],
    properties: {
      source: {
        type: 'object',
        additionalProperties: false,
        description: 'Where Consent resources come from: a FHIR upstream (`GET <path>?patient=<id>`) or a JSON file (Bundle or array); exactly one of upstream and file',
        properties: {
          upstream: { type: 'string', description: 'Name of the FHIR upstream holding the Consent resources' },
          path: { type: 'string', pattern: '^/', default: '/Consent', description: 'Consent search path on that upstream' },
          file: { type: 'string', description: 'JSON file of Consent resources, relative to routes.yaml (tests, demos)' },
        },
      },
      cache: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'In-memory cache of each patient\'s consents; changes take effect within ttlMs',
        properties: {
          ttlMs: { type: 'integer', minimum: 0, maximum: 600000, default: 30000, description: 'How long a patient\'s consents are reused (0: every request asks the EHR)' },
          maxEntries: { type: 'integer', minimum: 1, maximum: 1000000, default: 1000, description: 'Patients kept; the least recently used are dropped' },
        },
      },
      failMode: { enum: ['closed', 'open'], default: 'closed', description: 'Consent cannot be determined (EHR down): closed refuses with 503, open releases and records decision "unknown"' },
      onDenied: { enum: ['filter', 'refuse'], default: 'filter', description: 'filter: remove denied resources from Bundles; refuse: 403 when any resource is denied' },
      withoutConsent: { enum: ['permit', 'deny'], default: 'permit', description: 'Decision for resources no active consent speaks to (permit: opt-out model, deny: opt-in model)' },
      roleClaim: { type: 'string', default: 'role', description: 'Token claim holding the caller role(s) mapped by actorRoles' },
      actorRoles: {
        type: 'object',
        default: {},
        additionalProperties: { type: 'array', items: { type: 'string', pattern: '^[A-Z]+$' }, minItems: 1 },
        description: 'Role claim value → HL7 v3 RoleCode codes matched against Consent provision.actor.role (a Patient fhirUser is always PAT)',
      },
    },
  },
  create(config, ctx) {
    const { upstream: upstreamName, file, path } = config.source;
    if ((upstreamName === undefined) === (file === undefined)) throw new PolicyConfigError('give exactly one of `upstream` and `file`', 'source');
    let source: ConsentSource;
    if (file !== undefined) source = fileConsentSource(file, ctx.configDir);
    else {
      const upstream = ctx.upstream(upstreamName!);
      if (!upstream) throw new PolicyConfigError(`unknown upstream "${upstreamName}"`, 'source.upstream');
      source = upstreamConsentSource(upstream, path, config.cache);
    }
    const failures = lookupFailures(ctx);
    const log = ctx.logger;

    const accessOf = (ex: Exchange, p: Principal | undefined): AccessContext => {
      const claim = p?.claims[config.roleClaim];
      const claimed = typeof claim === 'string' ? [claim] : Array.isArray(claim) ? claim.filter((c): c is string => typeof c === 'string') : [];
      const roles = claimed.flatMap((c) => (Object.hasOwn(config.actorRoles, c) ? config.actorRoles[c] : []));
      if (p?.fhirUser?.startsWith('Patient/')) roles.push('PAT');
      return { purpose: purposeOf(ex), actorRefs: p?.fhirUser ? [p.fhirUser] : [], actorRoles: roles, now: ctx.now() };
    };

    /** Consents of these patients into `known`; a failed look-up is recorded, and ends the request when closed. */
    const lookUp = async (ex: Exchange, ids: Iterable<string>, known: Map<string, Lookup>) => {
      await Promise.all(
        [...ids].filter((id) => !known.has(id)).map(async (id) => {
          try {
            known.set(id, { consents: await source.forPatient(id, ex) });
          } catch (err) {
            // More pages than the gateway reads is not an outage that failMode: open may paper over.
            if (err instanceof ConsentIncomplete) throw new BadGateway({ reason: 'consent-incomplete', detail: 'Patient consent cannot be read in full' });
            // Only a failed look-up (source unreachable, bad answer) takes the fail mode: a fault in the
            // gateway's own code must not be papered over as an outage and release data under failMode: open.
            if (!(err instanceof ConsentLookupFailed)) throw err;
            known.set(id, { failed: true });
            failures.inc({ route: ex.route.id, mode: config.failMode });
            log.warn('consent look-up failed', { route: ex.route.id, requestId: ex.id, failMode: config.failMode, error: (err as Error).message });
          }
        }),
      );
      if (config.failMode === 'closed' && [...known.values()].some((l) => 'failed' in l)) {
        throw new ServiceUnavailable({ detail: 'Patient consent cannot be determined right now', reason: 'consent-unavailable' });
      }
    };

    const handler: PolicyHandler = {
      needsResponseBody: true,
      async onRequest(ex) {
        const known = new Map<string, Lookup>();
        ex.locals.set(handler, known);
        requestJsonFromUpstream(ex);
        // Known before the upstream call: fail (closed) early and warm the cache for the response.
        const hint = patientIdFrom(ex.principal?.patient) ?? patientIdFrom(ex.query.get('patient') ?? ex.query.get('subject'));
        if (hint) await lookUp(ex, [hint], known);
      },
      async onResponse(ex, response) {
        if (ex.decisions.some((d) => d.policy === 'minimize' && d.outcome === 'modify')) {
          // minimize already stripped fields consent must see (labels, categories): never guess, refuse.
          log.error('consent must be listed after minimize on the route', { route: ex.route.id });
          throw new InternalError({ reason: 'consent-after-minimize' });
        }
        const known = (ex.locals.get(handler) as Map<string, Lookup> | undefined) ?? new Map<string, Lookup>();
        // First pass: every patient named anywhere in the body, so their consents are looked up at once.
        const patients = new Set<string>();
        let total = 0;
        filterResources(response.body, (r, at) => {
          const s = subjectsOf(r, at);
          if ('ids' in s) s.ids.forEach((id) => patients.add(id));
          if (r.resourceType !== 'Bundle') total++;
          return r;
        });
        await lookUp(ex, patients, known);
        const who = accessOf(ex, ex.principal);
        const applied = new Set<string>();
        let unknown = false;
        let withheld = 0;
        const { body, removed } = filterResources(response.body, (r, at) => {
          const s = subjectsOf(r, at);
          if (!('ids' in s)) {
            withheld++;
            return undefined;
          }
          let deny = false;
          for (const pid of s.ids) {
            const l = known.get(pid);
            if (!l || 'failed' in l) {
              unknown = true;
              continue;
            }
            for (const c of l.consents) if (c.status === 'active' && typeof c.id === 'string') applied.add(c.id);
            if (evaluateAll(l.consents, who, factsOf(r), config.withoutConsent) === 'deny') deny = true;
          }
          return deny ? undefined : r;
        });
        if (withheld) ex.decisions.push({ policy: 'consent', outcome: 'modify', reason: 'consent-unattributable', detail: { withheld } });
        const decision: ConsentDecision['decision'] = unknown ? 'unknown' : removed === 0 ? (applied.size ? 'permit' : 'none') : removed === total ? 'deny' : 'partial';
        ex.consent = { consentIds: [...applied], decision, removed };
        ex.decisions.push({ policy: 'consent', outcome: removed ? (body === undefined ? 'deny' : 'modify') : 'allow', reason: `consent-${decision}`, detail: { removed, consents: applied.size } });
        if (body === undefined && response.status >= 400) {
          // An error body that names a withheld patient is replaced, not turned into a 403.
          response.body = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing' }] };
          return;
        }
        if (removed && (body === undefined || config.onDenied === 'refuse')) {
          throw new Forbidden({ detail: 'The patient\'s consent does not permit this disclosure', reason: 'consent-denied' });
        }
        response.body = body;
      },
    };
    return handler;
  },
});

export default consentPolicy;
