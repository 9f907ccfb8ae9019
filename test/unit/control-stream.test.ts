import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ControlServer } from '../../src/control/server.js';
import { ControlStream } from '../../src/control/stream.js';
import { watchDaemon } from '../../src/control/client.js';
import { silentLogger } from '../../src/log.js';

const root = () => ({ uid: 0, gid: 0, pid: 1 });
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function serverWith(stream: ControlStream): Promise<{ server: ControlServer; socketPath: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'natd-stream-'));
  const socketPath = path.join(dir, 'control.sock');
  const server = new ControlServer(socketPath, { 'leases.watch': () => stream, status: () => ({ ok: 1 }) }, silentLogger, root, 0);
  await server.start();
  cleanup.push(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, socketPath };
}

describe('control socket streams', () => {
  it('delivers items in order until the server closes, and unsubscribes on disconnect', async () => {
    let send: ((item: unknown) => void) | undefined;
    let stopped = 0;
    const { server, socketPath } = await serverWith(new ControlStream((s) => ((send = s), () => void stopped++)));
    const seen: unknown[] = [];
    const watching = watchDaemon(socketPath, 'leases.watch', {}, (item) => seen.push(item));
    while (!send) await sleep(10);
    for (let i = 0; i < 100; i++) send({ n: i });
    while (seen.length < 100) await sleep(10);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, n) => ({ n })));
    expect(server.stats().watchers).toBe(1);
    await server.close();
    await watching; // the stream ends when the daemon goes away
    for (let i = 0; i < 100 && stopped === 0; i++) await sleep(10); // the server side's 'close' follows
    expect(stopped).toBe(1);
    expect(server.stats().watchers).toBe(0);
  });

  it('cuts off a watcher that does not read instead of buffering for it', async () => {
    let send: ((item: unknown) => void) | undefined;
    const { server, socketPath } = await serverWith(new ControlStream((s) => ((send = s), () => undefined)));
    const conn = net.createConnection(socketPath);
    conn.on('error', () => undefined);
    conn.write(JSON.stringify({ command: 'leases.watch', args: {} }) + '\n');
    conn.pause(); // never reads
    while (!send) await sleep(10);
    const item = { text: 'x'.repeat(1000) };
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 20_000 && server.stats().watchersCutOff === 0; i++) {
      send(item);
      if (i % 500 === 0) await sleep(1); // let the socket fill the kernel buffers
    }
    expect(server.stats().watchersCutOff).toBe(1);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
    conn.destroy();
  });

  it('answers a non-stream command as before, and a refusal as an error', async () => {
    const { socketPath } = await serverWith(new ControlStream(() => () => undefined));
    await expect(watchDaemon(socketPath, 'nope', {}, () => undefined)).rejects.toThrow(/unknown command "?nope/);
  });
});
