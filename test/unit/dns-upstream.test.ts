import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { UpstreamClient } from '../../src/dns/upstream.js';
import { startFakeUpstream } from './support/fake-upstream.js';

/** dns-packet's decode, typed loosely enough for assertions (its own typings hide rcode and answer data). */
interface Decoded {
  id: number;
  flags: number;
  rcode: string;
  questions: { name: string; type: string }[];
  answers: { type: string; data: unknown }[];
  additionals: { type: string; flags?: number }[];
}
const decode = (buf: Buffer): Decoded => dnsPacket.decode(buf) as unknown as Decoded;


function makeQuery(name: string, type: string, opts: { id?: number; dnssecOk?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    id: opts.id ?? 4242,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A' }],
    additionals: opts.dnssecOk === undefined ? [] : [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0, options: [] } as never],
  });
}

const keyOf = (name: string, type: number): string => `${name}|${type}|1`;

/** An in-test UDP responder on 127.0.0.1 whose behaviour each test scripts. */
interface Responder {
  port: number;
  socket: dgram.Socket;
  queries: { msg: Buffer; rinfo: dgram.RemoteInfo }[];
  answering: boolean;
  close(): void;
}

function answerTo(query: Buffer, address: string, overrides: { id?: number; name?: string } = {}): Buffer {
  const q = dnsPacket.decode(query);
  const question = { ...q.questions![0]!, ...(overrides.name ? { name: overrides.name } : {}) };
  return dnsPacket.encode({
    id: overrides.id ?? q.id!,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [question],
    answers: [{ name: question.name, type: 'A', ttl: 60, data: address }],
  });
}

async function startResponder(answering: boolean, onQuery?: (r: Responder, msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<Responder> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const responder: Responder = {
    port: socket.address().port,
    socket,
    queries: [],
    answering,
    close: () => socket.close(),
  };
  socket.on('message', (msg, rinfo) => {
    responder.queries.push({ msg, rinfo });
    if (onQuery) onQuery(responder, msg, rinfo);
    else if (responder.answering) socket.send(answerTo(msg, '192.0.2.1'), rinfo.port, rinfo.address);
  });
  return responder;
}

describe('UpstreamClient', () => {
  let dir: string;
  let logFile: string;
  let fake: { port: number; child: ChildProcess };
  const clients: UpstreamClient[] = [];
  const responders: Responder[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natd-upstream-'));
    logFile = join(dir, 'queries.log');
    fake = await startFakeUpstream(logFile);
  });
  afterAll(async () => {
    fake.child.kill();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const r of responders.splice(0)) r.close();
  });

  const client = (opts: Partial<ConstructorParameters<typeof UpstreamClient>[0]> & { servers: { address: string; port?: number }[] }): UpstreamClient => {
    const c = new UpstreamClient({ logger: silentLogger, ...opts });
    clients.push(c);
    return c;
  };
  const responder = async (...args: Parameters<typeof startResponder>): Promise<Responder> => {
    const r = await startResponder(...args);
    responders.push(r);
    return r;
  };

  it('forwards a query and returns the matching reply with the upstream id', async () => {
    const c = client({ servers: [{ address: '127.0.0.1', port: fake.port }] });
    const raw = makeQuery('www.example.test', 'A');
    const reply = await c.query(raw, keyOf('www.example.test', 1));
    expect(reply).toBeDefined();
    const decoded = decode(reply!);
    expect(decoded.questions![0]!.name).toBe('www.example.test');
    expect(decoded.answers![0]!.data).toMatch(/^203\.0\.113\.\d+$/);
    expect(decoded.rcode).toBe('NOERROR');
    expect(c.stats()).toMatchObject({ sent: 1, received: 1, timeouts: 0, failures: 0, spoofed: 0 });
  });

  it('passes EDNS, the DO bit and unknown types through as bytes', async () => {
    const c = client({ servers: [{ address: '127.0.0.1', port: fake.port }] });
    const reply = await c.query(makeQuery('raw.example.test', 'UNKNOWN_64999', { dnssecOk: true }), keyOf('raw.example.test', 64999));
    const decoded = decode(reply!);
    const answer = decoded.answers![0]! as { type: string; data: Buffer };
    expect(answer.type).toBe('UNKNOWN_64999');
    expect(answer.data.subarray(0, 4)).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    // the fake echoes the client's EDNS flags: DO arrived upstream untouched
    const opt = decoded.additionals!.find((r) => r.type === 'OPT') as { flags: number } | undefined;
    expect(opt && opt.flags & dnsPacket.DNSSEC_OK).toBeTruthy();
  });

  it('ignores replies with the wrong id, the wrong question or from the wrong source', async () => {
    const impostor = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => impostor.bind(0, '127.0.0.2', resolve));
    const r = await responder(false, (self, msg, rinfo) => {
      const id = msg.readUInt16BE(0);
      self.socket.send(answerTo(msg, '192.0.2.66', { id: id ^ 1 }), rinfo.port, rinfo.address);
      self.socket.send(answerTo(msg, '192.0.2.66', { name: 'other.example.test' }), rinfo.port, rinfo.address);
      impostor.send(answerTo(msg, '192.0.2.66'), rinfo.port, rinfo.address);
      setTimeout(() => self.socket.send(answerTo(msg, '192.0.2.1'), rinfo.port, rinfo.address), 50);
    });
    try {
      const c = client({ servers: [{ address: '127.0.0.1', port: r.port }] });
      const reply = await c.query(makeQuery('spoof.example.test', 'A'), keyOf('spoof.example.test', 1));
      expect(decode(reply!).answers![0]!.data).toBe('192.0.2.1');
      expect(c.stats().spoofed).toBe(3);
    } finally {
      impostor.close();
    }
  });

  it('uses a fresh id per attempt and spreads queries over rotating source ports', async () => {
    const r = await responder(true);
    const c = client({ servers: [{ address: '127.0.0.1', port: r.port }], socketPoolSize: 4, queriesPerSocket: 8 });
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) => c.query(makeQuery(`n${i}.example.test`, 'A', { id: 7 }), keyOf(`n${i}.example.test`, 1))),
    );
    expect(replies.every((reply) => reply !== undefined)).toBe(true);
    const ids = new Set(r.queries.map((q) => q.msg.readUInt16BE(0)));
    expect(ids.size).toBe(100); // all in flight together: no id reused
    const ports = new Set(r.queries.map((q) => q.rinfo.port));
    expect(ports.size).toBeGreaterThanOrEqual(100 / 8); // sockets were retired and replaced
  });

  it('fails over to the next server when the first times out', async () => {
    const dead = await responder(false);
    const c = client({ servers: [{ address: '127.0.0.1', port: dead.port }, { address: '127.0.0.1', port: fake.port }], timeoutMs: 150 });
    const started = performance.now();
    const reply = await c.query(makeQuery('failover.example.test', 'A'), keyOf('failover.example.test', 1));
    expect(reply).toBeDefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(dead.queries).toHaveLength(1);
    const [first, second] = c.stats().perServer;
    expect(first).toMatchObject({ sent: 1, received: 0, timeouts: 1 });
    expect(second).toMatchObject({ sent: 1, received: 1, timeouts: 0 });
  });

  it('gives up (undefined) when the total budget runs out', async () => {
    const dead = await responder(false);
    const c = client({ servers: [{ address: '127.0.0.1', port: dead.port }], timeoutMs: 100, budgetMs: 350 });
    const started = performance.now();
    const reply = await c.query(makeQuery('gone.example.test', 'A'), keyOf('gone.example.test', 1));
    const elapsed = performance.now() - started;
    expect(reply).toBeUndefined();
    expect(elapsed).toBeGreaterThanOrEqual(340);
    expect(elapsed).toBeLessThan(1500);
    // attempts at 0, 100, 200 and 300 ms (the last one gets the remaining 50 ms); a late timer may skip the last
    expect(dead.queries.length).toBeGreaterThanOrEqual(3);
    expect(dead.queries.length).toBeLessThanOrEqual(4);
    expect(c.stats()).toMatchObject({ failures: 1, received: 0 });
  });

  it('retries a truncated reply over TCP to the same server', async () => {
    const c = client({ servers: [{ address: '127.0.0.1', port: fake.port }] });
    const reply = await c.query(makeQuery('big.example.test', 'TXT'), keyOf('big.example.test', 16));
    expect(reply!.length).toBeGreaterThan(3000);
    const decoded = decode(reply!);
    expect(decoded.flags! & dnsPacket.TRUNCATED_RESPONSE).toBe(0);
    expect((decoded.answers![0]!.data as Buffer[]).length).toBe(12);
    const log = (await readFile(logFile, 'utf8')).split('\n');
    expect(log).toContain('udp big.example.test TXT');
    expect(log).toContain('tcp big.example.test TXT');
  });

  it('moves on from SERVFAIL to another server, and returns it when nobody does better', async () => {
    const good = await responder(true);
    const both = client({ servers: [{ address: '127.0.0.1', port: fake.port }, { address: '127.0.0.1', port: good.port }] });
    const reply = await both.query(makeQuery('servfail.example.test', 'A'), keyOf('servfail.example.test', 1));
    expect(decode(reply!).rcode).toBe('NOERROR');

    const alone = client({ servers: [{ address: '127.0.0.1', port: fake.port }] });
    const only = await alone.query(makeQuery('servfail.example.test', 'A'), keyOf('servfail.example.test', 1));
    expect(decode(only!).rcode).toBe('SERVFAIL');
  });

  it('backs off a failing server, probes it alongside, and uses it again once it answers', async () => {
    let clock = 1_000_000;
    const flaky = await responder(false);
    const good = await responder(true);
    const c = client({
      servers: [{ address: '127.0.0.1', port: flaky.port }, { address: '127.0.0.1', port: good.port }],
      timeoutMs: 100, failuresBeforeBackoff: 2, backoffBaseMs: 1000, now: () => clock,
    });
    const ask = async (name: string): Promise<number> => {
      const started = performance.now();
      expect(await c.query(makeQuery(name, 'A'), keyOf(name, 1))).toBeDefined();
      return performance.now() - started;
    };
    await ask('q1.example.test');
    await ask('q2.example.test'); // second time-out in a row: backed off
    expect(c.stats().perServer[0]!.backoffRemainingMs).toBe(1000);

    expect(await ask('q3.example.test')).toBeLessThan(100); // straight to the healthy server
    expect(flaky.queries).toHaveLength(2);

    clock += 1000; // back-off over: the next query probes it in parallel, still answered at once
    expect(await ask('q4.example.test')).toBeLessThan(100);
    expect(flaky.queries).toHaveLength(3);

    flaky.answering = true;
    clock += 1000;
    await ask('q5.example.test'); // probe answered: the server has recovered
    expect(c.stats().perServer[0]).toMatchObject({ consecutiveFailures: 0, backoffRemainingMs: 0 });
    const goodBefore = good.queries.length;
    await ask('q6.example.test');
    expect(flaky.queries).toHaveLength(5);
    expect(good.queries.length).toBe(goodBefore); // first in order again
  });

  it('close() ends queries in flight with undefined', async () => {
    const dead = await responder(false);
    const c = client({ servers: [{ address: '127.0.0.1', port: dead.port }] });
    const pending = c.query(makeQuery('slow.example.test', 'A'), keyOf('slow.example.test', 1));
    await new Promise((r) => setTimeout(r, 20));
    c.close();
    expect(await pending).toBeUndefined();
    expect(await c.query(makeQuery('after.example.test', 'A'), keyOf('after.example.test', 1))).toBeUndefined();
  });
});
