/**
 * The send queue shared by the batched UDP transports (src/dns/batch-sender.ts): when answers leave, in how many send
 * calls, with which destination words, and what a failed call reports. The transports' own tests (udp-batch,
 * dns-ipv6) check the same through real sockets for each family.
 */
import { describe, expect, it } from 'vitest';
import { BatchSender } from '../../src/dns/batch-sender.js';

function sender(stride = 2, batch = 4, result?: () => { failed: number; errno: number } | undefined) {
  const calls: { texts: string[]; meta: number[] }[] = [];
  const failures: { count: number; why: unknown }[] = [];
  const s = new BatchSender({
    stride,
    batch,
    send: (datagrams, meta, count) => {
      calls.push({ texts: datagrams.slice(0, count).map(String), meta: [...meta.subarray(0, stride * count)] });
      return result?.();
    },
    failed: (count, why) => void failures.push({ count, why }),
  });
  const add = (text: string, ...words: number[]) => {
    const at = s.metaOffset();
    words.forEach((w, i) => (s.meta[at + i] = w));
    s.push(Buffer.from(text));
  };
  return { s, calls, failures, add };
}

describe('BatchSender', () => {
  it('sends the answers of a receive batch in one call when the batch ends, a full queue at once', () => {
    const { s, calls, add } = sender();
    s.beginBatch();
    for (let i = 0; i < 6; i++) add(`a${i}`, 10 + i, 1000 + i);
    expect(calls).toEqual([{ texts: ['a0', 'a1', 'a2', 'a3'], meta: [10, 1000, 11, 1001, 12, 1002, 13, 1003] }]);
    s.endBatch();
    expect(calls[1]).toEqual({ texts: ['a4', 'a5'], meta: [14, 1004, 15, 1005] });
    s.endBatch(); // nothing queued: no empty send
    expect(calls).toHaveLength(2);
  });

  it('sends answers given outside a batch together at the end of the microtask run', async () => {
    const { calls, add } = sender(5, 64);
    const released = Promise.resolve();
    for (let i = 0; i < 5; i++) void released.then(() => add(`r${i}`, 1, 2, 3, 4, 500 + i));
    await released;
    await Promise.resolve();
    expect(calls.map((c) => c.texts)).toEqual([['r0', 'r1', 'r2', 'r3', 'r4']]);
    expect(calls[0]!.meta.slice(20)).toEqual([1, 2, 3, 4, 504]);
  });

  it('reports the answers the addon refused and those of a call that threw, and carries on', () => {
    let mode: 'errno' | 'throw' | 'ok' = 'errno';
    const { s, failures, calls, add } = sender(2, 4, () => {
      if (mode === 'throw') throw new Error('EBADF');
      return mode === 'errno' ? { failed: 1, errno: 22 } : undefined;
    });
    s.beginBatch();
    add('x', 1, 0);
    add('y', 1, 53);
    s.endBatch();
    mode = 'throw';
    s.beginBatch();
    add('z', 1, 53);
    s.endBatch();
    mode = 'ok';
    s.beginBatch();
    add('w', 1, 53);
    s.endBatch();
    expect(failures).toEqual([{ count: 1, why: { errno: 22 } }, { count: 1, why: { error: expect.any(Error) } }]);
    expect(calls.map((c) => c.texts)).toEqual([['x', 'y'], ['z'], ['w']]);
  });

  it('drops what is queued on close and sends nothing after', async () => {
    const { s, calls, add } = sender();
    add('late', 1, 53); // queued for the end of the microtask run
    s.close();
    add('after', 1, 53);
    await Promise.resolve();
    s.endBatch();
    expect(calls).toEqual([]);
  });
});
