#!/usr/bin/env node
/**
 * The project's DHCP load generator (Debian here ships no perfdhcp). Runs inside a client namespace and plays many
 * simulated clients (the tests' simulator, test/support/dhcp-clients.mjs), each with its own MAC (02:b0 + 32 bits,
 * locally administered), through a full DORA: DISCOVER → OFFER → REQUEST → ACK. The broadcast flag is set, so every
 * reply comes back broadcast to our one socket on 0.0.0.0:68 (bound to the device with natd's own addon, so it works
 * before the interface has an address).
 *
 * Two modes:
 *   open    new exchanges start at a fixed offered rate for a fixed time, whatever the server does (a slow
 *           server cannot slow the offered load down, so drops show up instead of hidden queueing)
 *   closed  keeps N exchanges in flight until `count` have completed (used to fill the lease table quickly)
 *   storm   a boot storm: N clients send their DISCOVERs at the same instant, then behave like real clients and
 *           retransmit what went unanswered on RFC 2131 §4.1's schedule (4 s ±1 s, doubling up to 64 s); the
 *           number that matters is the time until the last of them is leased
 * An exchange not finished within the timeout is a drop; only storm mode retransmits.
 *
 *   node build/bench/lib/dhcp-load.js --device eth0 --mode open --rate 2000 --duration-ms 2000 --first-client 0
 *   node build/bench/lib/dhcp-load.js --device eth0 --mode closed --concurrency 64 --count 10000 --max-ms 60000
 * prints one JSON line (LoadResult).
 */
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DhcpOption } from '../../src/dhcp/types.js';
import { openDeviceUdpSocket } from '../../src/native.js';
import type * as DhcpClientsModule from '../../test/support/dhcp-clients.mjs';
import type { SimulatedClient } from '../../test/support/dhcp-clients.mjs';
import { SUPPORT } from '../../test/support/paths.js';
import { percentileSorted } from './stats.js';
import { assertInsideNamespace } from './netns-guard.js';
import { isEntryPoint } from '../../src/entrypoint.js';

const MAC_OUI = [0x02, 0xb0] as const;
const PARAMETER_REQUEST_LIST = Uint8Array.from([
  DhcpOption.SUBNET_MASK, DhcpOption.ROUTER, DhcpOption.DNS_SERVERS, DhcpOption.DOMAIN_NAME, DhcpOption.LEASE_TIME,
]);
const TICK_MS = 1;

export type LoadMode =
  | { kind: 'open'; rate: number; durationMs: number }
  | { kind: 'closed'; concurrency: number; count: number; maxMs: number }
  | { kind: 'storm'; clients: number };

export interface LoadOptions {
  device: string;
  mode: LoadMode;
  /** an exchange not completed this long after its DISCOVER counts as dropped */
  timeoutMs: number;
  /** index of the first simulated client; callers give each run its own range so MACs never repeat */
  firstClient: number;
  /** names are `<prefix><index>` (option 12), so the DNS benchmark can ask for them */
  hostnamePrefix: string;
  /** when set, the hostnames that got an ACK are written here, one per line */
  namesOut?: string;
}

export interface LoadResult {
  mode: LoadMode['kind'];
  /** open mode: the rate asked for; closed mode: 0 */
  offeredRate: number;
  /** exchanges started per second while starting them (shows when the generator itself falls behind) */
  achievedOfferedRate: number;
  started: number;
  completed: number;
  dropped: number;
  naks: number;
  /** first DISCOVER to the last completion (or end of the send window, whichever is later), seconds */
  elapsedSeconds: number;
  completedPerSecond: number;
  dropRatio: number;
  /** DISCOVER sent → ACK received, milliseconds */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  sendErrors: number;
  /** storm mode: DISCOVERs and REQUESTs sent again because the first went unanswered */
  retransmissions: number;
}

/** RFC 2131 §4.1: the first retransmission after 4 s, randomized by ±1 s, the wait doubling up to 64 s. */
const FIRST_RETRANSMIT_MS = 4000;
const MAX_RETRANSMIT_MS = 64_000;
const retransmitDelay = (attempt: number): number =>
  Math.min(MAX_RETRANSMIT_MS, FIRST_RETRANSMIT_MS * 2 ** attempt) + (Math.random() * 2 - 1) * 1000;

interface Exchange {
  client: SimulatedClient;
  startedAt: number;
  /** storm mode: when the last message goes again, and how often it went */
  retryAt?: number;
  attempt?: number;
}

/**
 * The simulator is plain JS in test/support (namespaces run it without a build), so it is loaded from the source
 * tree, not from build/; it encodes with natd's built codec (dist/), which the benchmark builds first.
 */
const loadDhcpClients = (): Promise<typeof DhcpClientsModule> =>
  import(pathToFileURL(path.join(SUPPORT, 'dhcp-clients.mjs')).href) as Promise<typeof DhcpClientsModule>;

/**
 * The client's MAC: 02:b0 and a 32-bit bijective mix of its index, so MACs never repeat yet look random. Sequential
 * MACs would be unfair to servers that hash the MAC into the pool (neighbouring hashes pile up on one free address);
 * real VM MACs (libvirt's 52:54:00:xx:xx:xx) are random.
 */
function macBytes(index: number): Uint8Array {
  let h = index >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x045d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x045d9f3b);
  h = (h ^ (h >>> 16)) >>> 0;
  const chaddr = new Uint8Array(16);
  chaddr[0] = MAC_OUI[0];
  chaddr[1] = MAC_OUI[1];
  chaddr[2] = (h >>> 24) & 0xff;
  chaddr[3] = (h >>> 16) & 0xff;
  chaddr[4] = (h >>> 8) & 0xff;
  chaddr[5] = h & 0xff;
  return chaddr;
}

/** Runs one load and resolves with its numbers. Never throws on what the server sends: junk is ignored. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  assertInsideNamespace('dhcp-load');
  const socket = dgram.createSocket({ type: 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ fd: openDeviceUdpSocket(options.device, '0.0.0.0', 68) }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.setBroadcast(true);
  try {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.setSendBufferSize(4 * 1024 * 1024);
  } catch {
    /* capped by net.core.[rw]mem_max; the defaults still work */
  }
  try {
    return await drive(socket, options, await loadDhcpClients());
  } finally {
    socket.close();
  }
}

function drive(socket: dgram.Socket, options: LoadOptions, { DhcpClients }: typeof DhcpClientsModule): Promise<LoadResult> {
  const { mode, timeoutMs, firstClient, hostnamePrefix } = options;
  const inFlight = new Map<SimulatedClient, Exchange>(); // in start order
  const latencies: number[] = [];
  const ackedNames: string[] = [];
  let started = 0;
  let completed = 0;
  let dropped = 0;
  let naks = 0;
  let retransmissions = 0;
  let lastCompletion = 0;
  let sendWindowEnd = 0;
  const t0 = performance.now();

  /** In storm mode, a client's message goes again if nothing answers it in time. */
  const armRetransmit = (exchange: Exchange) => {
    if (mode.kind !== 'storm') return;
    exchange.attempt = 0;
    exchange.retryAt = performance.now() + retransmitDelay(0);
  };

  const retransmitDue = (now: number) => {
    for (const exchange of inFlight.values()) {
      if (exchange.retryAt === undefined || exchange.retryAt > now) continue;
      exchange.attempt = (exchange.attempt ?? 0) + 1;
      exchange.retryAt = now + retransmitDelay(exchange.attempt);
      retransmissions++;
      clients.resend(exchange.client);
    }
  };

  const finished = (client: SimulatedClient) => {
    inFlight.delete(client);
    clients.forget(client);
    if (mode.kind === 'closed') refill();
  };

  const clients = new DhcpClients(socket, {
    prl: PARAMETER_REQUEST_LIST,
    hostname: (client) => `${hostnamePrefix}${client.index}`,
    hooks: {
      offer(client) {
        const exchange = inFlight.get(client);
        if (!exchange || !client.serverId) return false;
        armRetransmit(exchange);
        return true;
      },
      ack(client) {
        const exchange = inFlight.get(client);
        if (!exchange) return;
        const now = performance.now();
        completed++;
        lastCompletion = now;
        latencies.push(now - exchange.startedAt);
        if (options.namesOut) ackedNames.push(`${hostnamePrefix}${client.index}`);
        finished(client);
      },
      nak(client) {
        if (!inFlight.has(client)) return;
        naks++;
        finished(client);
      },
    },
  });

  const startOne = () => {
    const index = firstClient + started;
    started++;
    const exchange: Exchange = { client: clients.add(index, macBytes(index)), startedAt: performance.now() };
    inFlight.set(exchange.client, exchange);
    clients.discover(exchange.client);
    armRetransmit(exchange);
  };

  const expire = (now: number) => {
    for (const [client, exchange] of inFlight) {
      if (now - exchange.startedAt < timeoutMs) break; // insertion order = start order
      inFlight.delete(client);
      clients.forget(client);
      dropped++;
    }
  };

  const closedDone = () =>
    mode.kind === 'closed' && (completed >= mode.count || performance.now() - t0 >= mode.maxMs);
  function refill(): void {
    if (mode.kind !== 'closed' || sendWindowEnd || closedDone()) return;
    while (inFlight.size < mode.concurrency && completed + inFlight.size < mode.count) startOne();
  }

  return new Promise((resolve) => {
    const finish = () => {
      clearInterval(timer);
      dropped += inFlight.size; // still unanswered when we stop waiting
      for (const client of inFlight.keys()) clients.forget(client);
      inFlight.clear();
      if (options.namesOut) writeFileSync(options.namesOut, ackedNames.join('\n') + '\n');
      latencies.sort((a, b) => a - b);
      const end = Math.max(lastCompletion, sendWindowEnd || t0);
      const elapsedSeconds = Math.max(1e-3, (end - t0) / 1000);
      const sendSeconds = Math.max(1e-3, ((sendWindowEnd || end) - t0) / 1000);
      resolve({
        mode: mode.kind,
        offeredRate: mode.kind === 'open' ? mode.rate : 0,
        achievedOfferedRate: started / sendSeconds,
        started,
        completed,
        dropped,
        naks,
        elapsedSeconds,
        completedPerSecond: completed / elapsedSeconds,
        dropRatio: started ? dropped / started : 0,
        latencyMs: {
          p50: percentileSorted(latencies, 50),
          p90: percentileSorted(latencies, 90),
          p99: percentileSorted(latencies, 99),
          max: latencies.length ? latencies[latencies.length - 1]! : 0,
        },
        sendErrors: clients.sendErrors,
        retransmissions,
      });
    };

    const timer = setInterval(() => {
      const now = performance.now();
      expire(now);
      if (mode.kind === 'storm') retransmitDue(now);
      if (!sendWindowEnd) {
        if (mode.kind === 'storm') {
          while (started < mode.clients) startOne(); // every DISCOVER in the same tick: the VMs boot together
        } else if (mode.kind === 'open') {
          const elapsed = now - t0;
          if (elapsed < mode.durationMs) {
            const due = Math.floor((elapsed * mode.rate) / 1000);
            while (started < due) startOne();
            return;
          }
        } else if (!closedDone()) {
          refill(); // dropped exchanges free their slots: new clients keep the fill going
          return;
        }
        sendWindowEnd = now;
      }
      // nothing new starts now; exchanges already under way get their full timeout
      if (inFlight.size === 0 || now - sendWindowEnd >= timeoutMs) finish();
    }, TICK_MS);
  });
}

function parseCli(argv: string[]): LoadOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      device: { type: 'string', default: 'eth0' },
      mode: { type: 'string', default: 'open' },
      rate: { type: 'string', default: '1000' },
      'duration-ms': { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '64' },
      count: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '200' },
      'max-ms': { type: 'string', default: '60000' },
      'timeout-ms': { type: 'string', default: '2000' },
      'first-client': { type: 'string', default: '0' },
      'hostname-prefix': { type: 'string', default: 'b' },
      'names-out': { type: 'string' },
    },
  });
  const num = (name: keyof typeof values): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a non-negative number (got "${String(values[name])}")`);
    return n;
  };
  const mode: LoadMode = values.mode === 'closed'
    ? { kind: 'closed', concurrency: Math.max(1, num('concurrency')), count: num('count'), maxMs: num('max-ms') }
    : values.mode === 'storm'
      ? { kind: 'storm', clients: Math.max(1, num('clients')) }
      : { kind: 'open', rate: num('rate'), durationMs: num('duration-ms') };
  return {
    device: values.device!,
    mode,
    timeoutMs: num('timeout-ms'),
    firstClient: num('first-client'),
    hostnamePrefix: values['hostname-prefix']!,
    ...(values['names-out'] ? { namesOut: values['names-out'] } : {}),
  };
}


if (isEntryPoint(import.meta.url)) {
  runLoad(parseCli(process.argv.slice(2))).then(
    (result) => process.stdout.write(JSON.stringify(result) + '\n'),
    (err: unknown) => {
      process.stderr.write(`dhcp-load: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
