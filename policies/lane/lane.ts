import type { ServerResponse } from 'node:http';

export interface LaneOptions {
  name: string;
  maxConcurrent: number;
  queue: number;
  queueTimeoutMs: number;
}

export type RefusalReason = 'queue-full' | 'queue-timeout' | 'client-closed';

export class LaneRefusal extends Error {
  constructor(readonly reason: RefusalReason) {
    super(`lane refused the request: ${reason}`);
    this.name = 'LaneRefusal';
  }
}

interface Waiter {
  admit(): void;
}

/**
 * A counting semaphore with a bounded FIFO queue. A slot belongs to one response and is given back when that
 * response closes — finished, failed or abandoned by the client — so no error path can leak it; a queued
 * request whose client leaves is dropped from the queue.
 */
export class Lane {
  private active = 0;
  /** Insertion-ordered, with O(1) removal of a waiter whose client left or whose time ran out. */
  private readonly waiting = new Set<Waiter>();

  constructor(readonly options: Readonly<LaneOptions>) {}

  /** One listener shared by every admitted response: the slot passes to the oldest waiter, or frees up. */
  private readonly release = (): void => {
    const next = this.waiting.values().next();
    if (next.done) this.active--;
    else {
      this.waiting.delete(next.value);
      next.value.admit();
    }
  };

  /**
   * Takes a slot for `res`: returns undefined when one was free, a promise that settles when the request
   * leaves the queue (admitted, or rejected with a LaneRefusal), or throws a LaneRefusal when the queue is full.
   */
  enter(res: ServerResponse): Promise<void> | undefined {
    // A response that already closed will never emit 'close' again: its slot could never come back.
    if (res.closed) throw new LaneRefusal('client-closed');
    if (this.active < this.options.maxConcurrent) {
      this.active++;
      res.once('close', this.release);
      return undefined;
    }
    if (this.waiting.size >= this.options.queue) throw new LaneRefusal('queue-full');
    return new Promise<void>((resolve, reject) => {
      const leave = (reason: RefusalReason) => {
        this.waiting.delete(waiter);
        clearTimeout(timer);
        res.off('close', onClose);
        reject(new LaneRefusal(reason));
      };
      const onClose = () => leave('client-closed');
      const timer = setTimeout(() => leave('queue-timeout'), this.options.queueTimeoutMs);
      const waiter: Waiter = {
        admit: () => {
          clearTimeout(timer);
          res.off('close', onClose);
          res.once('close', this.release);
          resolve();
        },
      };
      this.waiting.add(waiter);
      res.once('close', onClose);
    });
  }
}
