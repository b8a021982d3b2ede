import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from './command.ts';

/**
 * The audit files a command reads, in chain order: as given (oldest first), or with --rotated each live
 * file's rotated siblings before it. A file that is not there is a typo on the command line (usage error),
 * not a broken chain.
 */
export async function auditFilesArg(files: string[], rotated: boolean | undefined, what: string): Promise<string[]> {
  if (!files.length) throw new UsageError(`${what} needs at least one audit file`);
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) throw new UsageError(`no such file: ${missing.join(', ')}`);
  if (!rotated) return files;
  const { auditFilesInOrder } = await import('../audit/sinks/file.ts');
  return (await Promise.all(files.map((f) => auditFilesInOrder(resolve(f))))).flat();
}

/** A --from/--to value: a date (YYYY-MM-DD, UTC midnight) or an ISO timestamp with its zone. */
export function parseDateOption(v: string | undefined, flag: string): Date {
  const d = v && /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/.test(v) ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) throw new UsageError(`${flag} needs a date (YYYY-MM-DD or an ISO timestamp with zone)`);
  return d;
}
