/**
 * issue 14: neighbour changes as they happen: `ip -6 monitor neigh` lines (ipv6/neigh-monitor-line.ts), the learner
 * applying them in batches (ipv6/neighbours.ts: observe, flush, MAX_PER_MAC, probes of a guest's older addresses),
 * the monitor child (restart with backoff, no orphan on close) and the kernel prober's bounds.
 */
import { describe, expect, it } from 'vitest';
import { GuestAddresses } from '../../src/ipv6/guest-addresses.js';
import { NeighbourLearner } from '../../src/ipv6/neighbours.js';
import { parseMonitorLine } from '../../src/ipv6/neigh-monitor-line.js';
import { NeighbourMonitor } from '../../src/ipv6/neigh-monitor.js';
import { NeighbourProber } from '../../src/ipv6/neigh-prober.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { recordingLogger } from '../support/recording-logger.js';
import { waitUntil } from '../support/wait.js';

const NET = parseIpv6('fd00:10:10::')!;
const MAC_A = '52:54:00:00:00:0a';
const MAC_B = '52:54:00:00:00:0b';

describe('ip -6 monitor neigh lines', () => {
  it('reads new, Deleted and miss lines, with or without dev and label', () => {
    expect(parseMonitorLine('fd00:10:10::5 lladdr 52:54:00:AB:00:01 REACHABLE ')).toEqual({ kind: 'new', entry: { address: 'fd00:10:10::5', mac: '52:54:00:ab:00:01', states: ['REACHABLE'] } });
    expect(parseMonitorLine('Deleted fd00:10:10::5 dev br0 lladdr 52:54:00:ab:00:01 STALE')).toEqual({ kind: 'deleted', entry: { address: 'fd00:10:10::5', dev: 'br0', mac: '52:54:00:ab:00:01', states: ['STALE'] } });
    expect(parseMonitorLine('Deleted fd00:10:10::9 FAILED')).toEqual({ kind: 'deleted', entry: { address: 'fd00:10:10::9', states: ['FAILED'] } });
    expect(parseMonitorLine('miss fd00:10:10::9 INCOMPLETE')?.kind).toBe('miss');
    expect(parseMonitorLine('[NEIGH]fd00:10:10::9 lladdr 52:54:00:ab:00:01 STALE')?.entry.mac).toBe('52:54:00:ab:00:01');
    expect(parseMonitorLine('Deleted')).toBeUndefined();
    expect(parseMonitorLine('Deleted 10.0.0.1 lladdr 52:54:00:ab:00:01 STALE')).toBeUndefined();
    expect(parseMonitorLine('fd00::1 ' + 'x '.repeat(600))).toBeUndefined(); // longer than iproute2 prints
  });
});

describe('NeighbourLearner events', () => {
  function learner(now: { t: number }, extra: { perGuest?: number; maxPerMac?: number } = {}) {
    const table = new GuestAddresses(NET, { perGuest: extra.perGuest ?? 2, total: 100 });
    const probes: string[] = [];
    let changes = 0;
    table.onChanged = () => changes++;
    const l = new NeighbourLearner({
      bridge: 'br0', network: NET, table, namesByMac: () => new Map([[MAC_A, 'a']]), read: () => Promise.resolve(''), logger: recordingLogger(),
      now: () => now.t, graceMs: 1000, freshMs: 100, maxTracked: 50, maxPerMac: extra.maxPerMac ?? 4, probe: (address, mac) => probes.push(`${address} ${mac}`),
    });
    return { table, l, probes, changes: () => changes };
  }

  it('applies events in one batch per flush: a burst costs one table update per guest', () => {
    const now = { t: 0 };
    const { table, l, changes } = learner(now);
    for (let i = 0; i < 50; i++) l.observeLine(`fd00:10:10::1 lladdr ${MAC_A} ${i % 2 ? 'STALE' : 'REACHABLE'}`);
    l.observeLine(`fd00:10:10::2 lladdr ${MAC_B} STALE`);
    expect(table.addressesOfMac(MAC_A)).toEqual([]); // not yet: batched
    l.flush();
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1']);
    expect(table.ownerOf('fd00:10:10::1')?.name).toBe('a');
    expect(table.addressesOfMac(MAC_B)).toEqual(['fd00:10:10::2']);
    expect(changes()).toBe(2);
    expect(l.stats()).toMatchObject({ flushes: 1, tracked: 2, events: { new: 51 } });
  });

  it('FAILED drops at once; Deleted of a usable entry ages out; miss, link-local, other devices and junk are counted only', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.observeLine(`fd00:10:10::1 lladdr ${MAC_A} REACHABLE`);
    l.observeLine(`fd00:10:10::3 lladdr ${MAC_A} STALE`);
    l.flush();
    l.observeLine(`Deleted fd00:10:10::3 lladdr ${MAC_A} STALE`);
    l.observeLine('fd00:10:10::1 FAILED');
    l.observeLine('miss fd00:10:10::7 INCOMPLETE');
    l.observeLine(`fe80::1 lladdr ${MAC_A} REACHABLE`);
    l.observeLine(`fd00:10:10::8 dev eth9 lladdr ${MAC_A} REACHABLE`);
    l.observeLine('garbage');
    l.flush();
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::3']);
    expect(l.stats().events).toEqual({ new: 5, deleted: 1, miss: 1, failed: 1, ignored: 2, invalid: 1 });
    now.t = 2000; // the resync: ::3 gone from the table long enough
    l.learn('');
    expect(table.addressesOfMac(MAC_A)).toEqual([]);
  });

  it('a guest showing a new address has its published ones probed (once per PROBE_EVERY_MS); FAILED moves the first address', () => {
    const now = { t: 0 };
    const { table, l, probes } = learner(now);
    l.observeLine(`fd00:10:10::1 lladdr ${MAC_A} REACHABLE`);
    l.flush();
    expect(probes).toEqual([]);
    now.t = 50;
    l.observeLine(`fd00:10:10::beef lladdr ${MAC_A} REACHABLE`);
    l.flush();
    expect(probes).toEqual([`fd00:10:10::1 ${MAC_A}`]);
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1', 'fd00:10:10::beef']); // both in use: the older first
    l.observeLine(`fd00:10:10::bee1 lladdr ${MAC_A} STALE`);
    expect(probes).toHaveLength(2); // ::beef now; ::1 not again
    l.observeLine('fd00:10:10::1 FAILED'); // the kernel's probe: nobody answered
    l.flush();
    expect(table.addressesOfMac(MAC_A)[0]).toBe('fd00:10:10::beef');
  });

  it('the first address going STALE while another is in use is probed', () => {
    const now = { t: 0 };
    const { l, probes } = learner(now);
    l.learn(`fd00:10:10::1 lladdr ${MAC_A} REACHABLE\nfd00:10:10::2 lladdr ${MAC_A} REACHABLE`);
    expect(probes).toEqual([]); // a dump of known addresses: no probe
    now.t = 40_000;
    l.observeLine(`fd00:10:10::2 lladdr ${MAC_A} REACHABLE`);
    l.observeLine(`fd00:10:10::1 lladdr ${MAC_A} STALE`);
    expect(probes).toEqual([`fd00:10:10::1 ${MAC_A}`]);
  });

  it('the full read runs at the pace set (RESYNC_MS beside the monitor, POLL_MS while it is down)', async () => {
    let reads = 0;
    const l = new NeighbourLearner({ bridge: 'br0', network: NET, table: new GuestAddresses(NET), namesByMac: () => new Map(), read: () => (reads++, Promise.resolve('')), logger: recordingLogger(), pollMs: 60_000 });
    l.start();
    await waitUntil('the first read', () => reads, (n) => n >= 1, 2000, 5);
    l.setPollMs(20);
    await waitUntil('reads at the new pace', () => reads, (n) => n >= 4, 2000, 5);
    l.close();
  });

  it('a MAC spraying addresses churns its own pairs (MAX_PER_MAC), never others\'', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.observeLine(`fd00:10:10::1 lladdr ${MAC_A} REACHABLE`);
    l.flush();
    for (let i = 0; i < 1000; i++) {
      now.t = i;
      l.observeLine(`fd00:10:10::${(0x1000 + i).toString(16)} lladdr ${MAC_B} STALE`);
    }
    l.flush();
    expect(l.stats()).toMatchObject({ tracked: 5, trackedEvicted: 996, flushes: 2 });
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1']);
    expect(table.addressesOfMac(MAC_B)).toHaveLength(2);
  });
});

describe('NeighbourMonitor', () => {
  const node = process.execPath;

  it('hands on complete lines, drops over-long ones, restarts a child that exits (with backoff), and close() leaves no child', async () => {
    const lines: string[] = [];
    let starts = 0;
    const script = 'process.stdout.write("fd00::1 lladdr 52:54:00:00:00:01 STALE\\nfd00::2 ll"); setTimeout(() => { process.stdout.write("addr 52:54:00:00:00:02 REACHABLE\\n" + "x".repeat(3000) + "\\nfd00::3 FAILED\\n"); process.exit(0) }, 20)';
    let stops = 0;
    const m = new NeighbourMonitor({ bridge: 'br0', logger: recordingLogger(), command: node, args: ['-e', script], onLine: (l) => lines.push(l), onStart: () => starts++, onStop: () => stops++, minBackoffMs: 20, maxBackoffMs: 40 });
    m.start();
    await waitUntil('three starts', () => starts, (n) => n >= 3, 10_000, 10);
    expect(lines.slice(0, 3)).toEqual(['fd00::1 lladdr 52:54:00:00:00:01 STALE', 'fd00::2 lladdr 52:54:00:00:00:02 REACHABLE', 'fd00::3 FAILED']);
    expect(m.stats()).toMatchObject({ restarts: starts - 1 });
    expect(stops).toBeGreaterThanOrEqual(2); // each exit: the learner polls at the old pace until the next start
    expect(m.stats().linesTooLong).toBeGreaterThanOrEqual(2);
    await m.close();
    const after = starts;
    await new Promise((r) => setTimeout(r, 150));
    expect(starts).toBe(after); // no restart after close
    expect(m.stats().running).toBe(false);
  });

  it('close() ends the running command (through its sh wrapper: stdin closed, SIGTERM)', async () => {
    const lines: string[] = [];
    const m = new NeighbourMonitor({ bridge: 'br0', logger: recordingLogger(), command: node, args: ['-e', 'console.log(String(process.pid)); setInterval(() => {}, 1000)'], onLine: (l) => lines.push(l) });
    m.start();
    await waitUntil('running', () => lines.length, (n) => n >= 1, 10_000, 10);
    const pid = Number(lines[0]);
    expect(() => process.kill(pid, 0)).not.toThrow();
    await m.close();
    await waitUntil('the command gone', () => { try { process.kill(pid, 0); return false; } catch { return true; } }, (gone) => gone, 5000, 20);
  });

  it('an error from the child (ENOBUFS) asks for a resync, at most once per lossEveryMs', async () => {
    let losses = 0;
    const script = 'for (let i = 0; i < 5; i++) process.stderr.write("netlink receive error No buffer space available (105)\\n"); setTimeout(() => process.stderr.write("again\\n"), 300); setInterval(() => {}, 1000)';
    const m = new NeighbourMonitor({ bridge: 'br0', logger: recordingLogger(), command: node, args: ['-e', script], onLine: () => undefined, onLoss: () => losses++, lossEveryMs: 200 });
    m.start();
    await waitUntil('two losses', () => losses, (n) => n >= 2, 10_000, 10);
    expect(losses).toBe(2);
    expect(m.stats().errors).toBeGreaterThanOrEqual(2);
    await m.close();
  });

  it('a command that cannot run is retried, counted, and never throws', async () => {
    const log = recordingLogger();
    const m = new NeighbourMonitor({ bridge: 'br0', logger: log, command: '/nonexistent/ip', onLine: () => undefined, minBackoffMs: 10, maxBackoffMs: 20 });
    m.start();
    await waitUntil('retried', () => m.stats().restarts, (n) => n >= 2, 10_000, 10);
    await m.close();
    expect(m.stats().running).toBe(false);
  });
});

describe('NeighbourProber', () => {
  it('batches probes, at most one run per interval and maxPerBatch lines, a bounded queue', async () => {
    const runs: string[][] = [];
    const p = new NeighbourProber({ bridge: 'br0', logger: recordingLogger(), run: (lines) => (runs.push(lines), Promise.resolve()), minIntervalMs: 50, maxPerBatch: 3, maxQueued: 5 });
    for (let i = 1; i <= 8; i++) p.request(`fd00::${i}`, MAC_A);
    p.request('fd00::1', MAC_A); // already queued
    expect(p.stats()).toMatchObject({ requested: 5, dropped: 3 });
    await waitUntil('two runs', () => runs.length, (n) => n >= 2, 5000, 5);
    expect(runs[0]).toEqual([`neigh change fd00::1 dev br0 lladdr ${MAC_A} nud probe`, `neigh change fd00::2 dev br0 lladdr ${MAC_A} nud probe`, `neigh change fd00::3 dev br0 lladdr ${MAC_A} nud probe`]);
    expect(runs[1]).toHaveLength(2);
    p.close();
  });
});
