import { createHmac } from 'node:crypto';
import { isPlainObject, parsePath } from '../../gateway/lib/json-path.ts';

export type Transform = 'mask' | 'hash';
export type Selector = string | { field: string; transform: Transform };

/**
 * An allow-list compiled from selectors such as `name`, `identifier[].value` or `{field, transform}`.
 * `keep` releases a whole subtree; `children` release only named keys; `transform` rewrites the string
 * leaves of a subtree. Arrays are walked element by element, so `[]` in a selector is optional.
 */
export interface FieldTree {
  keep: boolean;
  transform?: Transform;
  /** True when this subtree rewrites something: a kept subtree is then copied, not shared. */
  transforms: boolean;
  children: Map<string, FieldTree>;
  /** `children` as an array, filled once compiled: applyTree walks it with no iterator or entry pairs. */
  entries: Array<readonly [string, FieldTree]>;
}

const node = (): FieldTree => ({ keep: false, transforms: false, children: new Map(), entries: [] });

/** Completes a built tree: which subtrees transform, and each node's entries. */
function finish(t: FieldTree): boolean {
  let any = t.transform !== undefined;
  for (const c of t.children.values()) any = finish(c) || any;
  t.entries = [...t.children];
  return (t.transforms = any);
}

/** Throws PathSyntaxError for a bad selector; the caller turns it into a config error with its path. */
export function compileSelectors(selectors: readonly Selector[]): FieldTree {
  const root = node();
  for (const sel of selectors) {
    const path = typeof sel === 'string' ? sel : sel.field;
    let n = root;
    for (const seg of parsePath(path)) {
      if (seg.index !== undefined) throw new Error(`"${path}": selectors take [] (every element), not an index`);
      let child = n.children.get(seg.key);
      if (!child) n.children.set(seg.key, (child = node()));
      n = child;
    }
    n.keep = true;
    if (typeof sel !== 'string') n.transform = sel.transform;
  }
  finish(root);
  return root;
}

export interface Pseudonymizer {
  mask(value: string): string;
  hash(value: string): string;
}

export function createPseudonymizer(hmacKey: string | undefined): Pseudonymizer {
  return {
    // Short values would be shown whole by "keep the last 4": mask them completely.
    mask: (v) => (v.length <= 4 ? '****' : '*'.repeat(v.length - 4) + v.slice(-4)),
    hash: (v) => {
      if (!hmacKey) throw new Error('hash transform without a pseudonym key');
      return `hmac-sha256:${createHmac('sha256', hmacKey).update(v).digest('base64url')}`;
    },
  };
}

function transformLeaves(value: unknown, t: Transform, p: Pseudonymizer): unknown {
  if (typeof value === 'string' || typeof value === 'number') return p[t](String(value));
  if (Array.isArray(value)) return value.map((v) => transformLeaves(v, t, p));
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, transformLeaves(v, t, p)]));
  return value;
}

/**
 * The allowed part of `value`, or undefined when nothing of it is allowed. Never mutates `value`. Called
 * for every value a profile reaches in every resource of a response, so it allocates only its result: no
 * callbacks (a closure capturing `tree` and `p` costs a context per call), iterators or key arrays.
 */
export function applyTree(value: unknown, tree: FieldTree, p: Pseudonymizer): unknown {
  if (value === undefined || value === null) return tree.keep ? value : undefined;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      const v = applyTree(value[i], tree, p);
      if (v !== undefined) out.push(v);
    }
    return out.length || tree.keep ? out : undefined;
  }
  if (tree.transform) return transformLeaves(value, tree.transform, p);
  if (!isPlainObject(value)) return tree.keep ? value : undefined;
  if (tree.keep && !tree.transforms) return value;
  const out: Record<string, unknown> = tree.keep ? { ...value } : {};
  let assigned = 0;
  // Assigning `__proto__` sets the prototype, not a key: only its own keys then say whether `out` is empty.
  let protoAssigned = false;
  for (let i = 0; i < tree.entries.length; i++) {
    const [key, child] = tree.entries[i];
    if (!Object.hasOwn(value, key)) continue;
    if (tree.keep && !child.transforms) continue;
    const v = applyTree(value[key], child, p);
    if (v === undefined) delete out[key];
    else {
      out[key] = v;
      assigned++;
      if (key === '__proto__') protoAssigned = true;
    }
  }
  if (tree.keep) return out;
  return (protoAssigned ? Object.keys(out).length : assigned) ? out : undefined;
}
