/**
 * Issue 17: the name router reuses its bulk read buffers (routed-connection.ts bulkPool). A buffer may go back to
 * the pool only once the write to the client that holds it has completed; returned earlier, another connection's
 * next read lands in it while the kernel still has to take the bytes, and a client receives another connection's
 * data. That only shows when a write is left pending right after a small read into a pooled buffer (a connection
 * that just did a bulk read), and another connection reads into that buffer before the kernel took the bytes: a
 * stalled client alone does not do it (its writes are bulk ones, and the connection pauses until they complete).
 *
 * So: many connections at once through one router over loopback, each downloading its own byte pattern (the seed is
 * in the request). The guest sends bursts just over the bulk-read size, each followed 1 ms later by a small tail, so
 * the router's reads alternate between bulk and small ones into pooled buffers. Half the clients (a Python fixture:
 * small receive buffer and MSS, which Node cannot set, so the router's send buffer stays small) read fast, the
 * other half read up to a megabyte or so and then stop for 40-100 ms, so the kernel buffers fill while the router
 * is still writing tails. Every connection's bytes are checked (length and SHA-256) against its own pattern.
 *
 * Checked against the bug it is for: with the buffer pushed back to the pool right after socket.write() instead of
 * from the write's callback, 8 of 8 runs failed (one round alone: 9 of 10); the correct code passed 8 of 8.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NameRouter, type RouterLimits } from '../../src/router/name-router.js';
import { recordingLogger } from '../support/recording-logger.js';
import { FIXTURES } from '../support/paths.js';
import { waitFor } from '../support/wait.js';
import { prng } from '../support/prng.js';

const run = promisify(execFile);
const CLIENT = path.join(FIXTURES, 'router-pool-client.py');

const LIMITS: RouterLimits = {
  maxConnections: 500,
  maxConnectionsPerClient: 500,
  headTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxHeadBytes: 16_384,
  connectTimeoutMs: 5000,
};

const CONNECTIONS = 16;
const ROUNDS = 2;
const BYTES_PER_CONNECTION = 4 * 1024 * 1024;


/** byte i of connection `seed`'s download: differs between connections at almost every offset */
function patternByte(seed: number, i: number): number {
  return ((i * 31) ^ (i >>> 9) ^ (seed * 0x9e)) & 0xff ^ ((i >>> 17) + seed) & 0xff;
}

function pattern(seed: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = patternByte(seed, offset + i);
  return b;
}

/** the guest: GET /SEED → BYTES_PER_CONNECTION bytes of that seed's pattern, bursts of 33-64 KiB and tails of 8-31 KiB */
function patternGuest(): net.Server {
  return net.createServer((socket) => {
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (d: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const seed = Number(/^GET \/(\d+) /.exec(head)?.[1]);
      const random = prng(seed + 1);
      let sent = 0;
      // a burst (bulk reads in the router), 1 ms later a small tail (a small read into the connection's pooled
      // buffer, written while the client is still busy with the burst), then a short pause
      let tail = false;
      const pump = (): void => {
        if (sent >= BYTES_PER_CONNECTION) {
          socket.end();
          return;
        }
        const size = tail ? 8 * 1024 + Math.floor(random() * 23 * 1024) : 33 * 1024 + Math.floor(random() * 31 * 1024);
        const chunk = pattern(seed, sent, Math.min(size, BYTES_PER_CONNECTION - sent));
        sent += chunk.length;
        tail = !tail;
        const next = () => setTimeout(pump, tail ? 1 : Math.floor(random() * 3));
        if (socket.write(chunk)) next();
        else socket.once('drain', next);
      };
      pump();
    });
  });
}

/** what the client fixture saw per seed: byte count and SHA-256 of everything it read */
type Seen = Record<string, { bytes: number; sha256: string | null }>;

function expectedSha256(seed: number): string {
  const h = createHash('sha256');
  for (let offset = 0; offset < BYTES_PER_CONNECTION; offset += 1 << 20) h.update(pattern(seed, offset, Math.min(1 << 20, BYTES_PER_CONNECTION - offset)));
  return h.digest('hex');
}

describe('name router: reused bulk read buffers under backpressure', () => {
  let guest: net.Server;
  let guestPort: number;
  let router: NameRouter;
  let port: number;

  beforeAll(async () => {
    guest = patternGuest();
    await new Promise<void>((resolve) => guest.listen(0, '127.0.0.1', resolve));
    guestPort = (guest.address() as net.AddressInfo).port;
    router = new NameRouter({
      logger: recordingLogger(),
      limits: LIMITS,
      lookup: (name) => (name === 'pattern.test' ? { address: '127.0.0.1', port: guestPort, route: 'pattern' } : undefined),
      closeGraceMs: 200,
    });
    await router.listen([{ port: 0, address: '127.0.0.1' }]);
    port = router.stats().listening[0]!.port;
  });

  afterAll(async () => {
    await router.close();
    guest.close();
  });

  it(`${ROUNDS} rounds of ${CONNECTIONS} concurrent downloads, half by slow, bursty readers: each gets exactly its own bytes`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const first = round * CONNECTIONS;
      const { stdout } = await run('/usr/bin/python3', [CLIENT, String(port), 'pattern.test', String(CONNECTIONS), String(first)], { timeout: 150_000, maxBuffer: 1 << 20 });
      const seen = JSON.parse(stdout) as Seen;
      const wrong: string[] = [];
      for (let seed = first; seed < first + CONNECTIONS; seed++) {
        const got = seen[String(seed)];
        if (!got || got.bytes !== BYTES_PER_CONNECTION || got.sha256 !== expectedSha256(seed)) wrong.push(`${seed}: ${JSON.stringify(got)}`);
      }
      expect(wrong, `round ${round}: connections that did not get exactly their own pattern`).toEqual([]);
    }
    expect(router.stats().routes.pattern!.bytesOut).toBe(ROUNDS * CONNECTIONS * BYTES_PER_CONNECTION);
    await waitFor('connections released', () => router.stats().active === 0);
  }, 60_000);
});
