import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hashOfLine } from '../chain.ts';
import { SinkError } from './buffered.ts';
import { linesToBuffer } from './line-bytes.ts';

export interface SpilledLines {
  lines: string[];
  /** Index of the line with this hash, or -1. */
  lastIndexOf(hash: string): number;
}

/**
 * A bounded on-disk queue of sealed lines for the time the live audit file cannot be written (its disk is
 * full or failing). It lives on another path, ideally another file system, and is emptied back into the
 * live file, in order, as soon as that accepts writes again; a restart finds and moves what it holds.
 */
export class Spill {
  private fh?: FileHandle;
  /** Bytes of complete lines in the file; undefined until first looked at. */
  private size?: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {}

  private async handle(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.path, 'a+', 0o640);
    const { size } = await fh.stat();
    const text = size ? (await fh.readFile()).toString('utf8') : '';
    // A line torn by a crash mid-append was never acknowledged: cut it.
    const complete = text.lastIndexOf('\n') + 1;
    if (complete < size) await fh.truncate(complete);
    this.fh = fh;
    this.size = complete;
    return fh;
  }

  async isEmpty(): Promise<boolean> {
    if (this.size === undefined) await this.handle().catch(() => undefined);
    return !this.size;
  }

  /** Appends the lines that fit under maxBytes (at least one, or throws). */
  async append(lines: string[]): Promise<number> {
    const fh = await this.handle();
    let bytes = 0;
    let n = 0;
    for (const line of lines) {
      const b = Buffer.byteLength(line) + 1;
      if (this.size! + bytes + b > this.maxBytes) break;
      bytes += b;
      n++;
    }
    if (!n) throw new SinkError('spill-full', 'audit spill is full', { why: 'disk full and spill full' });
    const chunk = linesToBuffer(lines.slice(0, n), bytes);
    try {
      await fh.appendFile(chunk);
    } catch (err) {
      await fh.truncate(this.size!).catch(() => undefined);
      throw err;
    }
    this.size! += chunk.length;
    return n;
  }

  async read(): Promise<SpilledLines> {
    const fh = await this.handle();
    const buf = Buffer.alloc(this.size!);
    if (buf.length) await fh.read(buf, 0, buf.length, 0);
    const lines = buf.toString('utf8').split('\n').filter(Boolean);
    return {
      lines,
      lastIndexOf(hash) {
        for (let i = lines.length - 1; i >= 0; i--) if (hashOfLine(lines[i]) === hash) return i;
        return -1;
      },
    };
  }

  /** Hash of the newest spilled line (what a restarted chain continues from), if any. */
  async lastHash(): Promise<string | undefined> {
    if (await this.isEmpty()) return undefined;
    return (await this.read()).lines.map(hashOfLine).at(-1);
  }

  /** Everything was moved back into the live file. */
  async clear(): Promise<void> {
    const fh = await this.handle();
    await fh.truncate(0);
    await fh.sync();
    this.size = 0;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    this.size = undefined;
    await fh?.close();
  }
}
