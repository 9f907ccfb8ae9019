/**
 * issue 18: the lease journal's writer thread (native/journal_writer.c), as the lease store uses it: batches are
 * appended in submission order (queued ones grouped into one write + fdatasync), each reports done once, in order;
 * the replies a batch carries are sent only when it is durable; a failure fails that batch and every later one
 * (nothing written, nothing sent) until reset.
 */
import dgram from 'node:dgram';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDeviceUdpSocket, openJournalWriter, type JournalWriter } from '../../src/native.js';
import { parseIpv4 } from '../../src/net/ipv4.js';
import { waitFor } from '../support/wait.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempFile(content = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'natd-journal-writer-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'journal');
  writeFileSync(file, content);
  return file;
}

function open(fd: number): JournalWriter {
  const writer = openJournalWriter(fd)!;
  cleanups.push(() => writer.close());
  return writer;
}

interface Done { errno: number; syncMicros: number; waitMicros: number; replies: number[] | undefined; order: number }
let order = 0;
function submit(writer: JournalWriter, data: string | Buffer, replies?: Buffer[], meta?: Uint32Array): Promise<Done> {
  return new Promise((resolve) =>
    writer.submit(Buffer.isBuffer(data) ? data : Buffer.from(data), replies, meta, (errno, syncMicros, waitMicros, r) =>
      resolve({ errno, syncMicros, waitMicros, replies: r, order: order++ })));
}

/** A UDP receiver on 127.0.0.1 and a device-bound socket to send to it from (closed after the test). */
async function udpPeer(): Promise<{ received: string[]; port: number; sendFd: number }> {
  const receiver = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => receiver.close());
  const received: string[] = [];
  receiver.on('message', (m) => received.push(m.toString()));
  const sendFd = openDeviceUdpSocket('lo', '127.0.0.1', 0);
  cleanups.push(() => closeSync(sendFd));
  return { received, port: receiver.address().port, sendFd };
}

describe('journal writer thread (issue 18)', () => {
  it('appends batches submitted without waiting in submission order, each done once and in order, grouped into fewer syncs', async () => {
    const file = tempFile('first\n');
    const fd = openSync(file, 'a');
    cleanups.push(() => closeSync(fd));
    const writer = open(fd);
    const big = Buffer.alloc(3 * 1024 * 1024, 0x61); // more than one write may take at once
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
    const done = await Promise.all([...lines.slice(0, 100).map((l) => submit(writer, l)), submit(writer, big), submit(writer, Buffer.alloc(0)), ...lines.slice(100).map((l) => submit(writer, l))]);
    expect(done.every((d) => d.errno === 0 && d.waitMicros >= 0 && d.replies === undefined)).toBe(true);
    expect(done.map((d) => d.order)).toEqual([...done.map((d) => d.order)].sort((a, b) => a - b));
    const syncs = done.filter((d) => d.syncMicros > 0).length;
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThan(done.length); // batches queued during a sync shared the next one
    const data = readFileSync(file);
    const text = (from: number, to: number) => data.subarray(from, to).toString();
    const head = 'first\n' + lines.slice(0, 100).join('');
    expect(text(0, head.length)).toBe(head);
    expect(data.subarray(head.length, head.length + big.length).equals(big)).toBe(true);
    expect(text(head.length + big.length, data.length)).toBe(lines.slice(100).join(''));
  });

  it('fails a batch and every later one without writing until reset, then appends again', async () => {
    const file = tempFile('x\n');
    const readOnly = openSync(file, 'r');
    cleanups.push(() => closeSync(readOnly));
    const writer = open(readOnly);
    const failed = await Promise.all([submit(writer, 'y\n'), submit(writer, 'z\n')]);
    expect(failed.map((d) => d.errno)).toEqual([os.constants.errno.EBADF, os.constants.errno.EBADF]);
    expect(await submit(writer, 'later\n')).toMatchObject({ errno: os.constants.errno.EBADF, syncMicros: 0 }); // still failed: not written
    expect(readFileSync(file, 'utf8')).toBe('x\n');
    const fd = openSync(file, 'a');
    cleanups.push(() => closeSync(fd));
    writer.reset(fd);
    expect(await submit(writer, 'ok\n')).toMatchObject({ errno: 0 });
    expect(readFileSync(file, 'utf8')).toBe('x\nok\n');
  });

  it('sends a batch\'s replies once it is durable, and none of a failed batch', async () => {
    const { received, port, sendFd } = await udpPeer();
    const to = [sendFd, parseIpv4('127.0.0.1')!, port];

    const file = tempFile();
    const fd = openSync(file, 'a');
    cleanups.push(() => closeSync(fd));
    const writer = open(fd);
    const ok = await submit(writer, 'bind\n', [Buffer.from('ack-1'), Buffer.from('ack-2')], Uint32Array.from([...to, ...to]));
    expect(ok).toMatchObject({ errno: 0, replies: [0, 0] });
    expect(readFileSync(file, 'utf8')).toBe('bind\n');

    const readOnly = openSync(file, 'r');
    cleanups.push(() => closeSync(readOnly));
    writer.reset(readOnly);
    expect(await submit(writer, 'lost\n', [Buffer.from('never')], Uint32Array.from(to))).toMatchObject({ errno: os.constants.errno.EBADF, replies: undefined });
    // the replies are in the peer's socket: polled until read (a fixed wait can end first when the machine is loaded),
    // then 100 ms more for one that should not come
    await waitFor('the two replies read', () => received.length >= 2, 5000, 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received.sort()).toEqual(['ack-1', 'ack-2']);
  });

  it('a reply whose socket is gone fails alone: the batch is durable, the other socket\'s reply still goes', async () => {
    const { received, port, sendFd } = await udpPeer();
    const notSocket = openSync('/dev/null', 'r');
    cleanups.push(() => closeSync(notSocket));
    const local = parseIpv4('127.0.0.1')!;
    const file = tempFile();
    const fd = openSync(file, 'a');
    cleanups.push(() => closeSync(fd));
    const writer = open(fd);
    const done = await submit(writer, 'bind\n', [Buffer.from('x'), Buffer.from('y'), Buffer.from('ack')],
      Uint32Array.from([notSocket, local, port, notSocket, local, port, sendFd, local, port]));
    expect(done).toMatchObject({ errno: 0, replies: [os.constants.errno.ENOTSOCK, os.constants.errno.ENOTSOCK, 0] });
    expect(readFileSync(file, 'utf8')).toBe('bind\n');
    await waitFor('the reply read', () => received.length >= 1, 5000, 10); // then 100 ms for one that should not come
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toEqual(['ack']);
  });

  it('rejects bad arguments synchronously (a reply to port 0, too short a meta array)', () => {
    const fd = openSync(tempFile(), 'a');
    cleanups.push(() => closeSync(fd));
    const writer = open(fd);
    expect(() => writer.submit(Buffer.from('a\n'), [Buffer.from('r')], Uint32Array.from([fd, 1, 0]), () => {})).toThrow(TypeError);
    expect(() => writer.submit(Buffer.from('a\n'), [Buffer.from('r')], new Uint32Array(2), () => {})).toThrow(TypeError);
  });
});
