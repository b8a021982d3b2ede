import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { formatIssue, type ConfigError } from '../config/errors.ts';

/** One `hcgw` command. Modules are loaded only when their command runs, so `hcgw --help` stays fast. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The full usage text `hcgw <name> --help` prints. */
  readonly usage: string;
  readonly load: () => Promise<{ run(args: string[]): Promise<number> }>;
}

/** The user's mistake on the command line: printed with the command's usage, exit 2, never a stack trace. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node's parseArgs with one fix: a value that starts with `-` followed by a digit (`--port -1`, `--from -5m`)
 * is the option's value, not an unknown flag.
 */
export function parseOptions<O extends Options>(args: string[], options: O, allowPositionals = false) {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    const next = args[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      joined.push(`--${name}=${next}`);
      i++;
    } else joined.push(args[i]);
  }
  return parseArgs({ args: joined, options, allowPositionals, strict: true });
}

/** Route ids by index, read leniently from the file, so messages can name `routes[3]` as the author knows it. */
function routeIds(file: string): string[] {
  try {
    const doc = parseYaml(readFileSync(file, 'utf8')) as { routes?: Array<{ id?: unknown }> };
    return Array.isArray(doc?.routes) ? doc.routes.map((r) => (typeof r?.id === 'string' ? r.id : '')) : [];
  } catch {
    return [];
  }
}

export function printConfigError(err: ConfigError): void {
  const ids = routeIds(err.file);
  process.stderr.write(`${err.file}: ${err.issues.length} error${err.issues.length === 1 ? '' : 's'}\n`);
  for (const i of err.issues) {
    const id = ids[Number(/^routes\[(\d+)\]/.exec(i.path)?.[1] ?? -1)];
    process.stderr.write(`  ${formatIssue(err.file, i)}${id ? `  (route "${id}")` : ''}\n`);
  }
}
