#!/usr/bin/env node
/**
 * issue 14: the DHCPv6 load generator and client simulator (our own: perfdhcp is not on this host and an own closed loop is simpler to
 * bound). Runs inside a client namespace and plays many clients, each with its own DUID-LL (MAC 02:b6 + 32 bits)
 * and IAID 1, through Solicit → Advertise → Request → Reply for one IA_NA, the exchange the issue measures.
 *
 * Clients are spread over `sources` link-local addresses (fe80::b6:<n>, added to the device with nodad by the
 * caller, see addSources), one UDP socket on [addr]:546 each, so the load looks like many guests rather than one
 * (natd rate-limits per source, as a DHCP server for hostile guests should). Closed loop: `concurrency` exchanges
 * in flight until `count` completed or `maxMs` passed; an exchange not finished within `timeoutMs` is a drop and a
 * new client takes its slot. Messages are built by hand here (a few fixed bytes), so the generator costs little.
 *
 * Plain JS (typed by dhcp6-load.d.mts) so namespaces run it without a build, as dhcp-clients.mjs: the benchmark
 * (bench/lib/dhcp6-bench.ts) and the kill -9 test (93-dhcp6-crash) both run it. With --log FILE every Reply that
 * bound an address is appended there as "reply <duid> <address>" before the exchange counts as done (the crash
 * test's record of what clients were promised).
 *
 *   node test/support/dhcp6-load.mjs --device eth0 --sources 64 --concurrency 64 --count 20000 --max-ms 30000
 * prints one JSON line (Load6Result).
 */
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Refuses to run outside a named network namespace (it adds addresses and multicasts). */
function assertInsideNamespace(what) {
  let name = '';
  try {
    name = execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* no named namespace */
  }
  if (!name) throw new Error(`${what}: refusing to run outside a named network namespace; start it with ip netns exec`);
}

function percentileSorted(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const CLIENT_PORT = 546;
const SERVER_PORT = 547;
const ALL_SERVERS = 'ff02::1:2';
const TICK_MS = 2;

const SOLICIT = 1, ADVERTISE = 2, REQUEST = 3, REPLY = 7;
const OPT_CLIENTID = 1, OPT_SERVERID = 2, OPT_IA_NA = 3, OPT_IAADDR = 5, OPT_ORO = 6, OPT_ELAPSED = 8, OPT_STATUS = 13;

/** The source addresses the generator uses: fe80::b6:<n>. */
export function sourceAddress(n) {
  return `fe80::b6:${(n + 1).toString(16)}`;
}

/** Adds the generator's link-local sources to `device` (nodad: usable at once). Inside a namespace only. */
export function addSources(device, sources) {
  assertInsideNamespace('dhcp6-load');
  const lines = [];
  for (let n = 0; n < sources; n++) lines.push(`addr replace ${sourceAddress(n)}/64 dev ${device} nodad`);
  execFileSync('ip', ['-batch', '-'], { input: lines.join('\n') + '\n' });
}

function option(code, body) {
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt16BE(code, 0);
  out.writeUInt16BE(body.length, 2);
  out.set(body, 4);
  return out;
}

function duidOf(index) {
  let h = index >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x045d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x045d9f3b);
  h = (h ^ (h >>> 16)) >>> 0;
  const duid = Buffer.from([0, 3, 0, 1, 0x02, 0xb6, 0, 0, 0, 0]);
  duid.writeUInt32BE(h, 6);
  return duid;
}

const IA_EMPTY = option(OPT_IA_NA, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
const ELAPSED = option(OPT_ELAPSED, Buffer.from([0, 0]));
const ORO = option(OPT_ORO, Buffer.from([0, 23, 0, 24]));

function message(type, tid, options) {
  const head = Buffer.from([type, (tid >>> 16) & 0xff, (tid >>> 8) & 0xff, tid & 0xff]);
  return Buffer.concat([head, ...options]);
}

/** The options of a message as code → first body. */
function optionsOf(msg) {
  const out = new Map();
  let at = 4;
  while (at + 4 <= msg.length) {
    const code = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    if (at + 4 + len > msg.length) return undefined;
    if (!out.has(code)) out.set(code, msg.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

/** The address an IA_NA body binds (valid lifetime > 0, no error status), as text; undefined when none. */
function iaAddress(ia) {
  let at = 12;
  let address;
  while (at + 4 <= ia.length) {
    const code = ia.readUInt16BE(at);
    const len = ia.readUInt16BE(at + 2);
    if (code === OPT_STATUS && len >= 2 && ia.readUInt16BE(at + 4) !== 0) return undefined;
    if (code === OPT_IAADDR && len >= 24 && ia.readUInt32BE(at + 4 + 20) > 0) address = ipv6Text(ia.subarray(at + 4, at + 20));
    at += 4 + len;
  }
  return address;
}

const ipv6Text = (b) => {
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // RFC 5952: the longest run of two or more zero groups becomes ::
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
};
const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Runs the load; resolves with its numbers (Load6Result). Junk from the server is ignored. */
export async function runLoad6(opts) {
  assertInsideNamespace('dhcp6-load');
  addSources(opts.device, opts.sources);
  const sockets = [];
  const byTid = new Map();
  const latencies = [];
  let started = 0, completed = 0, dropped = 0, refused = 0, sendErrors = 0, lastCompletion = 0;
  let nextTid = randomBytes(3).readUIntBE(0, 3);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();

  const send = (ex, msg) =>
    sockets[ex.socket].send(msg, SERVER_PORT, `${ALL_SERVERS}%${opts.device}`, (err) => void (err && sendErrors++));
  const newTid = () => {
    do nextTid = (nextTid + 1) & 0xffffff;
    while (byTid.has(nextTid));
    return nextTid;
  };
  const startOne = () => {
    const index = opts.firstClient + started;
    const ex = { index, socket: started % opts.sources, duid: duidOf(index), tid: newTid(), startedAt: performance.now(), stage: 'solicit' };
    started++;
    byTid.set(ex.tid, ex);
    send(ex, message(SOLICIT, ex.tid, [option(OPT_CLIENTID, ex.duid), ELAPSED, IA_EMPTY, ORO]));
  };
  const done = () => completed >= opts.count || performance.now() - t0 >= opts.maxMs;
  const refill = () => {
    while (!done() && byTid.size < opts.concurrency && completed + byTid.size < opts.count) startOne();
  };
  const onMessage = (msg) => {
    if (msg.length < 4) return;
    const tid = msg.readUIntBE(1, 3);
    const ex = byTid.get(tid);
    if (!ex) return;
    const options = optionsOf(msg);
    const ia = options?.get(OPT_IA_NA);
    const serverId = options?.get(OPT_SERVERID);
    if (ex.stage === 'solicit' && msg[0] === ADVERTISE && ia && serverId) {
      byTid.delete(tid);
      if (!iaAddress(ia)) {
        refused++;
        return refill();
      }
      ex.tid = newTid();
      ex.stage = 'request';
      byTid.set(ex.tid, ex);
      send(ex, message(REQUEST, ex.tid, [option(OPT_CLIENTID, ex.duid), option(OPT_SERVERID, serverId), ELAPSED, option(OPT_IA_NA, ia), ORO]));
      return;
    }
    if (ex.stage === 'request' && msg[0] === REPLY) {
      byTid.delete(tid);
      const bound = ia && iaAddress(ia);
      if (bound) {
        if (opts.log) appendFileSync(opts.log, `reply ${hex(ex.duid)} ${bound}\n`);
        const now = performance.now();
        completed++;
        lastCompletion = now;
        latencies.push(now - ex.startedAt);
      } else refused++;
      refill();
    }
  };

  try {
    for (let n = 0; n < opts.sources; n++) {
      const socket = dgram.createSocket({ type: 'udp6', reuseAddr: true });
      socket.on('message', onMessage);
      socket.on('error', () => sendErrors++);
      await new Promise((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(CLIENT_PORT, `${sourceAddress(n)}%${opts.device}`, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      try {
        socket.setRecvBufferSize(1 << 20);
      } catch {
        /* capped by rmem_max */
      }
      sockets.push(socket);
    }
    await new Promise((resolve) => {
      refill();
      const timer = setInterval(() => {
        const now = performance.now();
        for (const [tid, ex] of byTid) {
          if (now - ex.startedAt < opts.timeoutMs) continue;
          byTid.delete(tid);
          dropped++;
        }
        if (done()) {
          if (byTid.size === 0 || now - t0 >= opts.maxMs + opts.timeoutMs) {
            clearInterval(timer);
            resolve();
          }
          return;
        }
        refill();
      }, TICK_MS);
    });
  } finally {
    for (const s of sockets) s.close();
  }
  dropped += byTid.size;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const elapsedSeconds = Math.max(1e-3, ((lastCompletion || performance.now()) - t0) / 1000);
  return {
    started, completed, dropped, refused, elapsedSeconds, completedPerSecond: completed / elapsedSeconds,
    latencyMs: { p50: percentileSorted(latencies, 50), p90: percentileSorted(latencies, 90), p99: percentileSorted(latencies, 99), max: latencies.at(-1) ?? 0 },
    sendErrors, generatorCpuUsPerExchange: completed ? (cpu.user + cpu.system) / completed : NaN,
  };
}

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      device: { type: 'string', default: 'eth0' },
      sources: { type: 'string', default: '64' },
      concurrency: { type: 'string', default: '64' },
      count: { type: 'string', default: '10000' },
      'max-ms': { type: 'string', default: '30000' },
      'timeout-ms': { type: 'string', default: '2000' },
      'first-client': { type: 'string', default: '0' },
      log: { type: 'string' },
    },
  });
  const num = (name) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a non-negative number (got "${String(values[name])}")`);
    return n;
  };
  return {
    device: values.device, sources: Math.max(1, num('sources')), concurrency: Math.max(1, num('concurrency')), count: num('count'),
    maxMs: num('max-ms'), timeoutMs: num('timeout-ms'), firstClient: num('first-client'), ...(values.log ? { log: values.log } : {}),
  };
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  runLoad6(parseCli(process.argv.slice(2))).then(
    (result) => process.stdout.write(JSON.stringify(result) + '\n'),
    (err) => {
      process.stderr.write(`dhcp6-load: ${err.message}\n`);
      process.exit(1);
    },
  );
}
