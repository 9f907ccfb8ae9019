/**
 * Issue 12, row 6: the names a hostile guest announces over DHCP (option 12 or 81). Each test performs the attack
 * with busybox udhcpc from its own vm namespace and asks natd from a vm that took no part (the observer), so what is
 * checked is what every other guest would be told. The fake upstream (wan namespace) answers REFUSED for anything
 * outside its test zones, so "natd forwarded it" shows up in its query log, and "natd answered it itself" as an
 * authoritative answer with no upstream query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';
import { waitFor } from '../support/wait.js';
import { STATE_FILES } from '../../src/defaults.js';

const needsRoot = !isRoot() && !process.env.CI;
const DOMAIN = 'vm';
const OBSERVER_ADDR = '10.77.0.250';
/** vm roles: one namespace per attacker so leases do not interfere */
const VM = { holder: 1, claimant: 2, wpad: 3, localhost: 4, tld: 5, observer: 6, expiring: 7 } as const;

interface DigResult {
  status: string | undefined;
  flags: string[];
  /** rdata of the answer lines */
  answers: string[];
}

function parseDig(stdout: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(stdout)?.[1];
  const flags = (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').split(' ').filter(Boolean);
  const answers = stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/).slice(4).join(' '));
  return { status, flags, answers };
}

describe.skipIf(needsRoot)('row 6: hostile guest names', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let upstreamLog: string;

  const upstreamQueries = (): string[] => (existsSync(upstreamLog) ? readFileSync(upstreamLog, 'utf8').trim().split('\n').filter(Boolean) : []);

  /** dig from the observer vm, which announced no name and holds a static address */
  async function dig(name: string, type = 'A'): Promise<DigResult> {
    const r = await topo.run(topo.vm(VM.observer).ns, ['dig', `@${GATEWAY}`, '+time=3', '+tries=1', '+noall', '+comments', '+answer', name, type], { timeoutMs: 10_000 });
    return parseDig(r.stdout);
  }

  /** A lease for `vm` with the given udhcpc options; resolves with its address. */
  async function lease(vm: number, options: string[]): Promise<string> {
    const r = await runUdhcpc(topo, topo.vm(vm).ns, options);
    const bound = r.events.find((e) => e.event === 'bound');
    if (!bound?.ip) throw new Error(`udhcpc in vm${vm} got no lease: ${JSON.stringify(r)}`);
    return bound.ip;
  }

  /**
   * A udhcpc that renews `vm`'s lease and then leaves with a DHCPRELEASE: busybox sends it when stopped with -R
   * (not when -q makes it exit by itself).
   */
  async function leaseThenRelease(vm: number, options: string[]): Promise<void> {
    const log = path.join(tempDir('udhcpc-release-'), 'events.log');
    const child = topo.spawn(topo.vm(vm).ns, [
      'env', `UDHCPC_LOG=${log}`, 'busybox', 'udhcpc', '-i', 'eth0', '-f', '-R', '-t', '4', '-T', '1', '-A', '1',
      '-s', path.join(FIXTURES, 'udhcpc-script.sh'), ...options,
    ]);
    child.stdout!.resume();
    child.stderr!.resume();
    await waitFor(`a lease for udhcpc in vm${vm}`, () => existsSync(log) && readFileSync(log, 'utf8').includes('event=bound'), 15_000, 100);
    await topo.stop(child, 5000);
  }

  const natdArgs = ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', DOMAIN, '--no-firewall'];

  beforeAll(async () => {
    topo = Topology.create({ vms: 7 });
    upstreamLog = path.join(tempDir('natd-names-upstream-'), 'queries.log');
    await startFakeUpstreamIn(topo, { log: upstreamLog });
    natd = await startNatd(topo, natdArgs);
    await topo.run(topo.vm(VM.observer).ns, ['ip', 'addr', 'add', `${OBSERVER_ADDR}/24`, 'dev', 'eth0']);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  async function restartNatd(args: string[]): Promise<void> {
    natd.child.kill('SIGTERM');
    await new Promise((resolve) => natd.child.once('exit', resolve));
    natd = await startNatd(topo, args, { stateDir: natd.stateDir });
  }

  type LeaseRow = { address: string; hostname?: string; clientId: string };
  async function leases(): Promise<LeaseRow[]> {
    return JSON.parse(await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'leases', '--json', '--control-socket', natd.controlSocket])) as LeaseRow[];
  }

  it('row 6: a second guest claiming `db` does not take db.vm from its first holder', async () => {
    const holder = await lease(VM.holder, ['-x', 'hostname:db']);
    const claimant = await lease(VM.claimant, ['-x', 'hostname:db']);
    expect(claimant).not.toBe(holder);
    expect((await dig('db.vm')).answers).toEqual([holder]);
    expect((await dig('db')).answers).toEqual([holder]);
    const reverse = await dig(claimant.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR');
    expect(reverse.answers).not.toContain('db.vm.');
    // the refusal is logged and counted
    expect(natd.logs.some((l) => l.msg === 'name refused: a guest claimed a host name it may not have' && l.name === 'db')).toBe(true);
    const metrics = await topo.run(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
    expect(metrics.stdout).toMatch(/^natd_dns_names_refused_total\{bridge="br0",reason="held"\} [1-9]/m);
    // the DHCP side agrees with DNS: the claimant's lease carries no name, the holder's does
    const rows = await leases();
    expect(rows.find((l) => l.address === holder)?.hostname).toBe('db');
    expect(rows.find((l) => l.address === claimant)?.hostname).toBeUndefined();
  }, 60_000);

  it('row 6: `db` stays with its first holder across a natd restart and the claimant renewing; it is free once the holder releases', async () => {
    const holder = await lease(VM.holder, ['-x', 'hostname:db']);
    const claimant = await lease(VM.claimant, ['-x', 'hostname:db']);
    await restartNatd(natdArgs);
    expect((await dig('db.vm')).answers).toEqual([holder]);
    expect(await lease(VM.claimant, ['-x', 'hostname:db'])).toBe(claimant); // a renewal by the claimant
    expect((await dig('db.vm')).answers).toEqual([holder]);

    await leaseThenRelease(VM.holder, ['-x', 'hostname:db']); // the holder leaves
    expect((await dig('db.vm')).status).toBe('NXDOMAIN');
    expect(await lease(VM.claimant, ['-x', 'hostname:db'])).toBe(claimant); // the waiting claimant asks again
    expect((await dig('db.vm')).answers).toEqual([claimant]);
  }, 90_000);

  it('row 6: a guest named `wpad` (or `isatap`) is never published, so no proxy auto-config hijack', async () => {
    for (const name of ['wpad', 'isatap']) {
      const address = await lease(VM.wpad, ['-x', `hostname:${name}`]);
      for (const query of [name, `${name}.${DOMAIN}`]) {
        const r = await dig(query);
        expect(r.answers, query).not.toContain(address);
        expect(r.status, query).toBe('NXDOMAIN');
      }
    }
  }, 60_000);

  it('row 6: a guest named `localhost` (or the gateway\'s name) does not make localhost resolve to it', async () => {
    const address = await lease(VM.localhost, ['-x', 'hostname:localhost']);
    for (const query of ['localhost', `localhost.${DOMAIN}`]) {
      const r = await dig(query);
      expect(r.answers, query).not.toContain(address);
      expect(r.status, query).toBe('NXDOMAIN');
    }
    const renamed = await lease(VM.localhost, ['-x', 'hostname:gateway']);
    expect((await dig(`gateway.${DOMAIN}`)).answers).toEqual([GATEWAY]);
    const reverse = await dig(renamed.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR');
    expect(reverse.answers).not.toContain(`gateway.${DOMAIN}.`);
  }, 60_000);

  it('row 6: a guest named `com` does not make natd answer for the .com TLD (DS/NS/DNSKEY/SOA go upstream; only com.vm is the guest)', async () => {
    const address = await lease(VM.tld, ['-F', 'com']);
    for (const type of ['DS', 'NS', 'DNSKEY', 'SOA']) {
      const before = upstreamQueries().length;
      const r = await dig('com', type);
      // natd passed the question on (the fake upstream refuses it); it did not make up an authoritative answer
      expect(upstreamQueries().slice(before), `com ${type}`).toEqual([`udp com ${type}`]);
      expect(r.status, `com ${type}`).toBe('REFUSED'); // the fake upstream's answer, not an empty NOERROR
    }
    // the bare TLD is never the guest's; under natd's own domain the name is harmless and published (app, dev, cloud
    // and many other common VM names are TLDs too)
    expect((await dig('com')).answers).not.toContain(address);
    expect((await dig(`com.${DOMAIN}`)).answers).toEqual([address]);
  }, 60_000);

  it('issue 13: a guest whose short lease runs out without a release leaves DNS and `natd leases`, in the journal too, and stays gone after a restart', async () => {
    await restartNatd([...natdArgs, '--lease-time', '5s']);
    const address = await lease(VM.expiring, ['-x', 'hostname:brief']); // udhcpc -q leaves without a DHCPRELEASE
    expect((await dig('brief.vm')).answers).toEqual([address]);
    const row = (await leases()).find((l) => l.address === address);
    expect(row?.hostname).toBe('brief');
    // natd's expiry timer (every 30 s) ends the lease: nobody sends natd anything meanwhile
    await waitFor('brief.vm unpublished after its 5 s lease', async () => (await dig('brief.vm')).status === 'NXDOMAIN', 45_000, 1000);
    expect((await leases()).map((l) => l.address)).not.toContain(address);
    // the end went through the journal (before issue 13 the timer's expiries never reached it)
    const journal = readFileSync(path.join(natd.stateDir, STATE_FILES.journal), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { op: string; clientId?: string; address: string });
    expect(journal.filter((r) => r.clientId === row!.clientId).map((r) => `${r.op} ${r.address}`)).toEqual([`bind ${address}`, `release ${address}`]);

    await restartNatd(natdArgs);
    expect((await dig('brief.vm')).status).toBe('NXDOMAIN');
    expect((await leases()).map((l) => l.address)).not.toContain(address);
  }, 120_000);
});
