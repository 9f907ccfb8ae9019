/**
 * The TFTP server on loopback sockets with real files: transfers with and without options, windows, block number
 * wrap, retransmission, refusals (write requests, names escaping the root, non-regular and unreadable files), the
 * transfer cap, stray transfer ids and junk on port 69.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { createLogger, type Logger } from '../../src/log.js';
import { encodeTftpPacket, decodeTftpPacket, TftpErrorCode } from '../../src/tftp/codec.js';
import { TftpServer, type TftpServerOptions } from '../../src/tftp/server.js';
import { tftpFetch } from '../support/tftp-client.js';
import { waitFor } from '../support/wait.js';

let dir: string;
let root: string;
const files: Record<string, Buffer> = {};

function bindLoopback(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

const servers: TftpServer[] = [];
async function startServer(extra: Partial<TftpServerOptions> = {}): Promise<{ server: TftpServer; port: number; logs: Record<string, unknown>[] }> {
  const socket = await bindLoopback();
  const logs: Record<string, unknown>[] = [];
  const logger: Logger = createLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  // 2 s per block unless a test is about time-outs (those ask for 100 ms): with 100 ms everywhere a loaded machine's
  // pause between a DATA and its ACK made the server send again, which the exact packet counts below saw
  const server = new TftpServer({ socket, openTransferSocket: bindLoopback, root, logger, defaultTimeoutMs: 2000, maxRetries: 3, ...extra });
  server.start();
  servers.push(server);
  return { server, port: socket.address().port, logs };
}

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'natd-tftp-')));
  root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'sub'), { recursive: true });
  files['small.txt'] = Buffer.from('hello over tftp\n');
  files['exact.bin'] = randomBytes(1024);
  files['big.bin'] = randomBytes(300_000);
  files['sub/nested.cfg'] = Buffer.from('#!ipxe\necho nested\n');
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(root, name), data, { mode: 0o644 });
  writeFileSync(path.join(dir, 'secret'), 'outside the root');
  writeFileSync(path.join(root, 'private'), 'mode 0600', { mode: 0o600 });
  chmodSync(path.join(root, 'private'), 0o600);
  symlinkSync('../secret', path.join(root, 'escape'));
  symlinkSync(path.join(dir, 'secret'), path.join(root, 'escape-absolute'));
  symlinkSync('/etc', path.join(root, 'etc'));
  symlinkSync('small.txt', path.join(root, 'alias'));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('read transfers', () => {
  it('RFC 1350 without options: 512-byte blocks from a new port; a file of whole blocks ends with an empty block', async () => {
    const { server, port, logs } = await startServer();
    const small = await tftpFetch({ host: '127.0.0.1', port, file: 'small.txt' });
    expect(small.data).toEqual(files['small.txt']);
    expect(small.oack).toBeUndefined();
    expect(small.serverPort).not.toBe(port);
    const exact = await tftpFetch({ host: '127.0.0.1', port, file: 'exact.bin' });
    expect(exact.data).toEqual(files['exact.bin']);
    expect(exact.dataPackets).toBe(3); // 512 + 512 + 0
    // the last ACK is on its way to the server when the client is done: wait for it to be handled (a fixed 50 ms was
    // shorter than a loaded machine's pause between the client's resolve and the server's read)
    await waitFor('the second transfer ended at the server', () => server.stats().active === 0, 5000, 10);
    expect(server.stats()).toMatchObject({ requests: 2, active: 0, transfers: { complete: 2 }, bytesSent: 16 + 1024 });
    expect(logs.filter((l) => l.msg === 'TFTP transfer ended').map((l) => [l.file, l.result, l.bytes])).toEqual([['small.txt', 'complete', 16], ['exact.bin', 'complete', 1024]]);
  });

  it('blksize, tsize and windowsize are acknowledged (OACK) and used', async () => {
    const { port } = await startServer();
    const r = await tftpFetch({ host: '127.0.0.1', port, file: 'big.bin', options: { blksize: '1400', tsize: '0', windowsize: '8' } });
    expect(r.oack).toEqual(new Map([['blksize', '1400'], ['tsize', '300000'], ['windowsize', '8']]));
    expect(r.data).toEqual(files['big.bin']);
    expect(r.dataPackets).toBe(Math.ceil(300_000 / 1400));
  });

  it('a symlink inside the root and a file in a subdirectory are served', async () => {
    const { port } = await startServer();
    expect((await tftpFetch({ host: '127.0.0.1', port, file: 'alias' })).data).toEqual(files['small.txt']);
    expect((await tftpFetch({ host: '127.0.0.1', port, file: 'sub/nested.cfg', options: { tsize: '0' } })).data).toEqual(files['sub/nested.cfg']);
  });

  it('netascii converts line ends and acknowledges no tsize', async () => {
    const { port } = await startServer();
    const r = await tftpFetch({ host: '127.0.0.1', port, file: 'sub/nested.cfg', mode: 'netascii', options: { tsize: '0', blksize: '512' } });
    expect(r.data?.toString('latin1')).toBe('#!ipxe\r\necho nested\r\n');
    expect(r.oack).toEqual(new Map([['blksize', '512']]));
  });

  it('block numbers wrap from 65535 to 0 (a transfer of more than 65535 blocks)', async () => {
    const data = randomBytes(65_540 * 8 + 3);
    writeFileSync(path.join(root, 'wrap.bin'), data);
    const { port } = await startServer();
    const r = await tftpFetch({ host: '127.0.0.1', port, file: 'wrap.bin', options: { blksize: '8', windowsize: '64' }, timeoutMs: 60_000 });
    expect(r.data?.length).toBe(data.length);
    expect(r.data).toEqual(data);
  }, 60_000);

  it('a lost ACK: the window is sent again after the timeout, and the transfer completes', async () => {
    const { server, port } = await startServer({ defaultTimeoutMs: 100 });
    const r = await tftpFetch({ host: '127.0.0.1', port, file: 'big.bin', options: { blksize: '1400', windowsize: '4' }, sendAck: (_b, i) => i !== 3 });
    expect(r.data).toEqual(files['big.bin']);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.stats().retransmits).toBeGreaterThanOrEqual(4);
  });

  it('a client that stops answering: bounded retries, then the transfer ends (timeout) and its slot is free', async () => {
    const { server, port } = await startServer({ defaultTimeoutMs: 100 });
    const r = await tftpFetch({ host: '127.0.0.1', port, file: 'big.bin', sendAck: (b) => b < 2, timeoutMs: 1500 });
    expect(r.error).toEqual({ code: 0, message: 'timed out' });
    expect(server.stats()).toMatchObject({ active: 0, transfers: { timeout: 1 }, bytesSent: 512 });
  });

  it('a duplicate ACK is not answered (no Sorcerer\'s Apprentice)', async () => {
    const { port } = await startServer({ defaultTimeoutMs: 5000 });
    // ACK every block twice: each duplicate would double the DATA if the server answered it
    const client = await bindLoopback();
    const data: number[] = [];
    const done = new Promise<void>((resolve) => {
      client.on('message', (msg, rinfo) => {
        const p = decodeTftpPacket(msg);
        if (p.op !== 'data') return;
        data.push(p.block);
        const ack = encodeTftpPacket({ op: 'ack', block: p.block });
        client.send(ack, rinfo.port, '127.0.0.1');
        client.send(ack, rinfo.port, '127.0.0.1');
        if (p.data.length < 512) resolve();
      });
    });
    client.send(encodeTftpPacket({ op: 'rrq', filename: 'exact.bin', mode: 'octet', options: new Map() }), port, '127.0.0.1');
    await done;
    await new Promise((r) => setTimeout(r, 100));
    client.close();
    expect(data).toEqual([1, 2, 3]);
  });
});

describe('refusals (the server is read-only and confined to its root)', () => {
  const cases: Array<[string, string, number]> = [
    ['../secret', 'dot-dot', TftpErrorCode.ACCESS_VIOLATION],
    ['sub/../../secret', 'dot-dot', TftpErrorCode.ACCESS_VIOLATION],
    ['/etc/passwd', 'absolute-path', TftpErrorCode.ACCESS_VIOLATION],
    [`${'/'}${'x'}`, 'absolute-path', TftpErrorCode.ACCESS_VIOLATION],
    ['escape', 'outside-root', TftpErrorCode.ACCESS_VIOLATION],
    ['escape-absolute', 'outside-root', TftpErrorCode.ACCESS_VIOLATION],
    ['etc/passwd', 'outside-root', TftpErrorCode.ACCESS_VIOLATION],
    ['sub', 'not-regular', TftpErrorCode.ACCESS_VIOLATION],
    ['fifo', 'not-regular', TftpErrorCode.ACCESS_VIOLATION],
    ['private', 'not-world-readable', TftpErrorCode.ACCESS_VIOLATION],
    ['missing', 'not-found', TftpErrorCode.FILE_NOT_FOUND],
    ['sub\\..\\..\\secret', 'bad-name', TftpErrorCode.ACCESS_VIOLATION],
  ];
  it.each(cases)('%s → %s', async (file, why, code) => {
    const { server, port } = await startServer();
    const r = await tftpFetch({ host: '127.0.0.1', port, file });
    expect(r.data).toBeUndefined();
    expect(r.error?.code).toBe(code);
    expect(r.serverPort).toBe(port); // refusals leave from port 69: no socket spent
    expect(server.stats()).toMatchObject({ requests: 0, active: 0, refused: { [why]: 1 } });
  });

  it('a write request gets an access violation and writes nothing', async () => {
    const { server, port } = await startServer();
    const client = await bindLoopback();
    const reply = new Promise<Buffer>((resolve) => client.once('message', resolve));
    client.send(encodeTftpPacket({ op: 'wrq', filename: 'new.bin', mode: 'octet', options: new Map() }), port, '127.0.0.1');
    expect(decodeTftpPacket(await reply)).toMatchObject({ op: 'error', code: TftpErrorCode.ACCESS_VIOLATION });
    client.close();
    expect(server.stats().refused).toEqual({ 'write-request': 1 });
    expect(() => realpathSync(path.join(root, 'new.bin'))).toThrow();
  });
});

describe('limits and hostile input', () => {
  it('--tftp-max: a request beyond the cap is refused at once ("busy"), the running transfer is unharmed', async () => {
    const { server, port } = await startServer({ maxTransfers: 1, defaultTimeoutMs: 2000 });
    const first = tftpFetch({ host: '127.0.0.1', port, file: 'big.bin', sendAck: (_b, i) => i !== 0 });
    await new Promise((r) => setTimeout(r, 50));
    const second = await tftpFetch({ host: '127.0.0.1', port, file: 'small.txt' });
    expect(second.error?.message).toMatch(/busy/);
    expect((await first).data).toEqual(files['big.bin']);
    expect(server.stats().refused).toEqual({ busy: 1 });
  });

  it('one client address gets at most its share of the slots (default a fifth of --tftp-max); other guests still get theirs', async () => {
    const { server, port } = await startServer({ maxTransfers: 10, defaultTimeoutMs: 2000 });
    // two transfers held open (their first ACK is lost) use up 127.0.0.1's share of 2
    const held = [0, 1].map(() => tftpFetch({ host: '127.0.0.1', port, file: 'big.bin', sendAck: (_b, i) => i !== 0 }));
    await new Promise((r) => setTimeout(r, 50));
    const third = await tftpFetch({ host: '127.0.0.1', port, file: 'small.txt' });
    expect(third.error?.message).toMatch(/too many transfers from this address/);
    for (const h of await Promise.all(held)) expect(h.data).toEqual(files['big.bin']);
    expect(server.stats().refused).toEqual({ 'client-busy': 1 });
    // the share is free again
    expect((await tftpFetch({ host: '127.0.0.1', port, file: 'small.txt' })).data).toEqual(files['small.txt']);
  });

  it('a packet from another transfer id does not disturb the transfer (the transfer socket is connected to its client)', async () => {
    const { server, port } = await startServer({ defaultTimeoutMs: 300 });
    const stranger = await bindLoopback();
    let strangerReplies = 0;
    stranger.on('message', () => strangerReplies++);
    const client = await bindLoopback();
    const received: number[] = [];
    const done = new Promise<void>((resolve) => {
      client.on('message', (msg, rinfo) => {
        const p = decodeTftpPacket(msg);
        if (p.op !== 'data') return;
        received.push(p.block);
        if (p.block === 1) {
          // a stranger ACKs block 1 and sends an RRQ-shaped packet to the transfer's port first
          stranger.send(encodeTftpPacket({ op: 'ack', block: 1 }), rinfo.port, '127.0.0.1');
          stranger.send(encodeTftpPacket({ op: 'error', code: 0, message: 'stop' }), rinfo.port, '127.0.0.1');
          setTimeout(() => client.send(encodeTftpPacket({ op: 'ack', block: 1 }), rinfo.port, '127.0.0.1'), 50);
          return;
        }
        client.send(encodeTftpPacket({ op: 'ack', block: p.block }), rinfo.port, '127.0.0.1');
        if (p.data.length < 512) resolve();
      });
    });
    client.send(encodeTftpPacket({ op: 'rrq', filename: 'exact.bin', mode: 'octet', options: new Map() }), port, '127.0.0.1');
    await done;
    await new Promise((res) => setTimeout(res, 100));
    expect(received).toEqual([1, 2, 3]); // block 2 only after the client's own ACK; no retransmission either
    expect(strangerReplies).toBe(0);
    expect(server.stats().transfers).toEqual({ complete: 1 });
    stranger.close();
    client.close();
  });

  it('junk, ACKs, DATA and ERRORs on port 69 are counted and dropped, never answered', async () => {
    const { server, port } = await startServer();
    const client = await bindLoopback();
    let replies = 0;
    client.on('message', () => replies++);
    const junk = [Buffer.from([0, 4, 0, 1]), Buffer.from([0, 3, 0, 1, 9]), Buffer.from([0, 5, 0, 0, 0]), Buffer.from([0xff]), Buffer.from([0, 1, 0x41]), Buffer.alloc(70_000 > 65_507 ? 65_000 : 0, 7)];
    for (const j of junk) client.send(j, port, '127.0.0.1');
    const droppedSum = () => Object.values(server.stats().dropped).reduce((a, b) => a + b, 0);
    // every datagram handled (polled: a loaded machine can pause longer than a fixed wait), then 100 ms for any reply
    await waitFor('the junk handled', () => droppedSum() >= junk.length, 5000, 10);
    await new Promise((r) => setTimeout(r, 100));
    client.close();
    expect(replies).toBe(0);
    const dropped = server.stats().dropped;
    expect(Object.values(dropped).reduce((a, b) => a + b, 0)).toBe(junk.length);
    expect(dropped['not-a-request']).toBe(3);
  });

  it('a repeated RRQ from the same client port while its transfer runs is ignored', async () => {
    const { server, port } = await startServer({ defaultTimeoutMs: 2000 });
    const client = await bindLoopback();
    const rrq = encodeTftpPacket({ op: 'rrq', filename: 'small.txt', mode: 'octet', options: new Map() });
    const ports = new Set<number>();
    client.on('message', (_m, rinfo) => ports.add(rinfo.port));
    client.send(rrq, port, '127.0.0.1');
    client.send(rrq, port, '127.0.0.1');
    // both requests handled (polled, not a fixed wait a loaded machine can outlast), then 100 ms for a second answer
    await waitFor('both requests handled', () => server.stats().requests + (server.stats().dropped['duplicate-request'] ?? 0) >= 2, 5000, 10);
    await new Promise((r) => setTimeout(r, 100));
    client.close();
    expect(ports.size).toBe(1);
    expect(server.stats()).toMatchObject({ requests: 1, dropped: { 'duplicate-request': 1 } });
  });
});
