import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Ajv } from 'ajv';
import { PolicyConfigError } from '../../gateway/sdk/index.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';

/** Keywords whose values are data, not schemas: a `$ref` key inside them is not a reference. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples', 'example']);

/**
 * Makes `$ref`s to schema files work: every non-local `$ref` is resolved against the referencing
 * document (routes.yaml's folder for inline schemas, the file itself inside files), the file is read once
 * and added to this ajv instance under its file URL. Only `file:` references: a remote `$ref` is a config
 * error, never a fetch.
 */
export class SchemaFiles {
  /** Files already added to the ajv instance; several schemas of one policy may share them. */
  private readonly loaded = new Set<string>();
  constructor(private readonly ajv: Ajv) {}

  /** A copy of `schema` whose file references are absolute and loaded; `configPath` names it in errors. */
  prepare(schema: unknown, base: URL, configPath: string): unknown {
    return this.rewrite(structuredClone(schema), base, configPath);
  }

  private rewrite(node: unknown, base: URL, configPath: string): unknown {
    if (Array.isArray(node)) {
      node.forEach((n) => this.rewrite(n, base, configPath));
      return node;
    }
    if (!isPlainObject(node)) return node;
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) node.$ref = this.load(v, base, configPath);
      else if (!DATA_KEYWORDS.has(k)) this.rewrite(v, base, configPath);
    }
    return node;
  }

  private load(ref: string, base: URL, configPath: string): string {
    const url = new URL(ref, base);
    if (url.protocol !== 'file:') throw new PolicyConfigError(`$ref "${ref}": only schema files are allowed, never remote schemas`, configPath);
    const fragment = url.hash;
    url.hash = '';
    if (!this.loaded.has(url.href)) {
      this.loaded.add(url.href);
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(fileURLToPath(url), 'utf8'));
      } catch (err) {
        throw new PolicyConfigError(`$ref "${ref}": schema file cannot be read as JSON (${(err as NodeJS.ErrnoException).code ?? 'parse error'})`, configPath);
      }
      if (!isPlainObject(doc)) throw new PolicyConfigError(`$ref "${ref}": a schema file must hold a JSON object`, configPath);
      const prepared = this.rewrite(doc, url, configPath) as Record<string, unknown>;
      // A file is known by where it lives; an `$id` inside it would make references depend on its content.
      this.ajv.addSchema({ ...prepared, $id: url.href });
    }
    return url.href + fragment;
  }
}
