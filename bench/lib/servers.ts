/**
 * Starting the two servers under test on br0 in the host namespace, with equivalent settings:
 * the same pool, lease time, domain, upstream and cache size. The PID we hold is the server's own
 * (`ip netns exec` execs the command), so /proc/<pid> readings are the server's.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '../../test/support/wait.js';
import { writeDnsmasqLeases, writeNatdLeases, type SeedLease } from './seed-leases.js';
import type { PeerKind } from './peers/index.js';
import { startKea } from './peers/kea.js';
import { startUnbound } from './peers/unbound.js';
import { BENCH_PREFIX, BRIDGE, GATEWAY, NATD_CLI, POOL_END, POOL_START, UPLINK_WAN, type BenchNetwork } from './topology.js';

export type ServerKind = 'natd' | 'dnsmasq';
export const SERVER_KINDS: readonly ServerKind[] = ['natd', 'dnsmasq'];

// issue 18: the peers (Kea for DHCP, Unbound for DNS) besides dnsmasq; each in bench/lib/peers/
export type BenchKind = ServerKind | PeerKind;
/** What a server does: a scenario a server does not do is shown as "–" */
export interface Capabilities {
  dhcp: boolean;
  dns: boolean;
  /** answers the names of its own DHCP leases (the "local VM names" scenario) */
  leaseNames: boolean;
}
export const CAPABILITIES: Record<BenchKind, Capabilities> = {
  natd: { dhcp: true, dns: true, leaseNames: true },
  dnsmasq: { dhcp: true, dns: true, leaseNames: true },
  kea: { dhcp: true, dns: false, leaseNames: false },
  unbound: { dhcp: false, dns: true, leaseNames: false },
};
export const KIND_LABEL: Record<BenchKind, string> = { natd: 'natd', dnsmasq: 'dnsmasq', kea: 'Kea', unbound: 'Unbound' };

export { NATD_CLI };
export const CACHE_SIZE = 10_000;
export const DOMAIN = 'vm';
/** dnsmasq's default --dhcp-lease-max is 1,000: raised so it can hold the benchmark's 10,000 leases */
const DNSMASQ_LEASE_MAX = 65_536;

export interface RunningServer {
  kind: BenchKind;
  pid: number;
  child: ChildProcess;
  /** natd's control socket (undefined for dnsmasq) */
  controlSocket?: string;
  /** the dnsmasq lease file (undefined for natd) */
  leaseFile?: string;
  /** the last output, for error messages */
  output(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** a fresh directory per instance (its state, leases and sockets live there) */
  instance: string;
  /** leases the server holds when it starts */
  seed?: readonly SeedLease[];
  /** natd only: write a V8 CPU profile into this directory on exit */
  cpuProfileDir?: string;
  /** natd only: extra flags for node itself (e.g. heap sizing experiments) */
  nodeFlags?: string[];
  /** natd only: run another build's cli.js (A/B of two builds on one namespace set, e.g. --compare-dist) */
  natdCli?: string;
  /** extra daemon flags (natd: e.g. a flag that turns the ICMP conflict probe off; issue 14: DHCPv6 for both) */
  extraArgs?: string[];
  /** each server's default conflict check (dnsmasq without --no-ping; natd gets no extraArgs for it anyway) */
  defaults?: boolean;
}

/** Flags natd may grow to turn its pre-OFFER ICMP probe off (the counterpart of dnsmasq's --no-ping). */
const NATD_NO_PROBE_FLAGS = ['--no-ping', '--no-probe', '--no-conflict-probe', '--no-conflict-check', '--no-icmp-probe'];

export interface ConflictCheck {
  /** the flag passed to turn the check off, when the server has one */
  flag?: string;
  /** what the server did before offering a new address, for the results table */
  description: string;
}

/** What each server does before offering an address, and how the benchmark runs it. */
export function conflictChecks(): Record<ServerKind, ConflictCheck> {
  let help = '';
  try {
    help = execFileSync(process.execPath, [NATD_CLI, '--help'], { encoding: 'utf8' });
  } catch {
    /* no help: assume no flag */
  }
  const flag = NATD_NO_PROBE_FLAGS.find((f) => new RegExp(`(^|\\s)${f}(\\s|$|,)`, 'm').test(help));
  return {
    natd: flag
      ? { flag, description: `none (${flag}; natd otherwise sends one ARP request per new address before the OFFER)` }
      : { description: 'ARP probe per new address before the OFFER, as natd has no flag to turn it off' },
    dnsmasq: { flag: '--no-ping', description: 'none (--no-ping)' },
  };
}

function natdArgv(stateDir: string, controlSocket: string, options: StartOptions): string[] {
  const nodeFlags = [...(options.nodeFlags ?? []), ...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [])];
  return [
    process.execPath, ...nodeFlags, options.natdCli ?? NATD_CLI,
    '--bridge', BRIDGE,
    '--subnet', `${GATEWAY}/${BENCH_PREFIX}`,
    '--dhcp-range', `${POOL_START}-${POOL_END}`,
    '--lease-time', '1h',
    '--upstream', UPLINK_WAN,
    '--domain', DOMAIN,
    '--cache-size', String(CACHE_SIZE),
    '--state-dir', stateDir,
    '--control-socket', controlSocket,
    '--log-level', 'warn',
    ...(options.extraArgs ?? []),
  ];
}

/**
 * dnsmasq as the issue gives it, plus: no config file of the host's, a pid file in our work dir, its log on stderr
 * (not the host's syslog) without the routine per-packet DHCP lines (natd logs none either: --quiet-dhcp), room
 * for 10,000 leases, and running as root so it can write the lease file in our root-owned work dir.
 */
function dnsmasqArgv(dir: string, leaseFile: string, defaults = false): string[] {
  return [
    'dnsmasq', '--no-daemon', '--conf-file=/dev/null', `--pid-file=${path.join(dir, 'dnsmasq.pid')}`,
    '--log-facility=-', '--quiet-dhcp',
    `--interface=${BRIDGE}`, '--bind-interfaces', '--except-interface=lo',
    `--dhcp-range=${POOL_START},${POOL_END},1h`, `--dhcp-leasefile=${leaseFile}`, `--dhcp-lease-max=${DNSMASQ_LEASE_MAX}`,
    ...(defaults ? [] : ['--no-ping']), `--server=${UPLINK_WAN}`, '--no-resolv', `--cache-size=${CACHE_SIZE}`, `--domain=${DOMAIN}`,
    '--dhcp-authoritative', '--user=root', '--group=root',
  ];
}

export async function startServer(net: BenchNetwork, kind: BenchKind, options: StartOptions): Promise<RunningServer> {
  const dir = path.join(net.workDir, `${kind}-${options.instance}`);
  mkdirSync(dir, { recursive: true });
  if (kind === 'kea' || kind === 'unbound') {
    const started = kind === 'kea' ? await startKea(net, dir, options.seed) : await startUnbound(net, dir);
    if (started.child.pid === undefined) throw new Error(`${kind} has no PID`);
    return { kind, pid: started.child.pid, child: started.child, output: () => started.output(), stop: async () => { await started.stop(5000); } };
  }
  const controlSocket = path.join(dir, 'control.sock');
  const leaseFile = path.join(dir, 'dnsmasq.leases');
  const stateDir = path.join(dir, 'state');
  if (options.seed && kind === 'natd') await writeNatdLeases(stateDir, options.seed);
  if (options.seed && kind === 'dnsmasq') writeDnsmasqLeases(leaseFile, options.seed);
  const argv = kind === 'natd' ? natdArgv(stateDir, controlSocket, options) : [...dnsmasqArgv(dir, leaseFile, options.defaults), ...(options.extraArgs ?? [])];
  // watchOutput keeps only a tail: a chatty server must not grow our memory, and a full pipe would block it
  const started = await net.topology.start(net.hostNs, argv);
  const { child } = started;
  const output = () => started.output();

  if (kind === 'natd') {
    // natd logs at warn here, so wait for its control socket to answer instead of the "natd ready" info line
    await waitForNatdControl(net, child, controlSocket, output, options.natdCli ?? NATD_CLI);
  } else {
    await started.waitForOutput(/started, version/, { what: 'dnsmasq' });
  }
  if (child.pid === undefined) throw new Error(`${kind} has no PID`);
  return {
    kind,
    pid: child.pid,
    child,
    ...(kind === 'natd' ? { controlSocket } : { leaseFile }),
    output,
    stop: async () => {
      await net.topology.stop(child, 5000);
    },
  };
}

/** `cli`: the build's own CLI (an older build's control protocol may differ from this tree's) */
async function waitForNatdControl(net: BenchNetwork, child: ChildProcess, controlSocket: string, output: () => string, cli: string): Promise<void> {
  await waitFor('natd ready (its control socket answers)', async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`natd exited before it was ready: ${output().slice(-2000)}`);
    return (await net.topology.run(net.hostNs, [process.execPath, cli, 'status', '--json', '--control-socket', controlSocket])).code === 0;
  }, 20_000, 200).catch((err: Error) => {
    throw err.message.startsWith('natd exited') ? err : new Error(`${err.message}: ${output().slice(-2000)}`);
  });
}
