/**
 * Issue 15: lease names published to a real BIND 9 with RFC 2136 updates signed with TSIG. named runs as a process
 * this test starts (by PID) in the wan namespace, with its own config, key and zone files in a temp dir; natd runs
 * in the host namespace; guests get leases with udhcpc; what BIND serves is read with dig from the wan namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';

const needsRoot = !isRoot() && !process.env.CI;
const ZONE = 'lab.example';
const REVERSE_ZONE = '0.77.10.in-addr.arpa';
const KEY_NAME = 'natd-ddns';
/** an administrator's record in the zone: natd must never change it */
const ADMIN_NAME = 'web';
const ADMIN_ADDR = '192.0.2.80';

describe.skipIf(needsRoot)('DDNS to a real BIND 9', () => {
  let topo: Topology;
  let natd: NatdHandle | undefined;
  let named: ChildProcess | undefined;
  let namedLog = '';
  let dir: string;
  let keyFile: string;
  let goodKey: string;
  let stateDir: string;
  let alphaAddr: string;

  const natdArgs = () => ['--bridge', 'br0', '--no-firewall', '--no-dns', '--ddns-server', UPLINK_WAN, '--ddns-zone', ZONE, '--ddns-reverse', '--ddns-key-file', keyFile];

  async function startNamed(): Promise<void> {
    namedLog = '';
    named = topo.spawn(topo.wan, ['named', '-g', '-4', '-n', '1', '-u', 'root', '-c', path.join(dir, 'named.conf')]);
    const child = named;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`named did not start: ${namedLog.slice(-2000)}`)), 20_000);
      child.stderr!.on('data', (d: Buffer) => {
        namedLog += d.toString();
        if (namedLog.includes('running')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`named exited ${code}: ${namedLog.slice(-2000)}`));
      });
    });
  }

  async function stopNamed(): Promise<void> {
    if (named) await topo.stop(named);
    named = undefined;
  }

  async function dig(name: string, type: string): Promise<{ status: string | undefined; answers: string[] }> {
    const r = await topo.run(topo.wan, ['dig', `@${UPLINK_WAN}`, '+time=2', '+tries=1', '+noall', '+comments', '+answer', name, type]);
    const answers = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.trim().split(/\s+/).slice(4).join(' '));
    return { status: /status: ([A-Z]+)/.exec(r.stdout)?.[1], answers };
  }

  /** Polls BIND until `name type` answers `want` (an empty list: the name has no such record). */
  async function expectServed(name: string, type: string, want: string[], timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: { status: string | undefined; answers: string[] } | undefined;
    while (Date.now() < deadline) {
      last = await dig(name, type);
      if (JSON.stringify(last.answers) === JSON.stringify(want)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${name} ${type}: wanted ${JSON.stringify(want)}, BIND serves ${JSON.stringify(last)}`);
  }

  async function status(): Promise<{ ddns: Record<string, unknown> & { state: string; pending: number; lastError?: { message: string } } }> {
    const out = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'status', '--control-socket', natd!.controlSocket, '--json']);
    return JSON.parse(out) as never;
  }

  /** BIND's own tool, in the wan namespace, with the good key: the test's view as an administrator. */
  async function nsupdate(commands: string[]): Promise<void> {
    const keyPath = path.join(dir, 'admin.key');
    await topo.runOk(topo.wan, ['nsupdate', '-k', keyPath], { input: [`server ${UPLINK_WAN}`, ...commands, 'send', ''].join('\n') });
  }

  const reverseOf = (address: string) => `${address.split('.').reverse().join('.')}.in-addr.arpa`;

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    dir = tempDir('natd-ddns-bind-');
    goodKey = execFileSync('tsig-keygen', ['-a', 'hmac-sha256', KEY_NAME], { encoding: 'utf8' });
    keyFile = path.join(dir, 'natd.key');
    writeFileSync(keyFile, goodKey, { mode: 0o600 });
    writeFileSync(path.join(dir, 'admin.key'), goodKey, { mode: 0o600 });
    const soa = `$TTL 300\n@ IN SOA ns.${ZONE}. admin.${ZONE}. 1 3600 600 86400 300\n@ IN NS ns.${ZONE}.\n`;
    writeFileSync(path.join(dir, 'forward.db'), `${soa}ns IN A ${UPLINK_WAN}\n${ADMIN_NAME} IN A ${ADMIN_ADDR}\n`);
    writeFileSync(path.join(dir, 'reverse.db'), soa);
    const policy = `update-policy { grant ${KEY_NAME} zonesub ANY; };`;
    writeFileSync(path.join(dir, 'named.conf'), `
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  listen-on port 53 { ${UPLINK_WAN}; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
include "${dir}/admin.key";
zone "${ZONE}" { type primary; file "${dir}/forward.db"; ${policy} };
zone "${REVERSE_ZONE}" { type primary; file "${dir}/reverse.db"; ${policy} };
`);
    await startNamed();
    natd = await startNatd(topo, natdArgs());
    stateDir = natd.stateDir;
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it("a guest's lease puts NAME.ZONE and its PTR on BIND, marked as natd's", async () => {
    const lease = await runUdhcpc(topo, topo.vm(1).ns, ['-x', 'hostname:alpha']);
    alphaAddr = lease.events.find((e) => e.event === 'bound')!.ip!;
    await expectServed(`alpha.${ZONE}`, 'A', [alphaAddr]);
    await expectServed(reverseOf(alphaAddr), 'PTR', [`alpha.${ZONE}.`]);
    expect((await dig(`alpha.${ZONE}`, 'TXT')).answers[0]).toMatch(/^"heritage=natd,owner=.*\/br0"$/);
    const s = await status();
    expect(s.ddns).toMatchObject({ state: 'ok', pending: 0, zone: ZONE, reverseZone: REVERSE_ZONE, key: KEY_NAME });
    expect(s.ddns.owned).toBe(2);
  });

  it("leaves an administrator's name alone when a guest claims it", async () => {
    await runUdhcpc(topo, topo.vm(2).ns, ['-x', `hostname:${ADMIN_NAME}`]);
    await natd!.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes("not natd's") && l.name === `${ADMIN_NAME}.${ZONE}`);
    expect((await dig(`${ADMIN_NAME}.${ZONE}`, 'A')).answers).toEqual([ADMIN_ADDR]);
    expect((await status()).ddns.conflicts).toBe(1);
  });

  it('a guest changing its name over and over leaves only its last name on BIND (attack: churn)', async () => {
    const names = Array.from({ length: 15 }, (_, i) => `churn${i}`);
    let address = '';
    for (const name of names) {
      const lease = await runUdhcpc(topo, topo.vm(2).ns, ['-x', `hostname:${name}`]);
      address = lease.events.find((e) => e.event === 'bound')!.ip!;
    }
    const last = names[names.length - 1]!;
    await expectServed(`${last}.${ZONE}`, 'A', [address]);
    await expectServed(reverseOf(address), 'PTR', [`${last}.${ZONE}.`]);
    for (const name of names.slice(0, -1)) expect((await dig(`${name}.${ZONE}`, 'ANY')).status).toBe('NXDOMAIN');
    const s = await status();
    expect(s.ddns).toMatchObject({ pending: 0, owned: 4 }); // alpha's A and PTR, the last churn name's A and PTR
  }, 60_000);

  it('a release removes the A, the PTR and the owner TXT', async () => {
    // udhcpc -R sends a RELEASE when it is stopped: run it in the foreground until it is bound, then stop it
    const log = path.join(tempDir('udhcpc-'), 'events.log');
    const client = topo.spawn(topo.vm(1).ns, ['env', `UDHCPC_LOG=${log}`, 'busybox', 'udhcpc', '-i', 'eth0', '-f', '-R', '-T', '1', '-t', '4', '-A', '1', '-x', 'hostname:alpha', '-s', path.join(FIXTURES, 'udhcpc-script.sh')]);
    client.stdout!.resume();
    client.stderr!.resume();
    // -A 1: after 4 unanswered DISCOVERs it pauses 1 s and tries again (busybox's default pause, 20 s, outlasted this wait)
    const deadline = Date.now() + 20_000;
    while (!(existsSync(log) && readFileSync(log, 'utf8').includes('event=bound'))) {
      if (Date.now() > deadline) throw new Error('udhcpc -f got no lease');
      await new Promise((r) => setTimeout(r, 100));
    }
    await topo.stop(client, 5000);
    await expectServed(`alpha.${ZONE}`, 'A', []);
    await expectServed(reverseOf(alphaAddr), 'PTR', []);
    expect((await dig(`alpha.${ZONE}`, 'ANY')).status).toBe('NXDOMAIN');
  }, 60_000);

  it('survives BIND going away: DHCP goes on, the update arrives once BIND is back', async () => {
    await stopNamed();
    const started = Date.now();
    const lease = await runUdhcpc(topo, topo.vm(1).ns, ['-x', 'hostname:alpha']);
    expect(lease.events.some((e) => e.event === 'bound')).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000); // DHCP did not wait for DNS
    alphaAddr = lease.events.find((e) => e.event === 'bound')!.ip!;
    await natd!.waitForLog((l) => l.msg === 'DDNS: the DNS server is not taking updates; retrying with back-off');
    const down = await status();
    expect(down.ddns.state).toBe('retrying');
    expect(down.ddns.pending).toBeGreaterThan(0);
    expect(down.ddns.lastError?.message).toMatch(/198\.51\.100\.2/);
    await startNamed();
    await expectServed(`alpha.${ZONE}`, 'A', [alphaAddr], 30_000); // back-off is at most a few seconds here
    await expectServed(reverseOf(alphaAddr), 'PTR', [`alpha.${ZONE}.`]);
    expect((await status()).ddns.state).toBe('ok');
  }, 60_000);

  it('a wrong key is reported clearly in the log and status; a fixed key file and a reload publish', async () => {
    await topo.stop(natd!.child);
    const wrong = goodKey.replace(/secret "[^"]+"/, `secret "${Buffer.alloc(32, 0x5a).toString('base64')}"`);
    writeFileSync(keyFile, wrong);
    natd = await startNatd(topo, natdArgs(), { stateDir });
    await nsupdate([`update delete alpha.${ZONE} A`]); // so the restart has something to send
    const line = await natd.waitForLog((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.includes("rejects natd's TSIG key"));
    expect(String(line.error)).toMatch(/NOTAUTH\/BADSIG/);
    const s = await status();
    expect(s.ddns.state).toBe('key-rejected');
    expect(s.ddns.lastError?.message).toMatch(/rejected natd's TSIG key "natd-ddns": NOTAUTH\/BADSIG/);
    expect(namedLog).toMatch(/request has invalid signature|bad signature|BADSIG/i);
    writeFileSync(keyFile, goodKey);
    natd.child.kill('SIGHUP');
    await expectServed(`alpha.${ZONE}`, 'A', [alphaAddr]);
    expect((await status()).ddns.state).toBe('ok');
  }, 60_000);

  it('a restart resyncs: records lost on the server come back, names without a lease go', async () => {
    await topo.stop(natd!.child);
    await nsupdate([`update delete alpha.${ZONE} A`]);
    await nsupdate([`update delete ${reverseOf(alphaAddr)} PTR`]);
    await expectServed(`alpha.${ZONE}`, 'A', []);
    natd = await startNatd(topo, natdArgs(), { stateDir });
    await expectServed(`alpha.${ZONE}`, 'A', [alphaAddr]);
    await expectServed(reverseOf(alphaAddr), 'PTR', [`alpha.${ZONE}.`]);
    // the lease is gone while natd is down (its journal is emptied): the restart removes what natd owned
    await topo.stop(natd.child);
    rmSync(path.join(stateDir, 'leases.jsonl'), { force: true });
    expect(readFileSync(path.join(stateDir, 'ddns-owned'), 'utf8')).toContain(`alpha.${ZONE}`);
    natd = await startNatd(topo, natdArgs(), { stateDir });
    await expectServed(`alpha.${ZONE}`, 'A', []);
    await expectServed(reverseOf(alphaAddr), 'PTR', []);
    expect((await dig(`${ADMIN_NAME}.${ZONE}`, 'A')).answers).toEqual([ADMIN_ADDR]);
    expect((await status()).ddns).toMatchObject({ state: 'ok', owned: 0, pending: 0 });
  }, 60_000);

  it('an expired lease takes its names off BIND', async () => {
    await topo.stop(natd!.child);
    natd = await startNatd(topo, [...natdArgs(), '--lease-time', '5s'], { stateDir });
    const lease = await runUdhcpc(topo, topo.vm(1).ns, ['-x', 'hostname:brief']); // -q: no renewal, the lease runs out
    const address = lease.events.find((e) => e.event === 'bound')!.ip!;
    await expectServed(`brief.${ZONE}`, 'A', [address]);
    // natd's expiry sweep runs every 30 s
    await expectServed(`brief.${ZONE}`, 'A', [], 45_000);
    await expectServed(reverseOf(address), 'PTR', []);
  }, 90_000);
});
