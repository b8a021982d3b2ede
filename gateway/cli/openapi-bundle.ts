import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPlainObject } from '../lib/json-path.ts';

/** Keywords whose values are data, not schemas: a `$ref` key inside them is not a reference. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples', 'example']);
/** Keywords that bind a schema to where it was read from; in the bundle it lives under components. */
const LOCATION_KEYWORDS = new Set(['$id', '$schema']);
const COMPONENT_PREFIX = '#/components/schemas/';

const componentName = (hint: string) => hint.replace(/[^A-Za-z0-9._-]/g, '_') || 'schema';

/**
 * Gathers the JSON Schemas of validate policies into one OpenAPI `components.schemas`: every schema file
 * a `$ref` reaches becomes one component (named after the file), and every reference — to another file,
 * or local (`#/$defs/X`) — is rewritten to point into the components. Only files are read, as validate
 * itself does: a remote reference was refused when the config was checked.
 */
export class SchemaBundle {
  readonly components: Record<string, unknown> = {};
  private readonly byFile = new Map<string, string>();

  /** Registers `schema` (read at `base`) as a component of its own and returns a reference to it. */
  component(schema: unknown, base: URL, hint: string): { $ref: string } {
    const name = this.reserve(hint);
    this.components[name] = this.rewrite(schema, base, name);
    return { $ref: COMPONENT_PREFIX + name };
  }

  /**
   * A schema used in place (a parameter's). Its local references need a home: the first one registers
   * the whole schema as component `hint`, so `#/$defs/X` still resolves.
   */
  inline(schema: unknown, base: URL, hint: string): unknown {
    let home: string | undefined;
    const homeOf = () => {
      if (!home) {
        home = this.reserve(hint);
        this.components[home] = this.rewrite(schema, base, () => home!);
      }
      return home;
    };
    return this.rewrite(schema, base, homeOf);
  }

  private reserve(hint: string): string {
    const base = componentName(hint);
    let name = base;
    for (let i = 2; Object.hasOwn(this.components, name); i++) name = `${base}_${i}`;
    this.components[name] = {};
    return name;
  }

  private rewrite(node: unknown, base: URL, home: string | (() => string)): unknown {
    if (Array.isArray(node)) return node.map((n) => this.rewrite(n, base, home));
    if (!isPlainObject(node)) return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (LOCATION_KEYWORDS.has(k)) continue;
      if (k === '$ref' && typeof v === 'string') out.$ref = this.reference(v, base, home);
      else out[k] = DATA_KEYWORDS.has(k) ? v : this.rewrite(v, base, home);
    }
    return out;
  }

  private reference(ref: string, base: URL, home: string | (() => string)): string {
    const [target, fragment = ''] = ref.split('#', 2);
    if (fragment !== '' && !fragment.startsWith('/')) throw new Error(`$ref "${ref}": only JSON pointer fragments can be bundled`);
    if (target === '') return COMPONENT_PREFIX + (typeof home === 'string' ? home : home()) + fragment;
    const url = new URL(target, base);
    if (url.protocol !== 'file:') throw new Error(`$ref "${ref}": only schema files can be bundled`);
    url.hash = '';
    return COMPONENT_PREFIX + this.file(url) + fragment;
  }

  private file(url: URL): string {
    let name = this.byFile.get(url.href);
    if (!name) {
      name = this.reserve(basename(url.pathname).replace(/\.json$/, ''));
      this.byFile.set(url.href, name);
      const doc = JSON.parse(readFileSync(fileURLToPath(url), 'utf8')) as unknown;
      this.components[name] = this.rewrite(doc, url, name);
    }
    return name;
  }
}
