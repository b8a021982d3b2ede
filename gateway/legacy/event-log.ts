import { open, readFile, type FileHandle } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CloudEvent, EventPublisher, PublishReceipt } from '../events/types.ts';

/**
 * A minimal durable EventPublisher: one JSON line per event, appended and fsync'ed before publish()
 * resolves, ids de-duplicated. It is what the legacy adapters publish to until the event backbone
 * (gateway/events) is configured; it honours the same contract, so the adapters do not change. One
 * writer process per file (the sequence is counted in this process).
 */
export class FileEventLog implements EventPublisher {
  private handle?: Promise<FileHandle>;
  private ids = new Set<string>();
  private sequence = 0;
  /** Appends run one after another, so sequence order is file order. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  private openOnce(): Promise<FileHandle> {
    this.handle ??= (async () => {
      mkdirSync(dirname(this.file), { recursive: true });
      const existing = await readFile(this.file, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)));
      for (const line of existing.split('\n')) {
        if (!line) continue;
        const rec = JSON.parse(line) as { sequence: number; event: CloudEvent };
        this.ids.add(rec.event.id);
        this.sequence = Math.max(this.sequence, rec.sequence);
      }
      return open(this.file, 'a');
    })();
    return this.handle;
  }

  publish(event: CloudEvent): Promise<PublishReceipt> {
    const run = this.tail.then(async (): Promise<PublishReceipt> => {
      const fh = await this.openOnce();
      if (this.ids.has(event.id)) return { sequence: this.sequence, stored: false };
      const sequence = this.sequence + 1;
      await fh.appendFile(`${JSON.stringify({ sequence, event })}\n`);
      await fh.sync();
      this.sequence = sequence;
      this.ids.add(event.id);
      return { sequence, stored: true };
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.tail;
    if (this.handle) await (await this.handle).close();
    this.handle = undefined;
  }
}

/** Reads a FileEventLog back (tests, `hcgw` tooling). */
export async function readEventLog(file: string): Promise<Array<{ sequence: number; event: CloudEvent }>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { sequence: number; event: CloudEvent });
}

/**
 * One FileEventLog per file in this process: the MLLP listeners and the prior-auth routes (recompiled on
 * every reload) must share its sequence and id set, or two writers would number the same file twice.
 */
const logsByFile = new Map<string, FileEventLog>();
export function sharedFileEventLog(file: string): FileEventLog {
  let log = logsByFile.get(file);
  if (!log) logsByFile.set(file, (log = new FileEventLog(file)));
  return log;
}
