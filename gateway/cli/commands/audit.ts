import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseOptions, UsageError } from '../command.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { rotated: { type: 'boolean' }, partial: { type: 'boolean' } }, true);
  const [sub, ...files] = positionals;
  if (sub !== 'verify') throw new UsageError(sub === undefined ? 'audit needs a subcommand: verify' : `unknown audit subcommand "${sub}"`);
  if (!files.length) throw new UsageError('audit verify needs at least one file');
  // A file that is not there is a typo on the command line, not a broken chain.
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) throw new UsageError(`no such file: ${missing.join(', ')}`);
  const { verifyAuditFiles, describeNote } = await import('../../audit/verify.ts');
  const { auditFilesInOrder } = await import('../../audit/sinks/file.ts');
  const ordered = values.rotated ? (await Promise.all(files.map((f) => auditFilesInOrder(resolve(f))))).flat() : files;
  const r = await verifyAuditFiles(ordered, { partial: values.partial });
  for (const note of r.notes ?? []) process.stdout.write(`NOTE ${describeNote(note)}\n`);
  if (r.format1) process.stdout.write(`NOTE ${r.format1} records are in line format 1 (written before AuditEvents): verifiable, not exportable (docs/operations.md)\n`);
  if (r.ok) {
    process.stdout.write(`OK ${r.records} records\n`);
    return 0;
  }
  process.stdout.write(`BROKEN ${r.file}:${r.line}: ${r.reason} (${r.records} records verified before it)\n`);
  return 1;
}
