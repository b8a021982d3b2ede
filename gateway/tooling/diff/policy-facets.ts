import { parseDuration } from '../../lib/duration.ts';
import type { MinimizeConfig } from '../../../policies/minimize/index.ts';
import type { MinimizationConfig } from '../../../policies/minimize/profiles.ts';
import { ceiling, grants, opaque, requires, scale, type Facet } from './facets.ts';
import { allowedPurposes, releasedFields } from './fields.ts';
import { rateLimitsOf } from './rates.ts';

// Each classifier reads its own policy's config, already validated against that policy's schema.
type Config = Record<string, any>;
type Facets = Record<string, Facet>;
/** What a classifier understood; keys of the policy config it did not consume become opaque facets. */
interface Classified {
  facets: Facets;
  consumed: readonly string[];
}
type Classifier = (c: Config, ctx: { minimization: MinimizationConfig | undefined }) => Classified;

const CLOSED_OPEN = ['closed', 'open'];
const TRUE_FALSE = ['true', 'false'];

/**
 * The governed meaning of each built-in policy's settings, direction included. A policy not listed here
 * (plugins, audit, validate) is compared key by key as opaque: any change to it counts as widening.
 */
const CLASSIFIERS: Record<string, Classifier> = {
  jwt: (c) => ({ facets: { issuers: grants(c.issuers) }, consumed: ['issuers'] }),
  scopes: (c) => ({
    facets: {
      'required scopes (allOf)': requires(c.allOf),
      // No anyOf at all lets any token through: that is a grant of anything.
      'alternative scopes (anyOf)': grants(c.anyOf.length ? c.anyOf : ['*']),
      'claim conditions': { kind: 'conditions', values: Object.fromEntries(Object.entries(c.claims as Record<string, unknown[]>).map(([k, v]) => [k, v.map(String)])) },
      'SMART scope required': scale(c.smart, TRUE_FALSE),
      'SMART contexts': grants(c.smartContexts),
    },
    consumed: ['allOf', 'anyOf', 'claims', 'smart', 'smartContexts'],
  }),
  'rate-limit': (c) => ({
    facets: {
      limits: { kind: 'rates', value: rateLimitsOf(c, parseDuration) },
      algorithm: scale(c.algorithm, ['sliding', 'fixed']),
      failMode: scale(c.failMode, CLOSED_OPEN),
      key: opaque(c.key),
    },
    consumed: ['limit', 'window', 'limits', 'overrides', 'algorithm', 'failMode', 'key'],
  }),
  lane: (c) => ({
    facets: { maxConcurrent: ceiling(c.maxConcurrent), queue: ceiling(c.queue), queueTimeoutMs: ceiling(c.queueTimeoutMs), name: opaque(c.name) },
    consumed: ['maxConcurrent', 'queue', 'queueTimeoutMs', 'name'],
  }),
  minimize: (c, ctx) => ({
    facets: {
      'purposes of use allowed': grants(allowedPurposes(c as MinimizeConfig)),
      fields: { kind: 'fields', values: releasedFields(c as MinimizeConfig, ctx.minimization) },
      parts: grants(Object.entries((c.parts ?? {}) as Record<string, string>).map(([name, kind]) => `${name} (${kind})`)),
    },
    consumed: ['purposeOfUse', 'select', 'kind', 'parts'],
  }),
  consent: (c) => ({
    facets: {
      withoutConsent: scale(c.withoutConsent, ['deny', 'permit']),
      failMode: scale(c.failMode, CLOSED_OPEN),
      onDenied: scale(c.onDenied, ['refuse', 'filter']),
      'cache.ttlMs': ceiling(c.cache.ttlMs),
      'cache.maxEntries': ceiling(c.cache.maxEntries),
    },
    consumed: ['withoutConsent', 'failMode', 'onDenied', 'cache'],
  }),
  'patient-compartment': (c) => ({ facets: { requireReference: scale(c.requireReference, TRUE_FALSE) }, consumed: ['requireReference'] }),
  idempotency: (c) => ({ facets: { required: scale(c.required, TRUE_FALSE), failMode: scale(c.failMode, CLOSED_OPEN) }, consumed: ['required', 'failMode'] }),
  'ip-allow': (c) => ({ facets: { allow: grants(c.allow) }, consumed: ['allow'] }),
  'client-allow': (c) => ({ facets: { clients: grants(Object.entries(c.clients as Record<string, string>).map(([id, tier]) => `${id} (${tier})`)) }, consumed: ['clients'] }),
};

/** Facets of one policy's validated config: classified ones, then every other key as opaque. */
export function policyFacets(name: string, config: Config, minimization: MinimizationConfig | undefined): Facets {
  const { facets, consumed } = CLASSIFIERS[name]?.(config, { minimization }) ?? { facets: {}, consumed: [] };
  const out: Facets = { ...facets };
  for (const [key, value] of Object.entries(config)) if (!consumed.includes(key)) out[key] = opaque(value);
  return out;
}
