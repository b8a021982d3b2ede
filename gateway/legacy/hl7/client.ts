import net from 'node:net';
import tls from 'node:tls';
import { frame, MllpDecoder } from './mllp.ts';

export interface MllpSendOptions {
  host: string;
  port: number;
  tls?: tls.ConnectionOptions;
  /** Whole exchange budget: connect, every message and its ACK. */
  timeoutMs?: number;
}

/**
 * Sends messages one after another on one connection (original mode: wait for each ACK before the next)
 * and returns the ACK texts. Used by `hcgw sandbox send-adt` and the tests.
 */
export function sendMllp(messages: string[], opts: MllpSendOptions): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = opts.tls ? tls.connect({ host: opts.host, port: opts.port, ...opts.tls }) : net.connect({ host: opts.host, port: opts.port });
    const decoder = new MllpDecoder(16 * 1024 * 1024);
    const acks: string[] = [];
    const timer = setTimeout(() => finish(new Error(`no ACK within ${opts.timeoutMs ?? 10_000}ms`)), opts.timeoutMs ?? 10_000);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(acks);
    };
    const next = () => (acks.length === messages.length ? finish() : socket.write(frame(messages[acks.length])));
    socket.once(opts.tls ? 'secureConnect' : 'connect', next);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const ack of decoder.push(chunk)) {
          acks.push(ack);
          next();
        }
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => acks.length < messages.length && finish(new Error('connection closed before every ACK arrived')));
  });
}

/** MSA-1 and MSA-3 of an ACK. */
export function ackCode(ack: string): { code: string; controlId: string; text: string } {
  const msa = ack.split('\r').find((s) => s.startsWith('MSA|'))?.split('|') ?? [];
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', text: msa[3] ?? '' };
}
