/**
 * The boot-storm scenario (issue 13): 200 new VMs start at once, each server with its default settings (both with
 * their default conflict check before an OFFER: natd's probe, dnsmasq's ICMP ping), and we time how long until the
 * last of them is leased. The clients retransmit as RFC 2131 clients do (dhcp-load.ts storm mode), so a server
 * that drops a DISCOVER (a full socket buffer, a probe still running) pays with the client's retransmission delay,
 * as it would with real VMs. Each run gets a fresh network and a server with an empty lease table.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './dhcp-load.js';
import { cpuSeconds } from './proc.js';
import { startServer, type ServerKind } from './servers.js';
import { BenchNetwork, PROJECT_ROOT } from './topology.js';

const DHCP_LOAD = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'dhcp-load.js');

export interface BootStormSettings {
  clients: number;
  /** a client still unleased this long after its first DISCOVER counts as failed */
  timeoutMs: number;
  log(line: string): void;
}

export interface BootStormResult {
  kind: ServerKind;
  run: number;
  clients: number;
  leased: number;
  /** first DISCOVER to the last ACK, seconds (all clients, when leased === clients) */
  allLeasedSeconds: number;
  p50Ms: number;
  p99Ms: number;
  /** DISCOVERs and REQUESTs the clients had to send again */
  retransmissions: number;
  /** UDP datagrams the kernel dropped in the server's namespace for want of receive buffer (/proc/net/snmp) */
  serverOverflows: number;
  cpuSeconds: number;
  seconds: number;
}

export async function bootStorm(kind: ServerKind, run: number, s: BootStormSettings): Promise<BootStormResult> {
  const t0 = performance.now();
  const net = await BenchNetwork.create();
  try {
    // defaults: no --no-ping for either server (the conflict check is the point of the scenario)
    const server = await startServer(net, kind, { instance: 'storm', defaults: true });
    const overflowsBefore = await net.udpRcvbufErrors(net.hostNs);
    const cpuBefore = cpuSeconds(server.pid);
    const args = ['--device', 'eth0', '--mode', 'storm', '--clients', String(s.clients), '--timeout-ms', String(s.timeoutMs),
      '--first-client', String(3_000_000 + run * 1000), '--hostname-prefix', 'boot'];
    const r = await net.topology.run(net.clientNs, [process.execPath, DHCP_LOAD, ...args], { timeoutMs: s.timeoutMs + 30_000 });
    if (r.code !== 0) throw new Error(`dhcp-load exited ${r.code}: ${r.stderr.trim()}`);
    const load = JSON.parse(r.stdout) as LoadResult;
    const result: BootStormResult = {
      kind,
      run,
      clients: s.clients,
      leased: load.completed,
      allLeasedSeconds: load.completed === s.clients ? load.elapsedSeconds : NaN,
      p50Ms: load.latencyMs.p50 ?? NaN,
      p99Ms: load.latencyMs.p99 ?? NaN,
      retransmissions: load.retransmissions,
      serverOverflows: (await net.udpRcvbufErrors(net.hostNs)) - overflowsBefore,
      cpuSeconds: cpuSeconds(server.pid) - cpuBefore,
      seconds: 0,
    };
    await server.stop();
    result.seconds = (performance.now() - t0) / 1000;
    s.log(`  ${kind} boot storm: ${result.leased}/${s.clients} leased, all in ${result.allLeasedSeconds.toFixed(2)} s, ` +
      `p50 ${result.p50Ms.toFixed(0)} ms, ${result.retransmissions} retransmissions, ${result.serverOverflows} datagrams overflowed at the server`);
    return result;
  } finally {
    await net.destroy();
  }
}
