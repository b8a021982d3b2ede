import { ConfigError } from '../../config/errors.ts';
import { compileCheck } from '../../tooling/compile-check.ts';
import { strictCheck } from '../../tooling/lint/lint.ts';
import { parseOptions, printConfigError, UsageError } from '../command.ts';

/** Compiles the file exactly as `hcgw start` would; 0 when it would start, 1 (every error printed) when not. */
export async function validateFile(file: string, opts: { quiet?: boolean; strict?: boolean } = {}): Promise<number> {
  try {
    const { loaded, compiled, release } = await compileCheck(file);
    for (const w of compiled.warnings) process.stderr.write(`${file}: warning: ${w.path}: ${w.message}\n`);
    const layers = compiled.routes.reduce<Record<string, number>>((acc, r) => ((acc[r.layer] = (acc[r.layer] ?? 0) + 1), acc), {});
    if (!opts.quiet)
      process.stdout.write(
        `${file}: OK — ${compiled.routes.length} routes (${Object.entries(layers).map(([l, n]) => `${n} ${l}`).join(', ')}), ` +
          `${loaded.config.identity.issuers.length} issuers, ${Object.keys(loaded.config.upstreams).length} upstreams, version ${loaded.hash}\n`,
      );
    await release();
    return opts.strict ? strictCheck(file, loaded.config) : 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return 1;
    }
    throw err;
  }
}

export async function run(args: string[]): Promise<number> {
  const { positionals, values } = parseOptions(args, { strict: { type: 'boolean' } }, true);
  if (positionals.length > 1) throw new UsageError('validate takes one file');
  return validateFile(positionals[0] ?? 'routes.yaml', { strict: values.strict });
}
