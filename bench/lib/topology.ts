/**
 * The benchmark's network: the integration tests' namespace bench (test/support/netns.ts, reused as
 * is) with three changes a 10,000-lease benchmark needs, all inside the namespaces it owns:
 *   - br0 gets a /16 (10.77.0.1/16) instead of the tests' /24, so the pool holds far more than 10,000 leases;
 *   - vm1 is the DHCP load generator's namespace (eth0 stays without an address, like a real DHCP client);
 *   - vm2 gets a static address outside the pool and runs dnsperf;
 * and the fake upstream DNS server runs in the wan namespace.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BRIDGE, GATEWAY, SUBNET_PREFIX, Topology, UPLINK_WAN, type Started } from '../../test/support/netns.js';
import { startFakeUpstreamIn } from '../../test/support/fake-upstream-ns.js';

export { BRIDGE, GATEWAY, UPLINK_WAN };
export { NATD_CLI, PROJECT_ROOT } from '../../test/support/paths.js';

export const BENCH_PREFIX = 16;
export const POOL_START = '10.77.0.10';
export const POOL_END = '10.77.200.250';
/** dnsperf's source address: inside the subnet, outside the pool */
export const DNSPERF_ADDRESS = '10.77.255.2';

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
  private upstream: Started | undefined;

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
    return this.upstream?.child.pid;
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
    this.upstream = await startFakeUpstreamIn(this.topology);
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
