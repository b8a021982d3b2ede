import type { Writable } from 'node:stream';
import { BufferedSink, SinkError, type BufferOptions, type SinkDeps } from './buffered.ts';

/** JSON lines on a stream (process stdout by default) for a log shipper to pick up. */
export class StreamSink extends BufferedSink {
  constructor(
    private readonly stream: Writable,
    opts: BufferOptions,
    deps: SinkDeps,
  ) {
    super(opts, deps);
  }

  protected deliver(lines: string[]): Promise<number> {
    return new Promise((resolve, reject) => {
      // The callback fires once the stream has taken the chunk, which also paces us to a slow reader.
      this.stream.write(`${lines.join('\n')}\n`, (err) => (err ? reject(new SinkError('write', 'audit stream write failed', { cause: err })) : resolve(lines.length)));
    });
  }
}
