import { BufferedSink, PermanentSinkError, SinkError, type BufferOptions, type SinkDeps } from './buffered.ts';

export interface HttpSinkOptions extends BufferOptions {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

/** Statuses after which the same batch may succeed later. */
const RETRYABLE = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * A SIEM webhook: each batch is one POST of application/x-ndjson, in chain order, one at a time. While
 * the SIEM is down the batch stays at the head of the buffer and is retried with backoff; a 4xx other
 * than 408/429 means the SIEM will never take it, so the batch is dropped and counted.
 */
export class HttpSink extends BufferedSink {
  constructor(
    private readonly http: HttpSinkOptions,
    deps: SinkDeps,
  ) {
    super(http, deps);
  }

  protected async deliver(lines: string[]): Promise<number> {
    let res: Response;
    try {
      res = await fetch(this.http.url, {
        method: 'POST',
        headers: { ...this.http.headers, 'content-type': 'application/x-ndjson' },
        body: `${lines.join('\n')}\n`,
        signal: AbortSignal.timeout(this.http.timeoutMs),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new SinkError(timedOut ? 'timeout' : 'network', timedOut ? 'SIEM request timed out' : 'SIEM unreachable', { cause: err });
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.ok) return lines.length;
    if (RETRYABLE(res.status)) throw new SinkError('http-status', `SIEM answered ${res.status}`);
    throw new PermanentSinkError('rejected', `SIEM rejected the batch with ${res.status}`);
  }
}
