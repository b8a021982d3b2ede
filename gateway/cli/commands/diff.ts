import { ConfigError } from '../../config/errors.ts';
import { diffConfigs, renderText } from '../../tooling/diff/index.ts';
import { parseOptions, printConfigError, UsageError } from '../command.ts';

/** Exit codes: 0 nothing widens, 2 something widens (ask for a second approval), 1 nothing could be compared. */
const EXIT = { same: 0, error: 1, widening: 2 } as const;

function parse(args: string[]) {
  const { values, positionals } = parseOptions(args, { json: { type: 'boolean' } }, true);
  if (positionals.length !== 2) throw new UsageError('diff takes two files: OLD.yaml NEW.yaml');
  return { json: values.json === true, files: positionals as [string, string] };
}

export async function run(args: string[]): Promise<number> {
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse(args);
  } catch (err) {
    // Exit 2 means "widens" here: a mistyped command line must not read as a verdict, so it is 1 (fail closed).
    process.stderr.write(`hcgw diff: ${(err as Error).message} (hcgw diff --help for usage)\n`);
    return EXIT.error;
  }
  try {
    const r = await diffConfigs(...opts.files);
    process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : renderText(r));
    return r.widening ? EXIT.widening : EXIT.same;
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return EXIT.error;
    }
    throw err;
  }
}
