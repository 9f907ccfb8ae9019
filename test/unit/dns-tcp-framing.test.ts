import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, type Frame } from '../../src/dns/tcp-framing.js';

/** A message of `length` bytes whose every byte is `fill` (a DNS header is 12 bytes, the least a frame may carry). */
const message = (length: number, fill: number): Buffer => Buffer.alloc(length, fill);

/** Every message the decoder gives after `chunks`, and what next() said last ('incomplete' or 'too-short'). */
function decodeAll(chunks: Buffer[]): { messages: Buffer[]; last: Frame } {
  const decoder = new FrameDecoder();
  const messages: Buffer[] = [];
  let last: Frame = 'incomplete';
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (last = decoder.next(); last instanceof Buffer; last = decoder.next()) messages.push(Buffer.from(last));
  }
  return { messages, last };
}

describe('DNS TCP framing (RFC 1035 §4.2.2)', () => {
  it('prefixes a message with its length, big endian', () => {
    const framed = encodeFrame(message(300, 7));
    expect(framed.length).toBe(302);
    expect(framed.readUInt16BE(0)).toBe(300);
    expect(framed.subarray(2).equals(message(300, 7))).toBe(true);
  });

  it('decodes a frame split across chunks at every byte, the length prefix included', () => {
    const framed = encodeFrame(message(40, 1));
    for (let cut = 1; cut < framed.length; cut++) {
      const { messages, last } = decodeAll([framed.subarray(0, cut), framed.subarray(cut)]);
      expect(messages).toEqual([message(40, 1)]);
      expect(last).toBe('incomplete');
    }
    const byteByByte = decodeAll([...framed].map((byte) => Buffer.from([byte])));
    expect(byteByByte.messages).toEqual([message(40, 1)]);
  });

  it('decodes several frames in one chunk, and a chunk that ends inside the next frame', () => {
    const frames = [encodeFrame(message(12, 1)), encodeFrame(message(100, 2)), encodeFrame(message(13, 3))];
    const stream = Buffer.concat(frames);
    const whole = decodeAll([stream]);
    expect(whole.messages).toEqual([message(12, 1), message(100, 2), message(13, 3)]);
    const cut = frames[0]!.length + frames[1]!.length + 5;
    const decoder = new FrameDecoder();
    decoder.push(stream.subarray(0, cut));
    expect([decoder.next(), decoder.next(), decoder.next()]).toEqual([message(12, 1), message(100, 2), 'incomplete']);
    expect(decoder.pending).toBe(5);
    decoder.push(stream.subarray(cut));
    expect(decoder.next()).toEqual(message(13, 3));
    expect(decoder.pending).toBe(0);
  });

  it('rejects a frame that announces less than a DNS header as soon as its length is in', () => {
    for (const length of [0, 1, 11]) {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(length, 0);
      expect(decodeAll([prefix]).last).toBe('too-short');
    }
    // after good frames, in the same chunk
    const { messages, last } = decodeAll([Buffer.concat([encodeFrame(message(12, 9)), Buffer.from([0, 11, 1, 2])])]);
    expect(messages).toEqual([message(12, 9)]);
    expect(last).toBe('too-short');
  });

  it('forgets buffered bytes on clear', () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame(message(20, 4)).subarray(0, 10));
    decoder.clear();
    expect(decoder.pending).toBe(0);
    expect(decoder.next()).toBe('incomplete');
  });
});
