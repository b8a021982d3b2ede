import { mkdir, open, readdir, rename, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BufferedSink, SinkError, type BufferOptions, type SinkDeps } from './buffered.ts';

/** Records are far smaller than this; the last complete line of a file always fits. */
const TAIL_WINDOW = 64 * 1024;

const rotatedName = (path: string, seq: number) => `${path}.${String(seq).padStart(6, '0')}`;

/** Sequence numbers of the rotated siblings of `path` (`audit.log.000001`, …), ascending. */
export async function rotatedSequence(path: string): Promise<number[]> {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(prefix) && /^\d{6,}$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/** The rotated files oldest first, then the live file: the order `hcgw audit verify` wants. */
export async function auditFilesInOrder(path: string): Promise<string[]> {
  return [...(await rotatedSequence(path)).map((s) => rotatedName(path, s)), path];
}

interface Tail {
  /** The last complete line, if it fits the window. */
  last?: string;
  /** Bytes after the last newline: a record cut short by a crash mid-write. */
  torn: number;
}

async function readTail(fh: FileHandle, size: number): Promise<Tail> {
  if (size === 0) return { torn: 0 };
  const n = Math.min(size, TAIL_WINDOW);
  const buf = Buffer.alloc(n);
  await fh.read(buf, 0, n, size - n);
  const end = buf.lastIndexOf(0x0a);
  if (end === -1) return { torn: n === size ? size : 0 };
  const start = end === 0 ? -1 : buf.lastIndexOf(0x0a, end - 1);
  return { last: buf.subarray(start + 1, end).toString('utf8'), torn: n - end - 1 };
}

function hashOf(line: string | undefined): string | undefined {
  if (!line) return undefined;
  try {
    const h = (JSON.parse(line) as { hash?: unknown }).hash;
    return typeof h === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * JSON lines appended to one live file. Rotation renames the live file to `<path>.NNNNNN` (increasing,
 * never reused or deleted: retention is the operator's decision) and starts a new live file; because
 * the chain is computed before the sink, the new file's first record links to the old file's last.
 * A rotation never splits a record, and a failed write is truncated back so no torn line remains.
 */
export class FileSink extends BufferedSink {
  private fh?: FileHandle;
  private size = 0;
  private seq = 0;
  private opening?: Promise<string | undefined>;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    opts: BufferOptions,
    deps: SinkDeps,
  ) {
    super(opts, deps);
  }

  /** Opens the live file and returns the hash of the newest record on disk, so a restart continues the chain. */
  open(): Promise<string | undefined> {
    this.opening ??= this.openNow().catch((err: unknown) => {
      this.opening = undefined;
      throw new SinkError('open', `cannot open audit file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    });
    return this.opening;
  }

  private async openNow(): Promise<string | undefined> {
    await mkdir(dirname(this.path), { recursive: true });
    const seqs = await rotatedSequence(this.path);
    this.seq = seqs.at(-1) ?? 0;
    const fh = await open(this.path, 'a+', 0o640);
    try {
      let { size } = await fh.stat();
      const tail = await readTail(fh, size);
      if (tail.torn) {
        // A crash mid-write left a partial record; it was never committed, and a torn line would make
        // every later record unverifiable.
        this.deps.logger.warn('audit file ended in a partial record; removed it', { sink: this.sinkName, bytes: tail.torn });
        size -= tail.torn;
        await fh.truncate(size);
      }
      this.fh = fh;
      this.size = size;
      if (size > 0) return hashOf(tail.last);
      return this.seq ? this.lastHashOf(rotatedName(this.path, this.seq)) : undefined;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  private async lastHashOf(file: string): Promise<string | undefined> {
    const fh = await open(file, 'r');
    try {
      return hashOf((await readTail(fh, (await fh.stat()).size)).last);
    } finally {
      await fh.close();
    }
  }

  private async rotate(fh: FileHandle): Promise<FileHandle> {
    await fh.sync();
    await fh.close();
    this.fh = undefined;
    const target = rotatedName(this.path, this.seq + 1);
    try {
      await rename(this.path, target);
      this.seq++;
    } finally {
      // Reopen even if the rename failed, so the next attempt starts from a consistent state.
      this.fh = await open(this.path, 'a+', 0o640);
      this.size = (await this.fh.stat()).size;
    }
    this.deps.logger.info('audit file rotated', { sink: this.sinkName, rotatedTo: basename(target) });
    return this.fh;
  }

  protected async deliver(lines: string[]): Promise<number> {
    // A rotation that could not reopen the file left no handle: start over (and re-read the tail).
    if (!this.fh) this.opening = undefined;
    await this.open();
    let fh = this.fh;
    if (!fh) throw new SinkError('open', 'audit file is not open');
    const fits = (bytes: number) => !this.maxBytes || this.size + bytes <= this.maxBytes;
    try {
      if (this.size > 0 && !fits(Buffer.byteLength(lines[0]) + 1)) fh = await this.rotate(fh);
    } catch (err) {
      throw new SinkError('rotate', `audit file rotation failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    let bytes = 0;
    let n = 0;
    for (const line of lines) {
      const b = Buffer.byteLength(line) + 1;
      if (n > 0 && !fits(bytes + b)) break;
      bytes += b;
      n++;
    }
    const chunk = Buffer.from(`${lines.slice(0, n).join('\n')}\n`);
    try {
      await fh.appendFile(chunk);
    } catch (err) {
      await fh.truncate(this.size).catch(() => undefined);
      throw new SinkError('write', `audit file write failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    this.size += chunk.length;
    return n;
  }

  protected override async release(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return;
    await fh.sync().catch(() => undefined);
    await fh.close();
  }
}
