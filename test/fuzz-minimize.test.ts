import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileGetter, isPlainObject } from '../gateway/lib/json-path.ts';
import { applyTree, compileSelectors, createPseudonymizer, type FieldTree, type Pseudonymizer, type Selector } from '../policies/minimize/fields.ts';

/**
 * Property-based pass over field selection (minimize) and field reading (projections, templates): on any
 * JSON — including `__proto__`, `constructor` and `prototype` keys, as JSON.parse makes them — the output
 * holds only what the selectors allow, the input is left as it was, nothing throws, and Object.prototype
 * is never touched.
 */

const RUNS = 300;
const NAMES = ['id', 'name', 'given', 'family', 'identifier', 'value', 'system', 'code', 'text', 'toString', 'valueOf', 'hasOwnProperty'];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype'];

/** JSON values as a request or upstream body parses into: own data properties only, keys of any kind. */
const json = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...NAMES, ...HOSTILE_KEYS), fc.string({ maxLength: 4 })), tie('value')), { maxLength: 5 })
      .map((entries) => JSON.parse(JSON.stringify(Object.fromEntries(entries))) as unknown),
  ),
})).value;

const selectorPath = fc.array(fc.tuple(fc.constantFrom(...NAMES), fc.boolean()), { minLength: 1, maxLength: 3 }).map((segs) => segs.map(([n, each]) => (each ? `${n}[]` : n)).join('.'));
const selectors = fc.array(fc.oneof(selectorPath, selectorPath.map((field): Selector => ({ field, transform: 'mask' }))), { minLength: 1, maxLength: 4 });

const keyPath = (s: Selector) => (typeof s === 'string' ? s : s.field).replace(/\[\]/g, '').split('.');

/** Every chain of object keys in `v` (arrays are walked through, as the selectors do). */
function keyChains(v: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (Array.isArray(v)) for (const x of v) keyChains(x, prefix, out);
  else if (isPlainObject(v)) {
    for (const k of Object.keys(v)) {
      out.push([...prefix, k]);
      keyChains(v[k], [...prefix, k], out);
    }
  }
  return out;
}

const startsWith = (a: string[], b: string[]) => b.every((s, i) => a[i] === s);

function assertPrototypeClean() {
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).filter((n) => !BUILTIN_PROTO.includes(n)), []);
}
const BUILTIN_PROTO = Object.getOwnPropertyNames(Object.prototype);

/** applyTree as first written (map/filter, Map iteration, Object.keys): the definition the allocation-free walk must equal. */
function applyTreeDefinition(value: unknown, tree: FieldTree, p: Pseudonymizer): unknown {
  if (value === undefined || value === null) return tree.keep ? value : undefined;
  if (Array.isArray(value)) {
    const out = value.map((v) => applyTreeDefinition(v, tree, p)).filter((v) => v !== undefined);
    return out.length || tree.keep ? out : undefined;
  }
  if (tree.transform) return transformDefinition(value, tree.transform, p);
  if (!isPlainObject(value)) return tree.keep ? value : undefined;
  if (tree.keep && !tree.transforms) return value;
  const out: Record<string, unknown> = tree.keep ? { ...value } : {};
  for (const [key, child] of tree.children) {
    if (!Object.hasOwn(value, key)) continue;
    if (tree.keep && !child.transforms) continue;
    const v = applyTreeDefinition(value[key], child, p);
    if (v === undefined) delete out[key];
    else out[key] = v;
  }
  return Object.keys(out).length || tree.keep ? out : undefined;
}
function transformDefinition(value: unknown, t: 'mask' | 'hash', p: Pseudonymizer): unknown {
  if (typeof value === 'string' || typeof value === 'number') return p[t](String(value));
  if (Array.isArray(value)) return value.map((v) => transformDefinition(v, t, p));
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, transformDefinition(v, t, p)]));
  return value;
}

describe('fuzz: field selection and field paths', () => {
  test('applyTree gives exactly what its definition gives (same values, same sharing, same prototypes), on any JSON', () => {
    const pz = createPseudonymizer('fuzz-pseudonym-key-0123456789abcdef');
    const hashing = fc.array(fc.oneof(selectorPath, selectorPath.map((field): Selector => ({ field, transform: 'mask' })), selectorPath.map((field): Selector => ({ field, transform: 'hash' }))), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(json, hashing, fc.boolean(), (doc, sels, sparse) => {
        const tree = compileSelectors(sels);
        // A sparse array (holes) cannot come from JSON.parse, but a composition may build one.
        const input = sparse && Array.isArray(doc) ? Object.assign(new Array<unknown>(doc.length + 2), doc) : doc;
        const got = applyTree(input, tree, pz);
        const want = applyTreeDefinition(input, tree, pz);
        assert.deepStrictEqual(got, want);
        // Kept subtrees are shared with the input exactly where the definition shares them.
        if (isPlainObject(got) && isPlainObject(want)) for (const k of Object.keys(want)) assert.equal(got[k] === (input as Record<string, unknown>)[k], want[k] === (input as Record<string, unknown>)[k], k);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  const pz = createPseudonymizer('fuzz-pseudonym-key-0123456789abcdef');

  test('minimized output holds only allowed fields, never throws, never mutates its input', () => {
    fc.assert(
      fc.property(json, selectors, (doc, sels) => {
        const before = JSON.stringify(doc);
        const out = applyTree(doc, compileSelectors(sels), pz);
        assert.equal(JSON.stringify(doc), before, 'input mutated');
        const allowed = sels.map(keyPath);
        for (const chain of keyChains(out)) {
          // A key is allowed on the way to a selected field (a prefix of a selector) or inside a selected subtree.
          const ok = allowed.some((a) => startsWith(a, chain) || startsWith(chain, a));
          assert.ok(ok, `${chain.join('.')} released by ${JSON.stringify(sels)}`);
        }
        assertPrototypeClean();
      }),
      { numRuns: RUNS },
    );
  });

  test('hostile keys are never released unless a selector names them (they cannot: selectors refuse them)', () => {
    for (const key of HOSTILE_KEYS) assert.throws(() => compileSelectors([key]), /reserved/);
    fc.assert(
      fc.property(json, selectors, (doc, sels) => {
        const out = applyTree(doc, compileSelectors(sels), pz);
        const leaked = keyChains(out).filter((c) => HOSTILE_KEYS.includes(c[c.length - 1]) && !sels.map(keyPath).some((a) => startsWith(c, a)));
        assert.deepEqual(leaked, []);
      }),
      { numRuns: RUNS },
    );
  });

  test('masked fields never show more than their last 4 characters', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (secret) => {
        const out = applyTree({ identifier: [{ value: secret }] }, compileSelectors([{ field: 'identifier[].value', transform: 'mask' }]), pz) as { identifier: Array<{ value: string }> };
        const shown = out.identifier[0].value.replace(/^\*+/, '');
        assert.ok(shown.length <= 4 && (secret.length <= 4 ? shown === '' : secret.endsWith(shown)));
      }),
      { numRuns: RUNS },
    );
  });

  test('field paths read own properties only: inherited names (toString, valueOf) resolve to nothing', () => {
    fc.assert(
      fc.property(json, selectorPath, (doc, path) => {
        const got = compileGetter(path)(doc);
        const values = Array.isArray(got) ? got : [got];
        for (const v of values) assert.ok(typeof v !== 'function', `${path} reached a function`);
        assertPrototypeClean();
      }),
      { numRuns: RUNS },
    );
  });
});
