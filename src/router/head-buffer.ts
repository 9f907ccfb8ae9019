/**
 * The bytes a router connection read before it knows where to send them (the ClientHello or HTTP head). The first
 * chunk is kept as received (no copy: most heads arrive whole in one segment); later chunks are appended into one
 * buffer that grows by doubling, so a head sent one byte at a time costs linear copying, not quadratic.
 */
export class HeadBuffer {
  private buf: Buffer | undefined;
  private owned = false;
  length = 0;

  append(chunk: Buffer): void {
    if (this.buf === undefined) {
      this.buf = chunk;
      this.length = chunk.length;
      return;
    }
    const needed = this.length + chunk.length;
    if (!this.owned || needed > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.length * 2, 1024));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
      this.owned = true;
    }
    chunk.copy(this.buf, this.length);
    this.length = needed;
  }

  /** everything read so far (a view, valid until the next append) */
  view(): Buffer {
    return this.buf === undefined ? Buffer.alloc(0) : this.buf.subarray(0, this.length);
  }

  /** forgets the bytes (after they were handed on) */
  clear(): void {
    this.buf = undefined;
    this.owned = false;
    this.length = 0;
  }
}
