import { compileGetter, isPlainObject, ownValue, PATH_PATTERN, type Getter } from './json-path.ts';

/**
 * Experience-API projections: a declarative description of the document a channel receives, built from
 * the source document (a system response or a process composition). It can rename and flatten (a path),
 * nest (`fields`), map over arrays (`each`, with an optional `where` filter), copy keys (`pick`) and add
 * constants (`const`). Compiled once at config load into plain functions; nothing is evaluated per request.
 */
export type ProjectionNode =
  | string
  | { from?: string; fields: ProjectionFields }
  | { from: string; each: ProjectionFields | string; where?: Record<string, string | number | boolean> }
  | { from?: string; pick: string[] }
  | { const: unknown }
  | { from: string; default?: unknown };
export type ProjectionFields = { [outputKey: string]: ProjectionNode };

const path = { type: 'string', pattern: PATH_PATTERN, description: 'Path into the source, e.g. period.start, entry[].resource, type[0].text' };
const outputKey = { type: 'string', pattern: '^[A-Za-z_$][A-Za-z0-9_$-]*$', not: { enum: ['__proto__', 'constructor', 'prototype'] } };

const fields = { type: 'object', minProperties: 1, propertyNames: outputKey, additionalProperties: { $ref: '#/$defs/node' } };

/**
 * Route-level `project:` (gateway/config/schema.ts): a fields map. Recursive, so it carries its own `$id`
 * (local `#/$defs` references then resolve here, not against the whole routes.yaml schema).
 */
export const projectionSchema = {
  $id: 'https://hcgw.dev/schemas/projection.json',
  description: 'Experience projection: output field name → path or node (see docs/data-minimization.md)',
  ...fields,
  $defs: {
    fields,
    // One form per directive key, chosen by if/then so a config error names only the form meant.
    node: {
      if: { type: 'string' },
      then: path,
      else: {
        type: 'object',
        if: { properties: { fields: true }, required: ['fields'] },
        then: {
          additionalProperties: false,
          properties: { from: path, fields: { $ref: '#/$defs/fields' } },
          description: 'A nested object, built relative to `from` (default: the current document)',
        },
        else: {
          if: { properties: { each: true }, required: ['each'] },
          then: {
            additionalProperties: false,
            required: ['from'],
            properties: {
              from: path,
              each: { anyOf: [path, { $ref: '#/$defs/fields' }], description: 'Projection applied to every element (a path maps each element to one value)' },
              where: {
                type: 'object',
                minProperties: 1,
                propertyNames: { pattern: PATH_PATTERN },
                additionalProperties: { type: ['string', 'number', 'boolean'] },
                description: 'Keep only elements whose paths equal these values',
              },
            },
          },
          else: {
            if: { properties: { pick: true }, required: ['pick'] },
            then: {
              additionalProperties: false,
              properties: { from: path, pick: { type: 'array', minItems: 1, uniqueItems: true, items: outputKey, description: 'Keys copied as they are' } },
            },
            else: {
              if: { properties: { const: true }, required: ['const'] },
              then: { additionalProperties: false, properties: { const: { description: 'A literal value' } } },
              else: {
                additionalProperties: false,
                required: ['from'],
                properties: { from: path, default: { description: 'Value when the path is absent' } },
              },
            },
          },
        },
      },
    },
  },
} as const;

export type Projector = (doc: unknown) => unknown;

const identity: Getter = (doc) => doc;
const getterOf = (p: string | undefined): Getter => (p === undefined ? identity : compileGetter(p));
const asList = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

function compileFields(fields: ProjectionFields): Projector {
  const parts = Object.entries(fields).map(([key, node]) => [key, compileNode(node)] as const);
  return (doc) => {
    const out: Record<string, unknown> = {};
    for (const [key, run] of parts) {
      const v = run(doc);
      if (v !== undefined) out[key] = v;
    }
    return out;
  };
}

function compileNode(node: ProjectionNode): Projector {
  if (typeof node === 'string') return compileGetter(node);
  if ('const' in node) {
    const value = structuredClone(node.const);
    return () => structuredClone(value);
  }
  if ('fields' in node) {
    const from = getterOf(node.from);
    const build = compileFields(node.fields);
    return (doc) => {
      const src = from(doc);
      return src === undefined ? undefined : build(src);
    };
  }
  if ('each' in node) {
    const from = compileGetter(node.from);
    const map = typeof node.each === 'string' ? compileGetter(node.each) : compileFields(node.each);
    const tests = Object.entries(node.where ?? {}).map(([p, expected]) => [compileGetter(p), expected] as const);
    return (doc) =>
      asList(from(doc))
        .filter((el) => tests.every(([get, expected]) => get(el) === expected))
        .map(map)
        .filter((v) => v !== undefined);
  }
  if ('pick' in node) {
    const from = getterOf(node.from);
    const keys = node.pick;
    return (doc) => {
      const src = from(doc);
      if (!isPlainObject(src)) return undefined;
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        const v = ownValue(src, k);
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
  }
  const from = compileGetter(node.from);
  const fallback = node.default;
  return (doc) => from(doc) ?? (fallback === undefined ? undefined : structuredClone(fallback));
}

/** Compiles a route's `project:`; path syntax was already checked by the config schema. */
export function compileProjection(spec: ProjectionFields): Projector {
  return compileFields(spec);
}
