import { parseOptions, UsageError } from './command.ts';
import { auditFilesArg, parseDateOption } from './audit-files.ts';
import { readAuditViews } from '../audit/read.ts';
import { verifyAuditFiles } from '../audit/verify.ts';
import { apiUsage, apiUsageCsv } from '../legacy/report/api-usage.ts';

/** `hcgw report api-usage`: nothing is reported from a trail whose hash chain does not verify. */
export async function report(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parseOptions(args, { from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string', default: 'json' }, rotated: { type: 'boolean' }, partial: { type: 'boolean' } }, true);
  const [sub, ...files] = positionals;
  if (sub !== 'api-usage') throw new UsageError('report needs a subcommand: api-usage');
  if (values.format !== 'json' && values.format !== 'csv') throw new UsageError('--format is csv or json');
  const from = parseDateOption(values.from, '--from');
  const to = parseDateOption(values.to, '--to');
  const ordered = await auditFilesArg(files, values.rotated, 'report api-usage');
  const verified = await verifyAuditFiles(ordered, { partial: values.partial });
  if (!verified.ok) {
    err.write(`audit trail does not verify: ${verified.file}:${verified.line}: ${verified.reason}; no report\n`);
    return 1;
  }
  const records = [];
  for await (const r of readAuditViews(ordered)) records.push(r);
  const result = apiUsage(records, from, to);
  out.write(values.format === 'csv' ? apiUsageCsv(result) : `${JSON.stringify({ ...result, verified: { records: verified.records, head: verified.head } }, null, 2)}\n`);
  return 0;
}

export const run = (args: string[]) => report(args);
