import { describe, expect, it } from 'vitest';
import { LeaseNames, type LeaseNamesOptions } from '../../src/daemon/lease-names.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { DhcpMessageType, type DhcpRequest, type Lease, type LeaseChange } from '../../src/dhcp/types.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { DnsType } from '../../src/dns/types.js';
import { formatIpv4, parseCidr, reverseName } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;

function setup(opts: LeaseNamesOptions = {}) {
  const local = new LocalNames({ domain: 'vm', subnet, gatewayAddress: gateway });
  const names = new LeaseNames(local, opts);
  const addressOf = (name: string) => local.lookup({ name, type: DnsType.A, class: 1 })?.records.map((r) => r.data);
  const nameOf = (address: string) => local.lookup({ name: reverseName(ip(address)), type: DnsType.PTR, class: 1 })?.records.map((r) => r.data);
  return { local, names, addressOf, nameOf };
}

const lease = (clientId: string, address: string, hostname?: string, mac = '52:54:00:00:00:01'): Lease => ({
  clientId, mac, address: ip(address), expiresAt: 1e12, ...(hostname ? { hostname } : {}),
});

/** A Logger that keeps the rate-limited warnings it is given. */
const bind = (l: Lease): LeaseChange => ({ kind: 'bind', lease: l });
const release = (clientId: string, address: string): LeaseChange => ({ kind: 'release', clientId, address: ip(address) });

describe('LeaseNames', () => {
  it('publishes restored lease names and follows binds, renewals and releases', () => {
    const { names, addressOf, nameOf } = setup();
    names.restore([lease('01aa', '10.10.0.10', 'web'), lease('01bb', '10.10.0.11')]);
    expect(addressOf('web.vm')).toEqual(['10.10.0.10']);
    expect(nameOf('10.10.0.11')).toEqual([]); // NXDOMAIN: no name for it

    names.settle([bind(lease('01aa', '10.10.0.10', 'web'))]); // renewal
    expect(addressOf('web')).toEqual(['10.10.0.10']);
    names.settle([release('01aa', '10.10.0.10')]);
    expect(addressOf('web.vm')).toEqual([]);
    expect(nameOf('10.10.0.10')).toEqual([]);
  });

  it('lets a client rename itself and move address with its name, but never moves a name to another client', () => {
    const { names, addressOf, nameOf } = setup();
    names.settle([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.settle([bind(lease('01aa', '10.10.0.10', 'www'))]);
    expect(addressOf('web.vm')).toEqual([]);
    expect(addressOf('www.vm')).toEqual(['10.10.0.10']);
    names.settle([bind(lease('01aa', '10.10.0.11', 'www'))]); // same client, new address
    expect(addressOf('www')).toEqual(['10.10.0.11']);

    names.settle([bind(lease('01bb', '10.10.0.20', 'www', '52:54:00:00:00:02'))]);
    expect(addressOf('www')).toEqual(['10.10.0.11']);
    expect(nameOf('10.10.0.20')).toEqual([]);
  });

  it('leaves an address unnamed when its lease loses its name or carries an unusable one', () => {
    const { names, addressOf } = setup();
    names.settle([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.settle([bind(lease('01aa', '10.10.0.10', 'bad name!'))]);
    expect(addressOf('web.vm')).toEqual([]);
    names.settle([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.settle([bind(lease('01aa', '10.10.0.10'))]);
    expect(addressOf('web.vm')).toEqual([]);
  });
});

describe('LeaseNames: a name is held by its first claimant (issue 12, row 6)', () => {
  it('refuses a second client the name, counts and logs it, and journals its lease without the name', () => {
    const logger = recordingLogger();
    const { names, addressOf } = setup({ logger });
    const holder = lease('01aa', '10.10.0.10', 'db');
    const claimant = lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02');
    expect(names.settle([bind(holder)])).toEqual([bind(holder)]);
    const journaled = names.settle([bind(claimant)]);
    expect(journaled).toEqual([bind(lease('01bb', '10.10.0.20', undefined, '52:54:00:00:00:02'))]);
    expect(addressOf('db.vm')).toEqual(['10.10.0.10']);
    expect(names.refusals).toEqual({ held: 1, reserved: 0, denied: 0, record: 0 });
    expect(logger.lines.filter((l) => l.key)).toEqual([expect.objectContaining({ key: 'dns:name-refused:held', fields: expect.objectContaining({ name: 'db', address: '10.10.0.20', holderAddress: '10.10.0.10' }) })]);

    names.settle([bind(holder), bind(claimant)]); // both renew: nothing moves
    expect(addressOf('db')).toEqual(['10.10.0.10']);
    expect(names.refusals.held).toBe(2);
  });

  it('frees the name when its holder leaves; the waiting claimant gets it when it next claims it, not before', () => {
    const { names, addressOf } = setup();
    names.settle([bind(lease('01aa', '10.10.0.10', 'db')), bind(lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02'))]);
    names.settle([release('01aa', '10.10.0.10')]);
    expect(addressOf('db.vm')).toEqual([]);
    names.settle([bind(lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02'))]); // its renewal
    expect(addressOf('db.vm')).toEqual(['10.10.0.20']);
  });

  it("frees a name whose holder's lease ended in the request that claims it, before that expiry is settled", () => {
    const live = new Map<string, Lease>();
    const { names, addressOf } = setup({ leaseOf: (clientId) => live.get(clientId), now: () => 1000 });
    const holder = lease('01aa', '10.10.0.10', 'db');
    live.set('01aa', holder);
    names.settle([bind(holder)]);
    names.settle([bind(lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02'))]);
    expect(addressOf('db')).toEqual(['10.10.0.10']);
    live.delete('01aa');
    names.settle([bind(lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02'))]);
    expect(addressOf('db')).toEqual(['10.10.0.20']);
  });

  it('restores in journal order so the first holder wins again (a journal written before this policy included)', () => {
    const { names, addressOf } = setup();
    names.restore([lease('01aa', '10.10.0.10', 'db'), lease('01bb', '10.10.0.20', 'db', '52:54:00:00:00:02')]);
    expect(addressOf('db.vm')).toEqual(['10.10.0.10']);
  });

  it("gives a reserved name only to the reserved MAC: other clients' leases neither take nor keep it", () => {
    const { names, addressOf, nameOf } = setup();
    names.settle([bind(lease('01aa', '10.10.0.50', 'db'))]); // 52:54:00:00:00:01
    names.setReservations([{ mac: '52:54:00:00:00:09', address: ip('10.10.0.9'), hostname: 'db' }]);
    expect(addressOf('db')).toEqual(['10.10.0.9']);
    expect(nameOf('10.10.0.50')).toEqual([]);
    const journaled = names.settle([bind(lease('01aa', '10.10.0.50', 'db'))]);
    expect(journaled[0]).toEqual(bind(lease('01aa', '10.10.0.50')));
    expect(names.refusals.reserved).toBe(1);
    names.settle([bind(lease('01cc', '10.10.0.9', 'db', '52:54:00:00:00:09'))]); // the reserved machine itself
    expect(nameOf('10.10.0.9')).toEqual(['db.vm']);
    expect(names.refusals.reserved).toBe(1);

    names.setReservations([]); // the lease that lost the name does not get it back behind anyone's back
    expect(addressOf('db')).toEqual(['10.10.0.9']); // the reserved machine's own lease still claims it
  });

  it('never publishes denied names: localhost, wpad, isatap, the gateway, the domain (bare, with the domain, any case)', () => {
    const { names, addressOf, nameOf } = setup();
    const denied = ['localhost', 'wpad', 'WPAD.vm', 'isatap', 'gateway', 'vm'];
    denied.forEach((name, i) => {
      const l = lease(`01a${i}`, `10.10.0.${30 + i}`, name, `52:54:00:00:01:0${i}`);
      expect(names.settle([bind(l)])[0], name).toEqual(bind(lease(`01a${i}`, `10.10.0.${30 + i}`, undefined, `52:54:00:00:01:0${i}`)));
      expect(nameOf(`10.10.0.${30 + i}`), name).toEqual([]);
    });
    expect(names.refusals.denied).toBe(denied.length);
    expect(addressOf('gateway.vm')).toEqual(['10.10.0.1']);
    for (const name of ['localhost', 'wpad', 'wpad.vm', 'isatap.vm']) expect(addressOf(name) ?? [], name).toEqual([]);
  });

  it('answers the DHCP core before it binds: a held, reserved or denied name is refused, counted only on the binding step', () => {
    const logger = recordingLogger();
    const { names } = setup({ logger });
    names.settle([bind(lease('01aa', '10.10.0.10', 'db'))]);
    names.setReservations([{ mac: '52:54:00:00:00:09', address: ip('10.10.0.9'), hostname: 'files' }]);
    const claimant = { clientId: '01bb', mac: '52:54:00:00:00:02', address: ip('10.10.0.11') };
    expect(names.nameAllowed('db', claimant, false)).toBe(false);
    expect(names.refusals.held).toBe(0); // an OFFER only asks
    expect(names.nameAllowed('db', claimant, true)).toBe(false);
    expect(names.nameAllowed('files', claimant, true)).toBe(false);
    expect(names.nameAllowed('wpad', claimant, true)).toBe(false);
    expect(names.refusals).toEqual({ held: 1, reserved: 1, denied: 1, record: 0 });
    expect(logger.lines.filter((l) => l.key)).toHaveLength(3);
    expect(names.nameAllowed('db', { ...claimant, clientId: '01aa', address: ip('10.10.0.10') }, true)).toBe(true); // its holder
    expect(names.nameAllowed('web', claimant, true)).toBe(true);
  });
});

describe('LeaseNames with the DHCP core: every lease end unpublishes its name (issue 13: one expiry path)', () => {
  const T0 = 1_700_000_000_000;
  const LEASE_MS = 600_000;

  function wired() {
    let clock = T0;
    const local = new LocalNames({ domain: 'vm', subnet, gatewayAddress: gateway });
    let names: LeaseNames | undefined;
    const core = new DhcpServerCore(
      { serverAddress: gateway, subnet, router: gateway, dnsServers: [gateway], domain: 'vm', leaseTimeSeconds: LEASE_MS / 1000, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') },
      [],
      { nameAllowed: (name, claimant, binding) => names!.nameAllowed(name, claimant, binding) },
    );
    names = new LeaseNames(local, { leaseOf: (clientId) => core.leases.getByClient(clientId), now: () => clock });
    const journal: LeaseChange[] = [];
    // the daemon's commit: names settle the changes, the journal takes what settle returns
    const commit = (changes: LeaseChange[]) => journal.push(...names!.settle(changes));
    const request = (n: number, type: DhcpRequest['type'], hostname: string, address?: number): DhcpRequest => ({
      type, xid: n, flags: 0, broadcast: true, ciaddr: 0, giaddr: 0, hops: 0, htype: 1, mac: `52:54:00:00:00:0${n}`,
      chaddr: Uint8Array.of(0x52, 0x54, 0, 0, 0, n), clientId: `0152540000000${n}`, parameterRequestList: [], maxMessageSize: 576, hostname,
      ...(address === undefined ? {} : { requestedAddress: address, serverId: gateway }),
    });
    /** DISCOVER, (`between` runs), REQUEST: the address client n is bound to, every change committed */
    const obtain = (n: number, hostname: string, between = () => {}): string => {
      const offer = core.handle(request(n, DhcpMessageType.DISCOVER, hostname), clock);
      commit(offer.changes);
      between();
      const ack = core.handle(request(n, DhcpMessageType.REQUEST, hostname, offer.reply!.packet.yiaddr), clock);
      commit(ack.changes);
      return formatIpv4(ack.reply!.packet.yiaddr);
    };
    const addressOf = (name: string) => local.lookup({ name, type: DnsType.A, class: 1 })?.records.map((r) => r.data);
    return { core, commit, obtain, addressOf, journal, advance: (ms: number) => (clock += ms), now: () => clock };
  }

  it('an expiry from the timer (expire) takes the name off DNS and reaches the journal', () => {
    const w = wired();
    const address = w.obtain(1, 'db');
    expect(w.addressOf('db.vm')).toEqual([address]);
    w.advance(LEASE_MS);
    w.commit(w.core.expire(w.now()));
    expect(w.addressOf('db.vm')).toEqual([]);
    expect(w.journal.at(-1)).toEqual({ kind: 'release', clientId: '01525400000001', address: ip(address) });
  });

  it("an expiry found by a request frees the name for that very request's client", () => {
    const w = wired();
    const holder = w.obtain(1, 'db');
    w.advance(LEASE_MS / 2);
    // client 2 is offered an address while the holder's lease runs; its REQUEST comes after that lease ended
    const claimant = w.obtain(2, 'db', () => w.advance(LEASE_MS / 2));
    expect(w.addressOf('db.vm')).toEqual([claimant]);
    expect(w.journal.slice(-2)).toEqual([
      { kind: 'release', clientId: '01525400000001', address: ip(holder) },
      { kind: 'bind', lease: expect.objectContaining({ address: ip(claimant), hostname: 'db' }) },
    ]);
  });
});
