import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { parseOptions, UsageError } from '../command.ts';
import { auditFilesArg, parseDateOption } from '../audit-files.ts';

const FORMAT1_NOTE = 'line format 1 (written before AuditEvents)';
const records = (n: number) => `${n} record${n === 1 ? '' : 's'}`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    { rotated: { type: 'boolean' }, partial: { type: 'boolean' }, fhir: { type: 'boolean' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' } },
    true,
  );
  const [sub, ...files] = positionals;
  if (sub === 'verify') return verify(files, values);
  if (sub === 'export') return exportFhir(files, values);
  throw new UsageError(sub === undefined ? 'audit needs a subcommand: verify or export' : `unknown audit subcommand "${sub}"`);
}

interface Flags {
  rotated?: boolean;
  partial?: boolean;
  fhir?: boolean;
  from?: string;
  to?: string;
  out?: string;
}

async function verify(files: string[], values: Flags): Promise<number> {
  if (values.fhir || values.from || values.to || values.out) throw new UsageError('--fhir, --from, --to and --out are options of audit export');
  const ordered = await auditFilesArg(files, values.rotated, 'audit verify');
  const { verifyAuditFiles, describeNote } = await import('../../audit/verify.ts');
  const r = await verifyAuditFiles(ordered, { partial: values.partial });
  for (const note of r.notes ?? []) process.stdout.write(`NOTE ${describeNote(note)}\n`);
  if (r.format1) process.stdout.write(`NOTE ${records(r.format1)} ${r.format1 === 1 ? 'is' : 'are'} in ${FORMAT1_NOTE}: verifiable; audit export skips them (docs/operations.md)\n`);
  if (r.ok) {
    process.stdout.write(`OK ${r.records} records\n`);
    return 0;
  }
  process.stdout.write(`BROKEN ${r.file}:${r.line}: ${r.reason} (${r.records} records verified before it)\n`);
  return 1;
}

/**
 * `hcgw audit export --fhir`: a Bundle of the AuditEvents, to stdout or --out. With --out the Bundle is
 * written next to it and renamed into place when complete, so a refused or failed export leaves no file.
 */
async function exportFhir(files: string[], values: Flags): Promise<number> {
  if (!values.fhir) throw new UsageError('audit export needs --fhir (the only export format: a FHIR R4 Bundle of AuditEvents)');
  const from = values.from === undefined ? undefined : parseDateOption(values.from, '--from');
  const to = values.to === undefined ? undefined : parseDateOption(values.to, '--to');
  const ordered = await auditFilesArg(files, values.rotated, 'audit export');
  const { exportFhirBundle } = await import('../../audit/export.ts');
  const partial = values.out && `${values.out}.partial`;
  const out = partial ? createWriteStream(partial, { flags: 'w', mode: 0o600 }) : process.stdout;
  const done = async (keep: boolean) => {
    if (!partial) return;
    out.end();
    await finished(out).catch(() => undefined);
    if (keep) await rename(partial, values.out!);
    else await rm(partial, { force: true });
  };
  let r;
  try {
    r = await exportFhirBundle(ordered, out, { partial: values.partial, from, to });
  } catch (err) {
    await done(false);
    throw err;
  }
  await done(r.ok);
  if (!r.ok) {
    process.stderr.write(`audit trail does not verify: ${r.verified.file}:${r.verified.line}: ${r.verified.reason}; nothing exported\n`);
    return 1;
  }
  if (r.format1) process.stderr.write(`NOTE ${records(r.format1)} in ${FORMAT1_NOTE} not exported\n`);
  process.stderr.write(`exported ${r.exported} AuditEvents (chain of ${r.verified.records} records verified, head ${r.verified.head})\n`);
  return 0;
}
