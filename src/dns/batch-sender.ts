/**
 * The send side shared by the batched UDP transports (udp-transport.ts for IPv4, udp6-transport.ts for IPv6): answers
 * are queued with their destination words and leave together in one sendmmsg() through the addon.
 *
 * - Answers given while a receive batch is delivered (between beginBatch and endBatch) leave when it ends.
 * - Answers given outside a batch (a DHCP ACK released by a group commit, a forwarded DNS answer) leave at the end of
 *   the current microtask run, so the ones released together (every ACK of one fdatasync) share one sendmmsg
 *   instead of one each (issue 18). Still before the loop does any other I/O.
 * - A full queue (`batch` answers) is sent at once.
 *
 * The caller writes each answer's destination into `meta` at metaOffset() (its own layout, `stride` words per
 * answer) and then calls push(): nothing is allocated per answer here.
 */

export interface BatchSenderOptions {
  /** meta words per answer (IPv4: address, port; IPv6: 4 address words, port) */
  stride: number;
  /** answers per send call at most */
  batch: number;
  /** one send call (udpBatch.send / send6): undefined when every answer went, else how many did not and why */
  send(datagrams: Buffer[], meta: Uint32Array, count: number): { failed: number; errno: number } | undefined;
  /** `count` answers were not sent: `errno` from the addon, or the exception the call threw */
  failed(count: number, why: { errno: number } | { error: unknown }): void;
}

export class BatchSender {
  readonly meta: Uint32Array;
  /**
   * The queued answers are outgoing[0, count). The array is reused, never truncated: `outgoing.length = 0` after every
   * send was a runtime call (Array length setter, SetLengthImpl: about 7% of the user time of a one-answer wakeup,
   * bench/PROFILE.md). Slots past `count` keep the previous batch's answers until overwritten (at most `batch`).
   */
  private readonly outgoing: Buffer[] = [];
  private count = 0;
  private delivering = false;
  private flushQueued = false;
  private closed = false;

  constructor(private readonly opts: BatchSenderOptions) {
    this.meta = new Uint32Array(opts.stride * opts.batch);
  }

  /** Where the next answer's destination words go in `meta` (valid until push). */
  metaOffset(): number {
    return this.opts.stride * this.count;
  }

  /** Queues `message`, whose destination is at metaOffset(); ignored once closed. */
  push(message: Buffer): void {
    if (this.closed) return;
    this.outgoing[this.count++] = message;
    if (this.count === this.opts.batch) this.flush();
    else if (!this.delivering && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushQueuedAnswers);
    }
  }

  /** A receive batch is being delivered: its answers wait for endBatch(). */
  beginBatch(): void {
    this.delivering = true;
  }

  /** The receive batch is delivered: its answers leave now. */
  endBatch(): void {
    this.delivering = false;
    this.flush();
  }

  /** Drops what is queued and sends nothing more. */
  close(): void {
    this.closed = true;
    this.count = 0;
    this.outgoing.length = 0;
  }

  private readonly flushQueuedAnswers = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private flush(): void {
    const { count } = this;
    if (count === 0) return;
    this.count = 0;
    try {
      const result = this.opts.send(this.outgoing, this.meta, count);
      if (result) this.opts.failed(result.failed, { errno: result.errno });
    } catch (error) {
      this.opts.failed(count, { error });
    }
  }
}
