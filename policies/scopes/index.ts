import { PolicyConfigError, Forbidden, insufficientScope, requirePrincipal, definePolicy, type Exchange, type Policy, type Principal } from '../../gateway/sdk/index.ts';
import { refuseSearchBody } from '../../gateway/lib/fhir-search.ts';
import { applyConstraints, grantsFor, neededScopes, permissionFor, type SmartContext, type SmartNeed } from './smart.ts';

type ClaimValue = string | number | boolean;

export interface ScopesConfig {
  allOf: string[];
  anyOf: string[];
  claims: Record<string, ClaimValue[]>;
  smart: boolean;
  smartContexts: SmartContext[];
}

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = { type: 'string', pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' } as const;

/**
 * Search parameters that reach beyond the resource type a scope grants: includes, reverse chaining,
 * chained parameters (`subject.name`) and server-defined queries. Allowed only under a wildcard grant.
 */
const REACHES_OTHER_TYPES = /^(_include|_revinclude|_query|_filter|_contained|_containedType)(:|$)|^_has:|\./;

/** A claim condition compiled at load: a dotted name reads nested claims (Keycloak's realm_access.roles). */
function claimCondition(name: string, allowed: ClaimValue[]) {
  const path = name.split('.');
  const values = new Set<ClaimValue>(allowed);
  return (claims: Record<string, unknown>) => {
    let v: unknown = Object.hasOwn(claims, name) ? claims[name] : undefined;
    if (v === undefined && path.length > 1) v = path.reduce<unknown>((o, k) => (o && typeof o === 'object' && Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined), claims);
    const list = Array.isArray(v) ? v : [v];
    return list.some((x) => values.has(x as ClaimValue));
  };
}

/**
 * Authorisation on the principal set by `jwt`: plain OAuth scopes (allOf / anyOf), claim conditions, and
 * SMART on FHIR scopes derived from the route's `fhir` resource type and interaction. Every configured
 * condition must hold. v2 scopes with `?param=value` constraints grant only searches carrying those
 * values; the gateway adds them to the query when the client left them out.
 */
export const scopesPolicy = definePolicy({
  name: 'scopes',
  dependencies: { requires: ['principal'] },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      allOf: { type: 'array', items: SCOPE_TOKEN, uniqueItems: true, default: [], description: 'Scopes the token must all carry' },
      anyOf: { type: 'array', items: SCOPE_TOKEN, uniqueItems: true, default: [], description: 'Scopes of which the token must carry at least one' },
      claims: {
        type: 'object',
        default: {},
        additionalProperties: { type: 'array', minItems: 1, items: { type: ['string', 'number', 'boolean'] } },
        propertyNames: { pattern: '^[A-Za-z0-9_:/.-]+$' },
        description: 'Claim conditions: claim name (dotted for nested claims) → accepted values; a list-valued claim needs one of them',
      },
      smart: { type: 'boolean', default: false, description: "Require the SMART scope for the route's `fhir` resource type and interaction (v1 and v2 syntax)" },
      smartContexts: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: { enum: ['patient', 'user', 'system'] },
        default: ['patient', 'user', 'system'],
        description: 'SMART scope contexts that may grant access on this route (e.g. [patient] for a patient portal)',
      },
    },
  },
  create(config, ctx) {
    const claimChecks = Object.entries(config.claims).map(([name, allowed]) => claimCondition(name, allowed));
    if (!config.allOf.length && !config.anyOf.length && !claimChecks.length && !config.smart) {
      throw new PolicyConfigError('configure at least one of allOf, anyOf, claims or smart');
    }
    const fhir = ctx.route.fhir;
    if (config.smart && !fhir) throw new PolicyConfigError("smart: true needs the route's `fhir: {resourceType, interaction}`", 'smart');
    const need: SmartNeed | undefined =
      config.smart && fhir
        ? { resourceType: fhir.resourceType, permission: permissionFor(fhir.interaction, /:[A-Za-z]/.test(ctx.route.path)), contexts: new Set(config.smartContexts) }
        : undefined;
    const needed = need && neededScopes(need);
    const isSearch = need?.permission === 's';
    const anyOfText = config.anyOf.join(' ');

    const checkSmart = (ex: Exchange, p: Principal) => {
      if (isSearch) refuseSearchBody(ex);
      const { open, constrained } = grantsFor(p.scopes, need!);
      const wildcard = open?.resourceType === '*';
      if (isSearch && !wildcard && [...ex.query.keys()].some((k) => REACHES_OTHER_TYPES.test(k))) {
        throw new Forbidden({ reason: 'search-param-not-allowed', detail: 'This search reaches other resource types, which needs a wildcard (*) scope' });
      }
      if (open) {
        ex.decisions.push({ policy: 'scopes', outcome: 'allow', detail: { smartContext: open.context } });
        return;
      }
      if (!constrained.length) throw insufficientScope(needed!, 'smart-scope-missing');
      // Constraints are checked on the query, so only a search can be held to them.
      const query = isSearch ? applyConstraints(ex.query, constrained) : undefined;
      if (!query) throw insufficientScope(needed!, 'smart-constraint-unmet', 'The granted scope allows this only for searches constrained as the scope says');
      const modified = query !== ex.query;
      ex.query = query;
      ex.decisions.push({ policy: 'scopes', outcome: modified ? 'modify' : 'allow', reason: modified ? 'smart-constraint-added' : undefined, detail: { smartContext: constrained[0].context } });
    };

    return {
      onRequest(ex) {
        const p = requirePrincipal(ex);
        const has = new Set(p.scopes);
        const missing = config.allOf.filter((s) => !has.has(s));
        if (missing.length) throw insufficientScope(missing.join(' '), 'scope-missing');
        if (config.anyOf.length && !config.anyOf.some((s) => has.has(s))) {
          throw insufficientScope(anyOfText, 'scope-missing', 'The access token needs one of the listed scopes');
        }
        if (!claimChecks.every((check) => check(p.claims))) throw new Forbidden({ reason: 'claim-condition', detail: 'The access token does not meet a required claim condition' });
        if (need) checkSmart(ex, p);
      },
    };
  },
});

export default scopesPolicy;
