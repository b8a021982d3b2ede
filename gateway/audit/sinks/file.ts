import { mkdir, open, readdir, rename, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { GENESIS, hashOfLine, prevOfLine, seal, type ChainMarker } from '../chain.ts';
import { BufferedSink, SinkError, type BufferOptions, type SinkDeps } from './buffered.ts';
import { Spill } from './spill.ts';
import { linesToBuffer } from './line-bytes.ts';

/** A local write attempt is cheap: retry at least this often, so a freed disk is used within a second. */
const FILE_RETRY_MAX_MS = 1000;

/** What an errno means to an operator reading a gap entry. */
const WHY: Record<string, string> = { ENOSPC: 'disk full', EDQUOT: 'disk quota exceeded', EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system', EIO: 'I/O error', ENOENT: 'directory missing' };
export function whyOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return WHY[code] ?? code;
}
const failed = (kind: string, what: string, err: unknown) =>
  new SinkError(kind, `${what} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err, why: whyOf(err) });

export interface FileSinkOptions {
  maxBytes: number;
  /** Second path (another file system) that takes records while the live file cannot. */
  spillPath?: string;
  spillMaxBytes: number;
}

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
  /** Hash of the newest chain entry in the files (undefined: no entry yet). */
  private head?: string;
  private readonly maxBytes: number;
  private readonly spill?: Spill;

  constructor(
    readonly path: string,
    file: FileSinkOptions,
    opts: BufferOptions,
    deps: SinkDeps,
  ) {
    super(opts, deps);
    this.maxBytes = file.maxBytes;
    if (file.spillPath) this.spill = new Spill(file.spillPath, file.spillMaxBytes);
  }

  protected override get retryMaxMs(): number {
    return Math.min(this.opts.retryMaxMs, FILE_RETRY_MAX_MS);
  }

  /**
   * Opens the live file and returns the hash of the newest record kept (in the live file, or in the
   * spill when records wait there), so a restart continues the chain.
   */
  open(): Promise<string | undefined> {
    this.opening ??= this.openNow().catch((err: unknown) => {
      this.opening = undefined;
      throw failed('open', 'cannot open audit file', err);
    });
    return this.opening;
  }

  /** The head a restarted trail continues from: the spill's newest line if any wait there. */
  async resumeHead(): Promise<string | undefined> {
    let onDisk: string | undefined;
    try {
      onDisk = await this.open();
    } catch (err) {
      const spilled = await this.spill?.lastHash().catch(() => undefined);
      if (spilled) return spilled;
      throw err;
    }
    return (await this.spill?.lastHash().catch(() => undefined)) ?? onDisk;
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
      this.head = size > 0 ? hashOf(tail.last) : this.seq ? await this.lastHashOf(rotatedName(this.path, this.seq)) : undefined;
      return this.head;
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

  /**
   * Live file first. While it cannot be written, lines go to the spill (when configured), and while the
   * spill holds lines, new ones queue behind them there, so order is kept; the spill is moved back into
   * the live file as soon as that accepts writes again.
   */
  protected async deliver(lines: string[]): Promise<number> {
    if (this.spill && !(await this.spill.isEmpty())) {
      try {
        await this.moveSpillBack();
      } catch (err) {
        return this.toSpill(lines, err);
      }
    }
    try {
      return await this.writeLive(lines);
    } catch (err) {
      if (!this.spill) throw err;
      return this.toSpill(lines, err);
    }
  }

  private async toSpill(lines: string[], liveErr: unknown): Promise<number> {
    try {
      const n = await this.spill!.append(lines);
      this.deps.metrics.auditSinkFailures.inc({ sink: this.sinkName, kind: 'spilled' });
      return n;
    } catch (err) {
      this.deps.logger.error('audit spill cannot be written either', { sink: this.sinkName, error: whyOf(err) });
      throw liveErr;
    }
  }

  private async moveSpillBack(): Promise<void> {
    const pending = await this.spill!.read();
    // A crash after a move but before the spill was cleared leaves lines the live file already holds.
    const done = this.head ? pending.lastIndexOf(this.head) : -1;
    const todo = pending.lines.slice(done + 1);
    while (todo.length) todo.splice(0, await this.writeLive(todo));
    await this.fh?.sync();
    await this.spill!.clear();
    this.deps.logger.info('audit spill moved back into the live file', { sink: this.sinkName, records: pending.lines.length - done - 1 });
  }

  /** Appends as many of `lines` as the live file takes before it must rotate; returns how many. */
  private async writeLive(lines: string[]): Promise<number> {
    // A rotation that could not reopen the file left no handle: start over (and re-read the tail).
    if (!this.fh) this.opening = undefined;
    await this.open();
    let fh = this.fh;
    if (!fh) throw new SinkError('open', 'audit file is not open', { why: 'file not open' });
    const boundary = this.segmentLine(lines[0]);
    const fits = (bytes: number) => !this.maxBytes || this.size + bytes <= this.maxBytes;
    try {
      if (this.size > 0 && !fits(Buffer.byteLength(lines[0]) + 1 + (boundary ? boundary.length + 1 : 0))) fh = await this.rotate(fh);
    } catch (err) {
      throw failed('rotate', 'audit file rotation failed', err);
    }
    let bytes = boundary ? Buffer.byteLength(boundary) + 1 : 0;
    let n = 0;
    for (const line of lines) {
      const b = Buffer.byteLength(line) + 1;
      if (n > 0 && !fits(bytes + b)) break;
      bytes += b;
      n++;
    }
    const written = boundary ? [boundary, ...lines.slice(0, n)] : lines.slice(0, n);
    const chunk = linesToBuffer(written, bytes);
    try {
      await fh.appendFile(chunk);
    } catch (err) {
      await fh.truncate(this.size).catch(() => undefined);
      throw failed('write', 'audit file write failed', err);
    }
    this.size += chunk.length;
    this.head = hashOfLine(written.at(-1)!);
    return n;
  }

  /**
   * A segment entry when `line` does not continue the chain on disk: the trail started from genesis
   * because the file was unreadable then, or another writer appended meanwhile. Without it the file
   * would fail verification at this line although nothing was tampered with.
   */
  private segmentLine(line: string): string | undefined {
    const prev = prevOfLine(line);
    const head = this.head ?? GENESIS;
    if (prev === undefined || prev === head) return undefined;
    const marker: ChainMarker = {
      chain: 'segment',
      reason: prev === GENESIS ? 'chain restarted: the audit file was unreadable when this writer started' : 'chain continues from a record this file does not hold',
      resume: prev,
    };
    this.deps.logger.warn('audit chain segment boundary written', { sink: this.sinkName });
    return seal(marker, head).line;
  }

  protected override async release(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return;
    await fh.sync().catch(() => undefined);
    await fh.close();
    await this.spill?.close();
  }
}
