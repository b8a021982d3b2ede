/**
 * MLLP (HL7 v2 Minimal Lower Layer Protocol) framing: <VT> message <FS><CR>.
 *
 * Hand-written on purpose: node-hl7-server 2.5.0 (the last line that runs on Node 20) keeps its receive
 * buffer after a complete frame and strips only the first <FS><CR>, so a second message on one
 * connection, or two frames in one TCP chunk, are glued into one; a frame split across chunks is handled
 * only by accident. The framing is twenty lines; parsing stays with node-hl7-client.
 */
export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;
const LF = 0x0a;

export class MllpFramingError extends Error {
  constructor(readonly reason: 'bytes-outside-frame' | 'frame-too-large' | 'bad-trailer') {
    super(`MLLP framing error: ${reason}`);
    this.name = 'MllpFramingError';
  }
}

export function frame(message: string): Buffer {
  return Buffer.concat([Buffer.from([VT]), Buffer.from(message, 'utf8'), Buffer.from([FS, CR])]);
}

/**
 * Incremental decoder: feed it TCP chunks, get whole messages back. Throws MllpFramingError on bytes
 * outside a frame (other than CR/LF between frames), a frame over `maxBytes`, or <FS> not followed by <CR>.
 */
export class MllpDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private inFrame = false;
  /** Saw <FS>, waiting for the <CR> that may come in the next chunk. */
  private sawFs = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.sawFs) {
        if (b !== CR) throw new MllpFramingError('bad-trailer');
        this.sawFs = false;
        this.inFrame = false;
        out.push(Buffer.concat(this.parts).toString('utf8'));
        this.parts = [];
        this.size = 0;
        continue;
      }
      if (!this.inFrame) {
        if (b === VT) {
          this.inFrame = true;
          start = i + 1;
        } else if (b !== CR && b !== LF) throw new MllpFramingError('bytes-outside-frame');
        continue;
      }
      if (b === FS) {
        this.append(chunk.subarray(start, i));
        this.sawFs = true;
      }
    }
    if (this.inFrame && !this.sawFs) this.append(chunk.subarray(start));
    return out;
  }

  private append(part: Buffer): void {
    this.size += part.length;
    if (this.size > this.maxBytes) throw new MllpFramingError('frame-too-large');
    if (part.length) this.parts.push(part);
  }
}
