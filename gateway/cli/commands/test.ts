/** `hcgw test [file…]`: policy tests (docs/policy-tooling.md). */
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, formatIssue } from '../../config/errors.ts';
import { parseOptions, UsageError } from '../command.ts';

/** Files as given, directories as their *.yaml files; undefined names the first path that does not exist. */
async function expand(paths: string[]): Promise<{ files: string[]; missing?: string }> {
  const files: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) return { files, missing: p };
    if (s.isDirectory()) files.push(...(await readdir(p)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(p, f)));
    else files.push(p);
  }
  return { files };
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { junit: { type: 'string' }, 'min-coverage': { type: 'string' }, verbose: { type: 'boolean' } }, true);
  const min = values['min-coverage'] === undefined ? 0 : Number(values['min-coverage']);
  if (!Number.isFinite(min) || min < 0 || min > 100) throw new UsageError('--min-coverage must be a number from 0 to 100');
  const { files, missing } = await expand(positionals.length ? positionals : ['policy-tests']);
  if (missing) throw new UsageError(`no such file or directory: ${missing}`);
  if (!files.length) throw new UsageError('no test files found');
  const { runTests } = await import('../../tooling/runner.ts');
  const { formatCase, formatCoverage, junitXml } = await import('../../tooling/report.ts');
  let result;
  try {
    result = await runTests(files, { onCase: (r) => process.stdout.write(`${formatCase(r)}\n`) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const i of err.issues) process.stderr.write(`${formatIssue(err.file, i)}\n`);
    return 1;
  }
  const failed = result.cases.filter((c) => !c.ok).length;
  process.stdout.write(`\n${result.cases.length - failed} passed, ${failed} failed\n${formatCoverage(result.coverage, { verbose: values.verbose })}\n`);
  if (values.junit) await writeFile(values.junit, junitXml(result.cases));
  if (result.coverage.percent < min) {
    process.stdout.write(`coverage ${result.coverage.percent}% is below --min-coverage ${min}%\n`);
    return 1;
  }
  return failed ? 1 : 0;
}
