/**
 * Lease events to an operator's program (`--dhcp-script`, dnsmasq's dhcp-script): under DHCP load the script hears
 * every lease's `add` once (renewals do not call it), a release is a `del` after its `add`, a restart announces the
 * journal's leases as `old`, and `natd leases --watch` streams the same events; a script that hangs is killed at its timeout and DHCP keeps answering meanwhile.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot, Topology } from '../support/netns.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir } from '../support/natd-process.js';
import { startDhcpSim } from '../support/dhcp-sim.js';
import { waitUntil } from '../support/wait.js';

const CLIENTS = 40;

function scriptFile(dir: string, body: string): string {
  const file = path.join(dir, 'hook.sh');
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

/** A udhcpc that holds a lease until stopped, then releases it (-R; SIGTERM): returns the address it had. */
async function leaseThenRelease(topo: Topology, ns: string): Promise<string> {
  const log = path.join(tempDir('udhcpc-'), 'events.log');
  const child = topo.spawn(ns, ['env', `UDHCPC_LOG=${log}`, 'busybox', 'udhcpc', '-i', 'eth0', '-f', '-R', '-T', '1', '-t', '10', '-s', path.join(FIXTURES, 'udhcpc-script.sh')]);
  let address: string | undefined;
  await until(() => (address = /event=bound ip=(\S+)/.exec(existsSync(log) ? readFileSync(log, 'utf8') : '')?.[1]) !== undefined, 'udhcpc bound');
  await topo.stop(child);
  return address!;
}

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(!isRoot() && !process.env.CI)('--dhcp-script (lease events)', () => {
  let topo: Topology;
  const started: { child: import('node:child_process').ChildProcess }[] = [];
  afterEach(async () => {
    for (const n of started.splice(0)) if (n.child.exitCode === null) await topo.stop(n.child);
  });
  beforeAll(() => {
    topo = Topology.create({ vms: 2 });
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  it('calls the script with add/del in order under load, never for renewals, and old for each lease at start', async () => {
    const dir = tempDir('natd-script-');
    const log = path.join(dir, 'events.log');
    const script = scriptFile(dir, `echo "$1 $2 $3 \${4:-*} $DNSMASQ_INTERFACE" >> ${log}`);
    const stateDir = path.join(dir, 'state');
    const natd = await startNatd(topo, ['--bridge', 'br0', '--no-firewall', '--dhcp-script', script], { stateDir });
    started.push(natd);

    // a watcher over the control socket, from before the first lease
    const watcher = topo.spawn(topo.host, [process.execPath, NATD_CLI, 'leases', '--watch', '--json', '--control-socket', natd.controlSocket]);
    let watched = '';
    watcher.stdout!.setEncoding('utf8').on('data', (d: string) => (watched += d));
    const watchedEvents = (): { action: string; mac: string; address: string }[] => watched.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; mac: string; address: string });
    // connected, not merely started (a fixed 300 ms was less than a node start-up on a loaded machine)
    const watchers = async () => (JSON.parse(await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'status', '--json', '--control-socket', natd.controlSocket])) as { control?: { watchers: number } }).control?.watchers;
    await waitUntil('the lease watcher connected', watchers, (n) => n === 1, 20_000, 100);

    const sim = await startDhcpSim(topo, topo.vm(1).ns, { clients: CLIENTS, reconfirmMs: 300 });
    await until(() => sim.acked().size === CLIENTS, `${CLIENTS} simulated clients bound`);
    await until(() => lines(log).length >= CLIENTS, 'an add per lease');
    await sleep(1500); // the clients keep re-confirming: renewals must not reach the script
    await sim.stop();
    const adds = lines(log);
    expect(adds).toHaveLength(CLIENTS);
    const acked = sim.acked();
    expect(new Map(adds.map((l) => l.split(' ')).map(([action, mac, ip, , iface]) => {
      expect(action).toBe('add');
      expect(iface).toBe('br0');
      return [mac!, ip!];
    }))).toEqual(acked);

    // a real client: its lease is an add, its release (udhcpc -R) a del, in that order
    const address = await leaseThenRelease(topo, topo.vm(2).ns);
    expect(address).toMatch(/^10\.77\.0\./);
    await until(() => lines(log).some((l) => l.startsWith(`del ${topo.vm(2).mac} `)), 'the release as del');
    expect(lines(log).slice(CLIENTS).map((l) => l.split(' ').slice(0, 3).join(' '))).toEqual([
      `add ${topo.vm(2).mac} ${address}`,
      `del ${topo.vm(2).mac} ${address}`,
    ]);
    // the watcher saw the same lease events, and the renewals the script is not called for
    await until(() => watchedEvents().some((e) => e.action === 'del'), 'the watcher to see the release');
    const seen = watchedEvents();
    expect(seen.filter((e) => e.action !== 'renew').map((e) => `${e.action} ${e.mac} ${e.address}`)).toEqual(lines(log).map((l) => l.split(' ').slice(0, 3).join(' ')));
    expect(seen.filter((e) => e.action === 'renew').length).toBeGreaterThan(0);
    expect(await topo.stop(natd.child)).toBe(0);
    // the daemon's stop ends the stream: the watcher exits by itself, with status 0
    await until(() => watcher.exitCode !== null, 'the watcher to end with the daemon', 15_000);
    expect(watcher.exitCode).toBe(0);

    // a restart announces every lease in the journal once, as old
    writeFileSync(log, '');
    const again = await startNatd(topo, ['--bridge', 'br0', '--no-firewall', '--dhcp-script', script], { stateDir });
    started.push(again);
    await until(() => lines(log).length >= CLIENTS, 'old per journaled lease');
    await sleep(300);
    expect(lines(log).filter((l) => l.startsWith('old ')).map((l) => l.split(' ')[1]).sort()).toEqual([...acked.keys()].sort());
    expect(lines(log)).toHaveLength(CLIENTS);
    expect(await topo.stop(again.child)).toBe(0);
  }, 90_000);

  it('kills a hanging script at its timeout while DHCP keeps answering', async () => {
    const dir = tempDir('natd-script-hang-');
    const marks = path.join(dir, 'started.log');
    const script = scriptFile(dir, `echo "$1 $3" >> ${marks}\nsleep 60`);
    const natd = await startNatd(topo, ['--bridge', 'br0', '--no-firewall', '--dhcp-script', script, '--dhcp-script-timeout', '1s']);
    started.push(natd);
    // each lease queues a script run that hangs; the leases themselves come at once
    expect(await leaseThenRelease(topo, topo.vm(1).ns)).toMatch(/^10\.77\.0\./);
    const second = await runUdhcpc(topo, topo.vm(2).ns);
    expect(second.events.find((e) => e.event === 'bound')?.ip).toMatch(/^10\.77\.0\./);
    // add(vm1), del(vm1), add(vm2): three runs, one after the other, each killed after 1 s
    await until(() => lines(marks).length >= 3, 'three script runs', 15_000);
    const metrics = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
    expect(metrics).toMatch(/natd_dhcp_script_runs_total\{bridge="br0",result="timeout"\} [2-9]/);
    expect(natd.logs.some((l) => l.msg === 'dhcp-script failed' && l.timeoutMs === 1000)).toBe(true);
    const stopAt = Date.now();
    expect(await topo.stop(natd.child)).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(8000); // the stop does not wait out the hanging script's timeouts
  }, 60_000);

  it('check-config names a missing or non-executable script', async () => {
    const dir = tempDir('natd-script-cfg-');
    const plain = path.join(dir, 'plain.sh');
    writeFileSync(plain, 'echo hi\n');
    for (const [file, why] of [[path.join(dir, 'none.sh'), 'does not exist'], [plain, 'is not executable'], ['relative.sh', 'absolute path']] as const) {
      const r = await topo.run(topo.host, [process.execPath, NATD_CLI, 'check-config', '--bridge', 'br0', '--dhcp-script', file]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('dhcpScript');
      expect(r.stderr).toContain(why);
    }
  });
});
