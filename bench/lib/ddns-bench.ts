/**
 * The DDNS scenario (issue 15), natd only (dnsmasq has no dynamic DNS updates): a real BIND 9 in the wan namespace
 * (port 5300, beside the fake upstream), natd publishing to it with a TSIG key.
 *   1. resync: natd starts with 10,000 named leases in its journal and replaces every lease's A and PTR on BIND;
 *      we time it until nothing is pending (20,000 names), with natd's and named's CPU.
 *   2. boot storm with DDNS off and on: 200 new VMs at once (dhcp-load storm mode, as the boot-storm scenario), on the
 *      same network and seeded leases: DHCP must not wait for DNS, so the time until all are leased should not change.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './dhcp-load.js';
import { cpuSeconds } from './proc.js';
import { makeSeedLeases } from './seed-leases.js';
import { NATD_CLI, startServer, type RunningServer } from './servers.js';
import { BenchNetwork, PROJECT_ROOT, UPLINK_WAN } from './topology.js';

const DHCP_LOAD = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'dhcp-load.js');
const ZONE = 'lab.example';
/** the bench subnet is a /16: 10.77.0.0/16 */
const REVERSE_ZONE = '77.10.in-addr.arpa';
const PORT = 5300;

export interface DdnsBenchSettings {
  leases: number;
  stormClients: number;
  stormTimeoutMs: number;
  extraArgs: string[];
  log(line: string): void;
}

export interface DdnsBenchResult {
  leases: number;
  /** seconds from natd's start until every seeded lease's A and PTR are on BIND */
  resyncSeconds: number;
  namesPerSecond: number;
  natdCpuSeconds: number;
  namedCpuSeconds: number;
  /** boot storm: seconds until all clients are leased, without and with DDNS */
  stormSecondsWithout: number;
  stormSecondsWith: number;
  /** seconds after the storm until its names were on BIND too */
  stormPublishedAfterSeconds: number;
}

interface DdnsStatus {
  state: string;
  pending: number;
  succeeded: number;
  failed: number;
  owned: number;
}

async function ddnsStatus(net: BenchNetwork, server: RunningServer): Promise<DdnsStatus> {
  const out = await net.topology.runOk(net.hostNs, [process.execPath, NATD_CLI, 'status', '--json', '--control-socket', server.controlSocket!]);
  return (JSON.parse(out) as { ddns: DdnsStatus }).ddns;
}

async function waitForDdns(net: BenchNetwork, server: RunningServer, owned: number, timeoutMs: number): Promise<DdnsStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await ddnsStatus(net, server);
    if (s.pending === 0 && s.owned >= owned) return s;
    if (Date.now() > deadline) throw new Error(`DDNS not done after ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function writeNamed(dir: string): { keyFile: string; conf: string } {
  mkdirSync(dir, { recursive: true });
  const key = execFileSync('tsig-keygen', ['-a', 'hmac-sha256', 'natd-bench'], { encoding: 'utf8' });
  const keyFile = path.join(dir, 'natd.key');
  writeFileSync(keyFile, key, { mode: 0o600 });
  const soa = `$TTL 300\n@ IN SOA ns.${ZONE}. admin.${ZONE}. 1 3600 600 86400 300\n@ IN NS ns.${ZONE}.\n`;
  writeFileSync(path.join(dir, 'forward.db'), `${soa}ns IN A ${UPLINK_WAN}\n`);
  writeFileSync(path.join(dir, 'reverse.db'), soa);
  const policy = 'update-policy { grant natd-bench zonesub ANY; };';
  const conf = path.join(dir, 'named.conf');
  writeFileSync(conf, `options { directory "${dir}"; pid-file "${dir}/named.pid"; session-keyfile "${dir}/session.key";
  listen-on port ${PORT} { ${UPLINK_WAN}; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no; };
controls { };
include "${keyFile}";
zone "${ZONE}" { type primary; file "${dir}/forward.db"; ${policy} };
zone "${REVERSE_ZONE}" { type primary; file "${dir}/reverse.db"; ${policy} };
`);
  return { keyFile, conf };
}

async function startNamed(net: BenchNetwork, conf: string): Promise<ChildProcess> {
  const child = net.topology.spawn(net.topology.wan, ['named', '-g', '-4', '-n', '1', '-u', 'root', '-c', conf]);
  let log = '';
  child.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`named not running after 20 s: ${log.slice(-2000)}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-16_384);
      if (log.includes('running')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`named exited ${code}: ${log.slice(-2000)}`));
    });
  });
  return child;
}

async function storm(net: BenchNetwork, s: DdnsBenchSettings, firstClient: number): Promise<number> {
  const args = ['--device', 'eth0', '--mode', 'storm', '--clients', String(s.stormClients), '--timeout-ms', String(s.stormTimeoutMs),
    '--first-client', String(firstClient), '--hostname-prefix', `storm${firstClient}-`];
  const r = await net.topology.run(net.clientNs, [process.execPath, DHCP_LOAD, ...args], { timeoutMs: s.stormTimeoutMs + 30_000 });
  if (r.code !== 0) throw new Error(`dhcp-load exited ${r.code}: ${r.stderr.trim()}`);
  const load = JSON.parse(r.stdout) as LoadResult;
  return load.completed === s.stormClients ? load.elapsedSeconds : NaN;
}

export async function ddnsBench(s: DdnsBenchSettings): Promise<DdnsBenchResult> {
  const net = await BenchNetwork.create();
  try {
    const { keyFile, conf } = writeNamed(path.join(net.workDir, 'named'));
    const named = await startNamed(net, conf);
    const seed = makeSeedLeases(s.leases, 'vm', Date.now());
    // without DDNS first: the storm's reference
    const plain = await startServer(net, 'natd', { instance: 'plain', seed, extraArgs: s.extraArgs });
    const stormSecondsWithout = await storm(net, s, 4_000_000);
    await plain.stop();

    const ddnsArgs = ['--ddns-server', `${UPLINK_WAN}#${PORT}`, '--ddns-zone', ZONE, '--ddns-reverse', '--ddns-key-file', keyFile];
    const namedCpu0 = cpuSeconds(named.pid!);
    const t0 = performance.now();
    const natd = await startServer(net, 'natd', { instance: 'ddns', seed, extraArgs: [...s.extraArgs, ...ddnsArgs] });
    // natd's CPU is read from when its control socket answers (startup, the journal's 10,000 leases, is not DDNS);
    // the resync already runs by then, so this undercounts it slightly
    const natdCpu0 = cpuSeconds(natd.pid);
    await waitForDdns(net, natd, 2 * s.leases, 300_000);
    const resyncSeconds = (performance.now() - t0) / 1000;
    const natdCpuSeconds = cpuSeconds(natd.pid) - natdCpu0;
    const namedCpuSeconds = cpuSeconds(named.pid!) - namedCpu0;
    s.log(`  resync of ${s.leases} leases (${2 * s.leases} names): ${resyncSeconds.toFixed(1)} s, natd ${natdCpuSeconds.toFixed(1)} s CPU, named ${namedCpuSeconds.toFixed(1)} s CPU`);

    const stormSecondsWith = await storm(net, s, 5_000_000);
    const t1 = performance.now();
    await waitForDdns(net, natd, 2 * (s.leases + s.stormClients), 120_000);
    const stormPublishedAfterSeconds = (performance.now() - t1) / 1000;
    s.log(`  boot storm of ${s.stormClients}: all leased in ${stormSecondsWithout.toFixed(2)} s without DDNS, ${stormSecondsWith.toFixed(2)} s with; names on BIND ${stormPublishedAfterSeconds.toFixed(1)} s after`);
    await natd.stop();
    return {
      leases: s.leases, resyncSeconds, namesPerSecond: (2 * s.leases) / resyncSeconds, natdCpuSeconds, namedCpuSeconds,
      stormSecondsWithout, stormSecondsWith, stormPublishedAfterSeconds,
    };
  } finally {
    await net.destroy();
  }
}
