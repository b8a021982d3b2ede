import { compileSelectors, type FieldTree, type Selector } from './fields.ts';

/** Selector paths: like gateway/lib/json-path.ts paths, but `[]` only (an index selects nothing meaningful). */
const SELECTOR_PATTERN = '^[A-Za-z_$][A-Za-z0-9_$-]*(\\[\\])?(\\.[A-Za-z_$][A-Za-z0-9_$-]*(\\[\\])?)*$';

const selector = {
  oneOf: [
    { type: 'string', pattern: SELECTOR_PATTERN, description: 'Field released as is, e.g. birthDate, name.family, identifier[].value' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['field', 'transform'],
      properties: {
        field: { type: 'string', pattern: SELECTOR_PATTERN },
        transform: { enum: ['mask', 'hash'], description: 'mask: keep the last 4 characters; hash: HMAC-SHA256 pseudonym (needs pseudonymKey)' },
      },
    },
  ],
};
const selectorList = { type: 'array', items: selector, description: 'The fields released; every other field is removed' };

const profile = {
  type: 'object',
  additionalProperties: false,
  properties: {
    description: { type: 'string', description: 'Who this profile is for and why (shown in reviews, never to callers)' },
    resources: {
      type: 'object',
      default: {},
      propertyNames: { pattern: '^[A-Z][A-Za-z]+$' },
      additionalProperties: selectorList,
      description: 'FHIR resources by resourceType; a type not listed is removed whole (Bundle entries) or refused (single resource)',
    },
    documents: {
      type: 'object',
      default: {},
      propertyNames: { pattern: '^[a-z][a-z0-9-]*$' },
      additionalProperties: selectorList,
      description: 'Non-FHIR JSON (billing, ERP) by the document kind the route declares',
    },
  },
};

/** Top-level `minimization:` section of routes.yaml (registered in gateway/config/schema.ts). */
export const minimizationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['profiles'],
  description: 'Field-level data minimization profiles, selected per route by the minimize policy',
  properties: {
    pseudonymKey: {
      type: 'string',
      minLength: 32,
      'x-secret': true,
      description: 'HMAC-SHA256 key for `transform: hash`; give it as ${env:NAME} or ${file:/path}, never inline',
    },
    profiles: { type: 'object', minProperties: 1, propertyNames: { pattern: '^[a-zA-Z0-9_.-]+$' }, additionalProperties: profile },
  },
} as const;

export interface ProfileConfig {
  description?: string;
  resources: Record<string, Selector[]>;
  documents: Record<string, Selector[]>;
}
export interface MinimizationConfig {
  pseudonymKey?: string;
  profiles: Record<string, ProfileConfig>;
}

export interface CompiledProfile {
  name: string;
  resources: ReadonlyMap<string, FieldTree>;
  documents: ReadonlyMap<string, FieldTree>;
  usesHash: boolean;
}

const compileMap = (m: Record<string, Selector[]>) => new Map(Object.entries(m).map(([k, sels]) => [k, compileSelectors(sels)] as const));

/** Profiles compile once per loaded config, however many routes use them. */
const cache = new WeakMap<object, Map<string, CompiledProfile>>();

export function compiledProfile(section: MinimizationConfig, name: string): CompiledProfile | undefined {
  let byName = cache.get(section);
  if (!byName) cache.set(section, (byName = new Map()));
  let p = byName.get(name);
  const cfg = Object.hasOwn(section.profiles, name) ? section.profiles[name] : undefined;
  if (!p && cfg) {
    const all = [...Object.values(cfg.resources), ...Object.values(cfg.documents)].flat();
    p = { name, resources: compileMap(cfg.resources), documents: compileMap(cfg.documents), usesHash: all.some((s) => typeof s !== 'string' && s.transform === 'hash') };
    byName.set(name, p);
  }
  return p;
}
