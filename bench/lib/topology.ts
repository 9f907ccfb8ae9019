/**
 * The benchmark's network: the integration tests' namespace bench (test/support/netns.ts, reused as
 * is) with three changes a 10,000-lease benchmark needs, all inside the namespaces it owns:
 *   - br0 gets a /16 (10.77.0.1/16) instead of the tests' /24, so the pool holds far more than 10,000 leases;
 *   - vm1 is the DHCP load generator's namespace (eth0 stays without an address, like a real DHCP client);
 *   - vm2 gets a static address outside the pool and runs dnsperf;
 * and the fake upstream DNS server runs in the wan namespace.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BRIDGE, GATEWAY, SUBNET_PREFIX, Topology, UPLINK_WAN } from '../../test/support/netns.js';

export { BRIDGE, GATEWAY, UPLINK_WAN };

/** The project root, from build/bench/lib/ (compiled) — three levels up. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BENCH_PREFIX = 16;
export const POOL_START = '10.77.0.10';
export const POOL_END = '10.77.200.250';
/** dnsperf's source address: inside the subnet, outside the pool */
export const DNSPERF_ADDRESS = '10.77.255.2';
export const UPSTREAM_SCRIPT = path.join(PROJECT_ROOT, 'test', 'fixtures', 'fake-upstream.mjs');

const liveWorkDirs = new Set<string>();
let cleanupInstalled = false;

/**
 * Work dirs are removed on exit and on SIGINT/SIGTERM too. Registered before the first Topology is made, so these
 * run before the Topology's own signal handler (which deletes the namespaces and re-raises the signal).
 */
function installWorkDirCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const removeAll = () => {
    for (const dir of liveWorkDirs) rmSync(dir, { recursive: true, force: true });
    liveWorkDirs.clear();
  };
  process.on('exit', removeAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, removeAll);
}

export class BenchNetwork {
  private upstream: ChildProcess | undefined;

  private constructor(
    readonly topology: Topology,
    /** scratch directory for state, lease files and query files; removed by destroy() */
    readonly workDir: string,
  ) {}

  /** namespace of the DHCP load generator (vm1) */
  get clientNs(): string {
    return this.topology.vm(1).ns;
  }

  /** namespace dnsperf runs in (vm2) */
  get dnsperfNs(): string {
    return this.topology.vm(2).ns;
  }

  get hostNs(): string {
    return this.topology.host;
  }

  /** PID of the fake upstream DNS server (its CPU use shows when it, not the server under test, is the limit) */
  get upstreamPid(): number | undefined {
    return this.upstream?.pid;
  }

  /** UDP receive-buffer overflows so far in a namespace (/proc/net/snmp is per namespace): datagrams the kernel dropped */
  async udpRcvbufErrors(ns: string): Promise<number> {
    const snmp = await this.topology.runOk(ns, ['cat', '/proc/net/snmp']);
    const lines = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const i = names.indexOf('RcvbufErrors');
    return i > 0 ? Number(values[i]) : NaN;
  }

  /** Builds the namespaces and starts the fake upstream; on failure everything made so far is removed. */
  static async create(): Promise<BenchNetwork> {
    installWorkDirCleanup();
    const workDir = mkdtempSync(path.join(tmpdir(), 'natd-bench-'));
    liveWorkDirs.add(workDir);
    let topology: Topology;
    try {
      topology = Topology.create({ vms: 2 });
    } catch (err) {
      rmSync(workDir, { recursive: true, force: true });
      liveWorkDirs.delete(workDir);
      throw err;
    }
    const net = new BenchNetwork(topology, workDir);
    try {
      await net.readdress();
      await net.startUpstream();
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  private async readdress(): Promise<void> {
    const { topology } = this;
    await topology.runOk(topology.host, ['ip', 'addr', 'del', `${GATEWAY}/${SUBNET_PREFIX}`, 'dev', BRIDGE]);
    await topology.runOk(topology.host, ['ip', 'addr', 'add', `${GATEWAY}/${BENCH_PREFIX}`, 'brd', '+', 'dev', BRIDGE]);
    await topology.runOk(this.dnsperfNs, ['ip', 'addr', 'add', `${DNSPERF_ADDRESS}/${BENCH_PREFIX}`, 'dev', 'eth0']);
  }

  private async startUpstream(): Promise<void> {
    const child = this.topology.spawn(this.topology.wan, [process.execPath, UPSTREAM_SCRIPT, '--listen', `${UPLINK_WAN}:53`]);
    this.upstream = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`fake upstream not listening after 10 s: ${out}`)), 10_000);
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.resume();
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`fake upstream exited (${code}) before listening: ${out}`));
      });
    });
  }

  /** Stops every process started in the namespaces (by PID), deletes the namespaces and the work directory. */
  async destroy(): Promise<void> {
    try {
      await this.topology.destroy();
    } finally {
      rmSync(this.workDir, { recursive: true, force: true });
      liveWorkDirs.delete(this.workDir);
    }
  }
}
