/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its length as two bytes, big
 * endian. One encoder and one incremental decoder, used by the server's TCP transport and by the upstream client's
 * TCP retry.
 */
import { HEADER_LENGTH } from './wire.js';

/** The largest message a frame can carry. */
export const MAX_FRAME_MESSAGE = 65_535;
const LENGTH_PREFIX = 2;
const EMPTY = Buffer.alloc(0);

/** `message` with its length prefix, in one new buffer (one copy). `message` is at most MAX_FRAME_MESSAGE bytes. */
export function encodeFrame(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(LENGTH_PREFIX + message.length);
  framed.writeUInt16BE(message.length, 0);
  framed.set(message, LENGTH_PREFIX);
  return framed;
}

/**
 * What FrameDecoder.next() found: a whole message; 'incomplete' (wait for more bytes); 'too-short' (the length
 * announces less than a DNS header: not a DNS peer, or garbage; decoding stops there).
 */
export type Frame = Buffer | 'incomplete' | 'too-short';

/**
 * Cuts a byte stream into messages as chunks arrive. Messages are views of the received chunks (no copy when a chunk
 * holds whole frames); chunks are joined only when a frame spans them.
 */
export class FrameDecoder {
  private buffered: Buffer = EMPTY;

  /** Bytes received and not yet returned as a message. */
  get pending(): number {
    return this.buffered.length;
  }

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
  }

  /**
   * The next message, if its frame is all in. The length is judged as soon as its two bytes are in, so a peer that
   * announces a too-short message is found out without waiting for its body.
   */
  next(): Frame {
    const { buffered } = this;
    if (buffered.length < LENGTH_PREFIX) return 'incomplete';
    const length = buffered.readUInt16BE(0);
    if (length < HEADER_LENGTH) return 'too-short';
    const end = LENGTH_PREFIX + length;
    if (buffered.length < end) return 'incomplete';
    this.buffered = buffered.subarray(end);
    return buffered.subarray(LENGTH_PREFIX, end);
  }

  /** Forgets what is buffered (the connection ends; nothing more will be decoded). */
  clear(): void {
    this.buffered = EMPTY;
  }
}
