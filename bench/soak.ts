#!/usr/bin/env node
/**
 * `npm run soak -- [--duration 10m] [--mode rotation|parallel] [--out FILE]`: natd under every hostile-guest attack of
 * issue 12 for a while, next to well-behaved neighbours; reports natd's peak memory and what the neighbours lost.
 * Not in CI (it takes minutes and needs root for namespaces). Reports, never asserts.
 *
 * Set-up, all in namespaces made here and deleted at the end (also on failure and SIGINT/SIGTERM):
 *   vm1 10.77.0.201  DNS attacker and RA sender      vm2 10.77.0.202  DNS neighbour (paced queries, answers matched)
 *   vm3 (udhcpc)     DHCP neighbour (lease every 3 s) vm4 10.77.0.204  DHCP attacker, never-answered-zone flood
 *   vm5 (udhcpc)     claims names db, wpad, ...       vm6 (udhcpc)     first holder of the name db
 *   wan              test/support/fake-upstream.mjs (60 KB TXT names, never-answering zone, TTL 2^31)
 * natd (dist/src/cli.js, default limits, --no-firewall) serves br0 with the pool .10-.199.
 *
 * Attacks run in rotation (default: each gets an equal slot, at most 30 s, in turn until the duration is over) or
 * all in parallel. Each is bounded in rate and time (see bench/lib/soak-attacks.ts). Every second natd's VmRSS is
 * sampled; at the end its VmHWM, `natd metrics` and the log are read. `--only NAME,...` runs just those attacks.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GATEWAY, isRoot, SUBNET_PREFIX, Topology, UPLINK_WAN, BRIDGE } from '../src/demo/topology.js';
import { textTable } from './lib/stats.js';
import { FIXTURES, NATD_CLI } from '../test/support/paths.js';
import { startFakeUpstreamIn } from '../test/support/fake-upstream-ns.js';
import {
  dhcpAttacks, dhcpNeighbourLoad, dnsAttacks, dnsNeighbourLoad, hostAttack, nameAttack, runTool, udhcpc,
  type Attack, type SoakAddresses, type SoakTools, type SoakVms,
} from './lib/soak-attacks.js';

const SLOT_MAX_S = 30;
const SLOT_MIN_S = 5;

const STATIC = { dnsAttacker: '10.77.0.201', dnsNeighbour: '10.77.0.202', dhcpAttacker: '10.77.0.204' };
const ADDRESSES: SoakAddresses = { gateway: GATEWAY, broadcast: '10.77.0.255', network: '10.77.0.0', domain: 'vm' };

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** "90s", "10m", "1h", "600" (seconds) → ms */
function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--duration: expected e.g. 90s, 10m, got ${text}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Natd {
  child: ChildProcess;
  controlSocket: string;
  levels: Record<string, number>;
  /** warn/error messages by text, with counts */
  messages: Map<string, number>;
}

async function startNatd(topology: Topology, workDir: string): Promise<Natd> {
  const stateDir = path.join(workDir, 'natd-state');
  const controlSocket = path.join(stateDir, 'control.sock');
  const child = topology.spawn(topology.host, [process.execPath, NATD_CLI, '--state-dir', stateDir, '--control-socket', controlSocket,
    '--bridge', BRIDGE, '--upstream', UPLINK_WAN, '--domain', ADDRESSES.domain, '--no-firewall', '--dhcp-range', '10.77.0.10-10.77.0.199']);
  const natd: Natd = { child, controlSocket, levels: {}, messages: new Map() };
  let partial = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`natd not ready after 20 s: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`natd exited (${code}) before ready: ${stderr}`)));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        let parsed: { level?: string; msg?: string };
        try {
          parsed = JSON.parse(line) as typeof parsed;
        } catch {
          parsed = { level: 'unparsed', msg: line.slice(0, 120) };
        }
        const level = parsed.level ?? 'unknown';
        natd.levels[level] = (natd.levels[level] ?? 0) + 1;
        if (level !== 'info' && level !== 'debug') natd.messages.set(`${level}: ${parsed.msg}`, (natd.messages.get(`${level}: ${parsed.msg}`) ?? 0) + 1);
        if (parsed.msg === 'natd ready') {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  await ready;
  return natd;
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN; // gone
  }
}

/** Runs the attacks for durationMs: in turn (each an equal slot of at most 30 s) or all at once. */
async function runAttacks(topology: Topology, attacks: Attack[], durationMs: number, mode: 'rotation' | 'parallel', stopped: () => boolean): Promise<void> {
  const end = performance.now() + durationMs;
  if (mode === 'parallel') {
    for (const attack of attacks) attack.start(topology);
    while (performance.now() < end && !stopped()) await sleep(Math.min(1000, end - performance.now()));
    await Promise.all(attacks.map((a) => a.stop()));
    return;
  }
  const slotMs = Math.min(SLOT_MAX_S * 1000, Math.max(SLOT_MIN_S * 1000, durationMs / attacks.length));
  for (let i = 0; performance.now() < end && !stopped(); i++) {
    const attack = attacks[i % attacks.length]!;
    const slotEnd = Math.min(end, performance.now() + slotMs);
    log(`[${new Date().toISOString().slice(11, 19)}] ${attack.name} for ${((slotEnd - performance.now()) / 1000).toFixed(0)} s`);
    attack.start(topology);
    while (performance.now() < slotEnd && !stopped()) await sleep(Math.min(500, slotEnd - performance.now()));
    await attack.stop();
  }
}

function metricLines(text: string): string[] {
  return text.split('\n').filter((l) => /^natd_(dns_limited|dns_dropped|dns_cache_bytes|dns_cache_evictions|dhcp_)/.test(l));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      mode: { type: 'string', default: 'rotation' },
      out: { type: 'string' },
      /** comma-separated attack names: run only these (trying one attack out) */
      only: { type: 'string' },
    },
  });
  const durationMs = parseDuration(values.duration!);
  const mode = values.mode === 'parallel' ? 'parallel' : 'rotation';
  if (!isRoot()) throw new Error('soak: needs root (it creates network namespaces)');

  const workDir = mkdtempSync(path.join(tmpdir(), 'natd-soak-'));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  let interrupted = false;
  // the Topology's own handler deletes the namespaces and re-raises; this one only stops the schedule early
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (interrupted = true));

  const topology = Topology.create({ vms: 6 });
  let sampler: NodeJS.Timeout | undefined;
  try {
    const [vm1, vm2, vm3, vm4, vm5, vm6] = [1, 2, 3, 4, 5, 6].map((i) => topology.vm(i).ns) as [string, string, string, string, string, string];
    for (const [ns, address] of [[vm1, STATIC.dnsAttacker], [vm2, STATIC.dnsNeighbour], [vm4, STATIC.dhcpAttacker]] as const) {
      await topology.runOk(ns, ['ip', 'addr', 'add', `${address}/${SUBNET_PREFIX}`, 'dev', 'eth0']);
      // as a guest has it (DHCP's router option); also what lets a send to 255.255.255.255 find a route
      await topology.runOk(ns, ['ip', 'route', 'add', 'default', 'via', GATEWAY]);
    }
    await startFakeUpstreamIn(topology);
    const natd = await startNatd(topology, workDir);
    const pid = natd.child.pid!;
    const tools: SoakTools = { fixtures: FIXTURES, node: process.execPath, python: '/usr/bin/python3', workDir };
    let dbHolderAddress: string | undefined;
    const vms: SoakVms = {
      dnsAttacker: vm1, upstreamFlooder: vm4, dnsNeighbour: vm2, dhcpAttacker: vm4, dhcpAttackerAddress: STATIC.dhcpAttacker,
      nameClaimer: vm5, dbHolder: vm6, dbHolderAddress: () => dbHolderAddress,
    };
    dbHolderAddress = await udhcpc(topology, vm6, tools, { hostname: 'db' });
    log(`natd pid ${pid} ready; db.${ADDRESSES.domain} held by vm6 at ${dbHolderAddress ?? '(no lease!)'}`);

    const rss: number[] = [];
    const startRssKiB = statusKiB(pid, 'VmRSS');
    sampler = setInterval(() => rss.push(statusKiB(pid, 'VmRSS')), 1000);
    const neighbours = [dnsNeighbourLoad(vms, ADDRESSES, tools), dhcpNeighbourLoad(vm3, tools)];
    const only = values.only?.split(',');
    const attacks = [
      ...dnsAttacks(vms, ADDRESSES, tools), ...dhcpAttacks(vms, ADDRESSES, tools), nameAttack(vms, ADDRESSES, tools),
      hostAttack(vms, tools, BRIDGE),
    ].filter((a) => !only || only.includes(a.name));
    if (attacks.length === 0) throw new Error(`--only ${values.only}: no such attack`);
    const sysctl = await runTool(topology, topology.host, ['sysctl', `net.ipv6.conf.${BRIDGE}.accept_ra`, `net.ipv6.conf.${BRIDGE}.autoconf`, `net.ipv6.conf.${BRIDGE}.forwarding`], 5000);
    log(`host bridge IPv6 settings at start: ${sysctl.stdout.trim().replace(/\n/g, ', ')}`);
    const started = performance.now();
    for (const n of neighbours) n.start(topology);
    log(`soak: ${attacks.length} attacks, ${mode}, ${(durationMs / 1000).toFixed(0)} s`);
    await runAttacks(topology, attacks, durationMs, mode, () => interrupted);
    await Promise.all(neighbours.map((n) => n.stop()));
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    sampler = undefined;

    const alive = natd.child.exitCode === null && natd.child.signalCode === null && !Number.isNaN(statusKiB(pid, 'VmRSS'));
    const hwmKiB = statusKiB(pid, 'VmHWM');
    const endRssKiB = statusKiB(pid, 'VmRSS');
    const metrics = alive
      ? (await runTool(topology, topology.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket], 10_000)).stdout
      : '';
    const dns = neighbours[0]!.counts();
    const dhcp = neighbours[1]!.counts();
    const dnsSent = (dns.hitSent ?? 0) + (dns.missSent ?? 0);
    const dnsAnswered = (dns.hitAnswered ?? 0) + (dns.missAnswered ?? 0);
    const samples = rss.filter((v) => !Number.isNaN(v));
    const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;
    const report = {
      durationS: Math.round(seconds),
      mode,
      natd: {
        alive,
        rssStartMiB: mib(startRssKiB),
        peakRssMiB: mib(hwmKiB), // VmHWM: the kernel's own peak, between samples included
        sampledRssMaxMiB: mib(Math.max(...samples)),
        rssEndMiB: mib(endRssKiB),
        rssSamples: samples.length,
        logLevels: natd.levels,
        warnings: Object.fromEntries([...natd.messages].sort((a, b) => b[1] - a[1]).slice(0, 15)),
        metrics: metricLines(metrics),
      },
      neighbourDns: {
        sent: dnsSent, answered: dnsAnswered, lost: dnsSent - dnsAnswered,
        lostPercent: dnsSent ? Math.round(((dnsSent - dnsAnswered) / dnsSent) * 10_000) / 100 : 0,
        notNoerror: (dns.hitFailed ?? 0) + (dns.missFailed ?? 0), ...dns,
      },
      neighbourDhcp: dhcp,
      attacks: Object.fromEntries(attacks.map((a) => [a.name, { what: a.what, ...a.counts() }])),
    };
    printSummary(report);
    if (values.out) {
      writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
      log(`soak: report written to ${values.out}`);
    }
  } finally {
    if (sampler) clearInterval(sampler);
    await topology.destroy();
  }
}

function printSummary(r: {
  durationS: number; mode: string;
  natd: { alive: boolean; rssStartMiB: number; peakRssMiB: number; sampledRssMaxMiB: number; rssEndMiB: number; logLevels: Record<string, number> };
  neighbourDns: { sent: number; answered: number; lost: number; lostPercent: number; notNoerror: number };
  neighbourDhcp: Record<string, number>;
  attacks: Record<string, Record<string, number | string>>;
}): void {
  const rows: string[][] = [
    ['duration', `${r.durationS} s (${r.mode})`],
    ['natd alive at the end', r.natd.alive ? 'yes' : 'NO'],
    ['natd RSS at start', `${r.natd.rssStartMiB} MiB`],
    ['natd peak RSS (VmHWM)', `${r.natd.peakRssMiB} MiB`],
    ['natd RSS, max of 1 s samples', `${r.natd.sampledRssMaxMiB} MiB`],
    ['natd RSS at the end', `${r.natd.rssEndMiB} MiB`],
    ['natd log lines by level', Object.entries(r.natd.logLevels).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['neighbour DNS sent / answered', `${r.neighbourDns.sent} / ${r.neighbourDns.answered}`],
    ['neighbour DNS lost', `${r.neighbourDns.lost} (${r.neighbourDns.lostPercent} %)`],
    ['neighbour DNS answered not NOERROR', String(r.neighbourDns.notNoerror)],
    ['neighbour DHCP attempts / ok', `${r.neighbourDhcp.attempts ?? 0} / ${r.neighbourDhcp.ok ?? 0}`],
  ];
  process.stdout.write(`\n${textTable(['soak', 'result'], rows)}\n\n`);
  const attackRows = Object.entries(r.attacks).map(([name, c]) => [
    name, String(c.rounds ?? 0),
    Object.entries(c).filter(([k]) => !['what', 'rounds'].includes(k) && c[k] !== 0).map(([k, v]) => `${k}=${v}`).join(' '),
  ]);
  process.stdout.write(`${textTable(['attack', 'rounds', 'counts (zeros left out)'], attackRows)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`soak failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1); // the 'exit' handlers delete the namespaces and the work dir
  },
);
