import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseEvents, type LeaseEvent } from '../../src/daemon/lease-events.js';
import { LeaseScript, scriptEnvironment } from '../../src/daemon/lease-script.js';
import type { Lease, LeaseChange } from '../../src/dhcp/types.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const lease = (n: number, address: string, hostname?: string, expiresAt = 5_000_000): Lease => ({
  clientId: `01aabbcc0000${n.toString(16).padStart(2, '0')}`,
  mac: `aa:bb:cc:00:00:${n.toString(16).padStart(2, '0')}`,
  address: ip(address),
  expiresAt,
  ...(hostname ? { hostname } : {}),
});

function recorder(bus: LeaseEvents): LeaseEvent[] {
  const events: LeaseEvent[] = [];
  bus.subscribe((e) => events.push(e));
  return events;
}

describe('LeaseEvents', () => {
  it('tells add, old, renew and del apart as dnsmasq does', () => {
    const bus = new LeaseEvents(() => 42);
    const events = recorder(bus);
    const a = lease(1, '10.0.0.10', 'web');
    bus.committed([{ kind: 'bind', lease: a }]);
    bus.committed([{ kind: 'bind', lease: { ...a, expiresAt: 6_000_000 } }]);
    bus.committed([{ kind: 'bind', lease: { ...a, expiresAt: 6_000_000, hostname: 'www' } }]);
    bus.committed([{ kind: 'bind', lease: { ...a, address: ip('10.0.0.11'), hostname: 'www' } }]);
    bus.committed([{ kind: 'release', clientId: a.clientId, address: ip('10.0.0.11') }]);
    expect(events.map((e) => [e.action, e.address, e.hostname, e.oldHostname])).toEqual([
      ['add', '10.0.0.10', 'web', undefined],
      ['renew', '10.0.0.10', 'web', undefined],
      ['old', '10.0.0.10', 'www', 'web'],
      ['del', '10.0.0.10', 'www', undefined],
      ['add', '10.0.0.11', 'www', undefined],
      ['del', '10.0.0.11', 'www', undefined],
    ]);
    expect(events.every((e) => e.at === 42 && e.mac === a.mac)).toBe(true);
    expect(bus.leases()).toEqual([]);
  });

  it('announces the journal leases at start as old, and ignores releases of leases it never saw', () => {
    const bus = new LeaseEvents();
    const events = recorder(bus);
    bus.loadLeases([lease(1, '10.0.0.10'), lease(2, '10.0.0.12', 'db')]);
    bus.committed([{ kind: 'release', clientId: 'ff', address: ip('10.0.0.99') }, { kind: 'decline', address: ip('10.0.0.50'), until: 9 }]);
    expect(events.map((e) => `${e.action} ${e.address}`)).toEqual(['old 10.0.0.10', 'old 10.0.0.12']);
  });

  it('after any sequence of changes, holds exactly the live leases, and every del follows its add (property)', () => {
    const change = fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 10, max: 14 }), fc.constantFrom(undefined, 'a', 'b')).map(
        ([n, host, name]): LeaseChange => ({ kind: 'bind', lease: lease(n, `10.0.0.${host}`, name) }),
      ),
      fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 10, max: 14 })).map(
        ([n, host]): LeaseChange => ({ kind: 'release', clientId: lease(n, '10.0.0.1').clientId, address: ip(`10.0.0.${host}`) }),
      ),
    );
    fc.assert(
      fc.property(fc.array(fc.array(change, { maxLength: 3 }), { maxLength: 30 }), (batches) => {
        const bus = new LeaseEvents();
        const events = recorder(bus);
        const model = new Map<string, Lease>();
        for (const batch of batches) {
          bus.committed(batch);
          for (const c of batch) {
            if (c.kind === 'bind') model.set(c.lease.clientId, c.lease);
            else if (c.kind === 'release' && model.get(c.clientId)?.address === c.address) model.delete(c.clientId);
          }
        }
        expect(new Map(bus.leases().map((l) => [l.clientId, l]))).toEqual(model);
        const open = new Map<string, string>();
        for (const e of events) {
          if (e.action === 'add') {
            expect(open.has(e.clientId)).toBe(false);
            open.set(e.clientId, e.address);
          } else expect(open.get(e.clientId)).toBe(e.address);
          if (e.action === 'del') open.delete(e.clientId);
        }
      }),
    );
  });
});

describe('LeaseScript', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  async function script(body: string): Promise<{ path: string; log: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'natd-script-'));
    dirs.push(dir);
    const path = join(dir, 'hook.sh');
    const log = join(dir, 'log');
    await writeFile(path, `#!/bin/sh\n${body.replaceAll('$LOG', log)}\n`);
    await chmod(path, 0o755);
    return { path, log };
  }
  const event = (action: LeaseEvent['action'], address: string, hostname?: string): LeaseEvent => ({
    action,
    mac: 'aa:bb:cc:00:00:01',
    address,
    clientId: '01aabbcc000001',
    expiresAt: Date.now() + 3_600_000,
    at: Date.now(),
    ...(hostname ? { hostname } : {}),
  });

  it('runs the script once per event, in order, with dnsmasq arguments and environment', async () => {
    const { path, log } = await script('echo "$1 $2 $3 ${4:-} $DNSMASQ_INTERFACE $DNSMASQ_DOMAIN $NATD_BRIDGE" >> $LOG');
    const logger = recordingLogger();
    const runner = new LeaseScript({ path, bridge: 'br7', domain: 'vm', timeoutMs: 5000, logger });
    runner.push(event('add', '10.0.0.10', 'web'));
    runner.push(event('renew', '10.0.0.10', 'web'));
    runner.push(event('old', '10.0.0.10', 'www'));
    runner.push(event('del', '10.0.0.10', "x; rm -rf / $(reboot)"));
    await runner.close();
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
      'add aa:bb:cc:00:00:01 10.0.0.10 web br7 vm br7',
      'old aa:bb:cc:00:00:01 10.0.0.10 www br7 vm br7',
      'del aa:bb:cc:00:00:01 10.0.0.10 x; rm -rf / $(reboot) br7 vm br7',
    ]);
    expect(runner.stats).toMatchObject({ runs: 3, failures: 0, timeouts: 0 });
  });

  it('kills a script that hangs at its timeout and goes on with the next event', async () => {
    const { path, log } = await script('if [ "$1" = add ]; then sleep 30; fi\necho "$1" >> $LOG');
    const logger = recordingLogger();
    // 1 s, not 200 ms: the run that must finish (sh, echo) is killed too when a loaded machine starts sh slowly
    const runner = new LeaseScript({ path, bridge: 'br7', timeoutMs: 1000, logger });
    const started = Date.now();
    runner.push(event('add', '10.0.0.10'));
    runner.push(event('del', '10.0.0.10'));
    await runner.close();
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await readFile(log, 'utf8')).trim()).toBe('del');
    expect(runner.stats).toMatchObject({ runs: 2, failures: 1, timeouts: 1 });
    expect(JSON.stringify(logger.lines)).toMatch(/dhcp-script failed/);
  });

  it('counts a missing script and a bounded queue instead of throwing', async () => {
    const logger = recordingLogger();
    const runner = new LeaseScript({ path: '/nonexistent/hook', bridge: 'br7', timeoutMs: 1000, maxQueued: 2, logger });
    for (let i = 0; i < 5; i++) runner.push(event('add', `10.0.0.${10 + i}`));
    await runner.close();
    expect(runner.stats.dropped).toBe(2);
    expect(runner.stats.failures).toBe(3);
  });

  it('gives the remaining time and expiry in seconds', () => {
    const env = scriptEnvironment({ ...event('add', '10.0.0.10', 'web'), expiresAt: 1_000_000 + 90_500 }, 'br7', undefined, 1_000_000);
    expect(env).toMatchObject({ DNSMASQ_TIME_REMAINING: '90', DNSMASQ_LEASE_EXPIRES: '1090', DNSMASQ_SUPPLIED_HOSTNAME: 'web', DNSMASQ_CLIENT_ID: '01aabbcc000001' });
    expect(env.DNSMASQ_DOMAIN).toBeUndefined();
  });
});

describe('LeaseScript at daemon stop', () => {
  it('drops the queue and kills a run that outlasts the stop grace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'natd-script-'));
    try {
      const path = join(dir, 'hook.sh');
      await writeFile(path, '#!/bin/sh\nsleep 30\n');
      await chmod(path, 0o755);
      const runner = new LeaseScript({ path, bridge: 'br7', timeoutMs: 60_000, logger: recordingLogger() });
      for (let i = 0; i < 3; i++) runner.push({ action: 'add', mac: 'aa:bb:cc:00:00:01', address: `10.0.0.${i}`, clientId: '01', expiresAt: 0, at: 0 });
      const started = Date.now();
      await runner.close('stop');
      expect(Date.now() - started).toBeLessThan(6000);
      expect(runner.stats).toMatchObject({ runs: 1, dropped: 2, queued: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('LeaseEvents: DHCPv6 (issue 14)', () => {
  const DUID = '00:03:00:01:52:54:00:00:00:0a';
  const l6 = (address: string, hostname?: string) => ({ duid: DUID, iaid: 7, address, mac: '52:54:00:00:00:0a', expiresAt: 5_000_000, ...(hostname ? { hostname } : {}) });

  it('bind6/release6 → add, renew, old, del (a move: del then add); the DUID in the MAC\'s place; watchers get the live ones', () => {
    const bus = new LeaseEvents(() => 1000);
    bus.setServerDuid('00:01:00:01:aa:bb');
    const events = recorder(bus);
    bus.committed6([{ kind: 'bind6', lease: l6('fd00::105') }]);
    bus.committed6([{ kind: 'bind6', lease: l6('fd00::105') }]);
    bus.committed6([{ kind: 'bind6', lease: l6('fd00::105', 'web') }]);
    bus.committed6([{ kind: 'bind6', lease: l6('fd00::42', 'web') }]);
    bus.committed6([{ kind: 'release6', duid: DUID, iaid: 7, address: 'fd00::99' }]); // not its address: nothing
    const watched: LeaseEvent[] = [];
    bus.watch((e) => watched.push(e));
    bus.committed6([{ kind: 'release6', duid: DUID, iaid: 7, address: 'fd00::42' }]);
    expect(events.map((e) => `${e.action} ${e.address} ${e.hostname ?? '-'}`)).toEqual([
      'add fd00::105 -', 'renew fd00::105 -', 'old fd00::105 web', 'del fd00::105 web', 'add fd00::42 web', 'del fd00::42 web',
    ]);
    expect(events[0]).toMatchObject({ mac: DUID, clientId: DUID, iaid: 7, serverDuid: '00:01:00:01:aa:bb', hwaddr: '52:54:00:00:00:0a' });
    expect(watched.map((e) => e.action)).toEqual(['old', 'del']);
  });

  it('the script hears a DHCPv6 lease as dnsmasq tells it: DNSMASQ_IAID, DNSMASQ_SERVER_DUID, DNSMASQ_MAC, no client id', () => {
    const bus = new LeaseEvents(() => 1000);
    bus.setServerDuid('00:01:00:01:aa:bb');
    const events = recorder(bus);
    bus.loadLeases6([l6('fd00::105', 'web')]);
    expect(events[0]!.action).toBe('old');
    const env = scriptEnvironment(events[0]!, 'br7', 'vm', 1000);
    expect(env).toMatchObject({ DNSMASQ_IAID: '7', DNSMASQ_SERVER_DUID: '00:01:00:01:aa:bb', DNSMASQ_MAC: '52:54:00:00:00:0a', DNSMASQ_SUPPLIED_HOSTNAME: 'web' });
    expect(env.DNSMASQ_CLIENT_ID).toBeUndefined();
  });
});
