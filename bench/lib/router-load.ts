#!/usr/bin/env node
/**
 * issue 17: the client side of the name-router benchmark, run as its own process in the client namespace.
 *
 *   --mode conns: a closed loop of --concurrency connections, each a full TLS handshake (no session resumption: no
 *     `session` is ever passed to tls.connect, so every handshake is a full one) to --target with SNI set to one of
 *     --names in turn, then `GET /small`, read the whole response, close; until --count connections were started or
 *     --max-ms passed. Each connection checks that the certificate it got is the named guest's (CN = the SNI name):
 *     a wrong one counts as misrouted. Latency = connect() called to the first byte of the HTTP response.
 *   --mode bulk: one connection (SNI the first name), `GET /bytes/N`, MB/s from the request to the last byte.
 *
 * Prints one JSON line (ConnsResult or BulkResult) on stdout. Bounded in count and in time; refuses to run outside
 * a named network namespace.
 *
 *   ip netns exec NS node build/bench/lib/router-load.js --mode conns --target 198.51.100.1:443 \
 *     --names a.bench.test,b.bench.test --concurrency 16 --count 20000 --max-ms 5000
 */
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { isEntryPoint } from '../../src/entrypoint.js';
import { assertInsideNamespace } from './netns-guard.js';
import { percentileSorted } from './stats.js';

export interface ConnsResult {
  mode: 'conns';
  concurrency: number;
  started: number;
  completed: number;
  failed: number;
  /** connections that reached a guest whose certificate is not the name asked for */
  misrouted: number;
  seconds: number;
  perSecond: number;
  /** connect() to the first response byte */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** the load generator's own CPU seconds (user + system) */
  cpuSeconds: number;
  /** first few distinct error messages, to explain failures */
  errors: string[];
}

export interface BulkResult {
  mode: 'bulk';
  bytes: number;
  expected: number;
  seconds: number;
  MBps: number;
  firstByteMs: number;
  cpuSeconds: number;
  error?: string;
}

interface Target {
  host: string;
  port: number;
}

function parseTarget(spec: string): Target {
  const i = spec.lastIndexOf(':');
  if (i < 0) throw new Error(`--target: HOST:PORT (got "${spec}")`);
  return { host: spec.slice(0, i), port: Number(spec.slice(i + 1)) };
}

function ownCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface OneResult {
  ok: boolean;
  misrouted: boolean;
  firstByteMs: number;
  error?: string;
}

/** One full TLS connection: handshake, GET /small, the whole response, close. */
function oneConnection(target: Target, name: string, timeoutMs: number): Promise<OneResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let firstByteMs = NaN;
    let received = '';
    let misrouted = false;
    let done = false;
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, misrouted, firstByteMs, ...(error ? { error } : {}) });
    };
    const socket = tls.connect({ host: target.host, port: target.port, servername: name, rejectUnauthorized: false });
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    socket.setNoDelay(true);
    socket.on('secureConnect', () => {
      const cn = socket.getPeerCertificate()?.subject?.CN;
      if (cn !== name) misrouted = true;
      socket.write(`GET /small HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (data: Buffer) => {
      if (Number.isNaN(firstByteMs)) firstByteMs = performance.now() - t0;
      received += data.toString('latin1');
    });
    socket.on('end', () => finish(received.startsWith('HTTP/1.1 200') && received.endsWith('ok'), received ? undefined : 'closed without a response'));
    socket.on('error', (err) => finish(false, err.message));
    socket.on('close', () => finish(false, 'closed early'));
  });
}

export async function conns(target: Target, names: string[], concurrency: number, count: number, maxMs: number, timeoutMs: number): Promise<ConnsResult> {
  const cpu0 = ownCpu();
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  let started = 0;
  let completed = 0;
  let failed = 0;
  let misrouted = 0;
  const worker = async (): Promise<void> => {
    while (started < count && performance.now() < deadline) {
      const name = names[started % names.length]!;
      started++;
      const r = await oneConnection(target, name, timeoutMs);
      if (r.misrouted) misrouted++;
      if (r.ok && !r.misrouted) {
        completed++;
        latencies.push(r.firstByteMs);
      } else {
        failed++;
        if (r.error) errors.set(r.error, (errors.get(r.error) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    mode: 'conns', concurrency, started, completed, failed, misrouted, seconds, perSecond: completed / seconds,
    p50Ms: percentileSorted(sorted, 50), p99Ms: percentileSorted(sorted, 99), maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    cpuSeconds: ownCpu() - cpu0,
    errors: [...errors].slice(0, 5).map(([e, n]) => `${e} (${n})`),
  };
}

export function bulk(target: Target, name: string, bytes: number, maxMs: number): Promise<BulkResult> {
  return new Promise((resolve) => {
    const cpu0 = ownCpu();
    let t0 = NaN;
    let firstByteMs = NaN;
    let body = -1;
    let head = '';
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const seconds = (performance.now() - t0) / 1000;
      const got = Math.max(0, body);
      resolve({ mode: 'bulk', bytes: got, expected: bytes, seconds, MBps: got / 1e6 / seconds, firstByteMs, cpuSeconds: ownCpu() - cpu0, ...(error ? { error } : {}) });
    };
    const socket = tls.connect({ host: target.host, port: target.port, servername: name, rejectUnauthorized: false });
    const timer = setTimeout(() => finish('timeout'), maxMs);
    socket.on('secureConnect', () => {
      if (socket.getPeerCertificate()?.subject?.CN !== name) return finish('misrouted');
      t0 = performance.now();
      socket.write(`GET /bytes/${bytes} HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (data: Buffer) => {
      if (Number.isNaN(firstByteMs)) firstByteMs = performance.now() - t0;
      if (body >= 0) {
        body += data.length;
      } else {
        head += data.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          body = Buffer.byteLength(head.slice(end + 4), 'latin1');
          head = '';
        }
      }
    });
    socket.on('end', () => finish(body === bytes ? undefined : `short body: ${body} of ${bytes}`));
    socket.on('error', (err) => finish(err.message));
    socket.on('close', () => finish(body === bytes ? undefined : 'closed early'));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string', default: 'conns' },
      target: { type: 'string' },
      names: { type: 'string' },
      concurrency: { type: 'string', default: '16' },
      count: { type: 'string', default: '20000' },
      'max-ms': { type: 'string', default: '5000' },
      'timeout-ms': { type: 'string', default: '5000' },
      bytes: { type: 'string', default: String(512 * 1024 * 1024) },
    },
  });
  if (!values.target || !values.names) throw new Error('router-load: --target HOST:PORT and --names A,B are required');
  assertInsideNamespace('router-load');
  const target = parseTarget(values.target);
  const names = values.names.split(',').filter(Boolean);
  const maxMs = Math.min(Number(values['max-ms']), 120_000);
  const result = values.mode === 'bulk'
    ? await bulk(target, names[0]!, Number(values.bytes), maxMs)
    : await conns(target, names, Math.max(1, Number(values.concurrency)), Math.min(Number(values.count), 1_000_000), maxMs, Number(values['timeout-ms']));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (isEntryPoint(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`router-load: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
