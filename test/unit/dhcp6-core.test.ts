/** issue 14: the DHCPv6 core's state machine, message by message (RFC 8415 §16, §18.3). */
import { beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientFqdnLabel, Dhcp6Core, type Dhcp6CoreOptions } from '../../src/dhcp6/core.js';
import { Dhcp6Option, Dhcp6Status, encodeDhcp6 } from '../../src/dhcp6/codec.js';
import { duidLl, duidLlt, formatDuid } from '../../src/dhcp6/duid.js';
import { Replay6State } from '../../src/dhcp6/journal6.js';
import type { Lease6Change, Lease6Journal } from '../../src/dhcp6/types.js';
import { LeaseStore } from '../../src/dhcp/lease-store.js';
import { silentLogger } from '../../src/log.js';
import { iaStatus, liveAddresses, replyOf, T, TestClient6 } from '../support/dhcp6-client.js';

const NOW = 1_700_000_000_000;
const SERVER = duidLl('02:00:00:00:00:01');
const PEER = { address: 'fe80::5054:ff:fe00:1' };

/** A journal in memory: records what was committed, replays it like the real one. */
class MemoryJournal implements Lease6Journal {
  readonly commits: Lease6Change[][] = [];
  readonly state = new Replay6State();
  fail = false;
  commit(changes: readonly Lease6Change[]): Promise<void> {
    if (this.fail) return Promise.reject(new Error('disk full'));
    this.commits.push([...changes]);
    for (const c of changes) this.state.apply(c);
    return Promise.resolve();
  }
  load6(now: number) {
    return this.state.live(now);
  }
}

let now = NOW;
let journal: MemoryJournal;

function core(opts: Partial<Dhcp6CoreOptions> = {}): Dhcp6Core {
  return new Dhcp6Core({
    serverDuid: SERVER,
    prefix: 'fd00:10::1',
    serverAddress: 'fd00:10::1',
    range: { start: 'fd00:10::100', end: 'fd00:10::10f' },
    preferredLifetime: 3600,
    validLifetime: 3600,
    dnsServers: ['fd00:10::1'],
    domainSearch: ['vm'],
    rapidCommit: true,
    store: journal,
    now: () => now,
    ...opts,
  });
}

/** Solicit + Request: the bound address. */
async function obtain(c: Dhcp6Core, client: TestClient6, iaid = 1, peer: { address: string; mac?: string } = PEER): Promise<string> {
  const adv = replyOf((await c.handle(client.bytes(T.SOLICIT, { iaids: [iaid], serverId: null }), peer)).reply);
  expect(adv.type).toBe(T.ADVERTISE);
  client.serverId = adv.serverId;
  const [offered] = liveAddresses(adv, iaid);
  const out = await c.handle(client.bytes(T.REQUEST, { iaids: [iaid], addresses: [offered!] }), peer);
  expect(out.kind).toBe('reply');
  const [bound] = liveAddresses(replyOf(out.reply), iaid);
  expect(bound).toBe(offered);
  return bound!;
}

beforeEach(() => {
  now = NOW;
  journal = new MemoryJournal();
});

describe('Dhcp6Core: stateful', () => {
  it('Solicit → Advertise with an address from the range, DNS and the search list; nothing committed', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const out = await c.handle(client.bytes(T.SOLICIT), PEER);
    expect(out.kind).toBe('advertise');
    const adv = replyOf(out.reply);
    expect(adv.type).toBe(T.ADVERTISE);
    expect(adv.transactionId).toBe(client.message(T.SOLICIT).transactionId - 1);
    expect(adv.serverId).toEqual(SERVER);
    expect(adv.clientId).toEqual(client.duid);
    const [address] = liveAddresses(adv);
    expect(address).toMatch(/^fd00:10::10[0-9a-f]$/);
    expect(adv.iaNa[0]).toMatchObject({ t1: 1800, t2: 2880 });
    expect(adv.dnsServers?.map((a) => Buffer.from(a).toString('hex'))).toEqual(['fd000010000000000000000000000001']);
    expect(adv.domainList).toEqual(['vm']);
    expect(journal.commits).toEqual([]);
    expect(out.changes).toBeUndefined();
  });

  it('Request binds (committed before the promise resolves); Renew and Rebind extend the same address', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const address = await obtain(c, client);
    expect(journal.commits).toHaveLength(1);
    expect(journal.commits[0]).toEqual([{ kind: 'bind6', lease: { duid: formatDuid(client.duid), iaid: 1, address, mac: '52:54:00:00:00:01', expiresAt: NOW + 3_600_000 } }]);
    expect(c.leases()).toHaveLength(1);

    now += 1_800_000;
    const renew = await c.handle(client.bytes(T.RENEW, { addresses: [address] }), PEER);
    expect(liveAddresses(replyOf(renew.reply))).toEqual([address]);
    expect(c.leases()[0]!.expiresAt).toBe(now + 3_600_000);

    now += 1_000_000;
    const rebind = await c.handle(client.bytes(T.REBIND, { addresses: [address], serverId: null }), PEER);
    expect(rebind.kind).toBe('reply');
    expect(liveAddresses(replyOf(rebind.reply))).toEqual([address]);
    expect(journal.commits).toHaveLength(3);
  });

  it('gives two clients two addresses, and two IAs of one client two addresses', async () => {
    const c = core();
    const a = await obtain(c, new TestClient6('52:54:00:00:00:01'));
    const b = await obtain(c, new TestClient6('52:54:00:00:00:02'));
    const client = new TestClient6('52:54:00:00:00:03');
    const x = await obtain(c, client, 1);
    const y = await obtain(c, client, 2);
    expect(new Set([a, b, x, y]).size).toBe(4);
  });

  it('the same client (DUID + IAID) gets the same address back, even after its lease was forgotten', async () => {
    const client = new TestClient6('52:54:00:00:00:01');
    const first = await obtain(core({ store: undefined }), client);
    // a fresh server with no state: the hash of DUID+IAID picks the same address
    expect(await obtain(core({ store: undefined }), client)).toBe(first);
  });

  it('restarts from the real journal with the same bindings (fdatasync before the reply)', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'natd-dhcp6-')), 'state');
    try {
      const store = await LeaseStore.open(dir, { logger: silentLogger, now: () => now });
      const client = new TestClient6('52:54:00:00:00:07');
      const other = new TestClient6('52:54:00:00:00:08');
      const c1 = core({ store });
      // the other client is bound first so a plain hash would not hand client 7 the same address by chance alone
      await obtain(c1, other);
      const address = await obtain(c1, client);
      expect(store.stats().syncs).toBe(2);
      await store.close();

      const reopened = await LeaseStore.open(dir, { logger: silentLogger, now: () => now });
      const c2 = core({ store: reopened });
      expect(c2.leases().map((l) => l.address).sort()).toEqual([address, c1.leases().find((l) => l.duid === formatDuid(other.duid))!.address].sort());
      client.serverId = SERVER;
      const renew = replyOf((await c2.handle(client.bytes(T.RENEW, { addresses: [address] }), PEER)).reply);
      expect(liveAddresses(renew)).toEqual([address]);
      // a new client never gets an address the journal holds
      const third = await obtain(c2, new TestClient6('52:54:00:00:00:09'));
      expect(c2.leases().filter((l) => l.address === third)).toHaveLength(1);
      await reopened.close();
    } finally {
      await rm(join(dir, '..'), { recursive: true, force: true });
    }
  });

  it('range exhaustion → NoAddrsAvail in the IA (Advertise and Reply)', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::102' } });
    for (let i = 1; i <= 3; i++) await obtain(c, new TestClient6(`52:54:00:00:00:0${i}`));
    const late = new TestClient6('52:54:00:00:00:09');
    const adv = replyOf((await c.handle(late.bytes(T.SOLICIT), PEER)).reply);
    expect(adv.type).toBe(T.ADVERTISE);
    expect(iaStatus(adv)).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    expect(adv.status?.code).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    late.serverId = SERVER;
    const reply = replyOf((await c.handle(late.bytes(T.REQUEST), PEER)).reply);
    expect(iaStatus(reply)).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    expect(c.leases()).toHaveLength(3);
  });

  it('expired leases free their address (sweep reports them)', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::100' } });
    const first = await obtain(c, new TestClient6('52:54:00:00:00:01'));
    now += 3_600_001;
    expect(await obtain(c, new TestClient6('52:54:00:00:00:02'))).toBe(first);
    expect(c.sweep(now)).toEqual([]); // already replaced
    now += 3_600_001;
    expect(c.sweep(now)).toMatchObject([{ kind: 'release6', address: first }]);
    expect(c.leases()).toEqual([]);
  });

  it('Release ends the binding; releasing an unknown IA says NoBinding', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const address = await obtain(c, client);
    const out = await c.handle(client.bytes(T.RELEASE, { addresses: [address] }), PEER);
    const reply = replyOf(out.reply);
    expect(reply.status?.code).toBe(Dhcp6Status.SUCCESS);
    expect(out.changes).toEqual([{ kind: 'release6', duid: formatDuid(client.duid), iaid: 1, address }]);
    expect(c.leases()).toEqual([]);
    const again = replyOf((await c.handle(client.bytes(T.RELEASE, { addresses: [address] }), PEER)).reply);
    expect(iaStatus(again)).toBe(Dhcp6Status.NO_BINDING);
  });

  it('Decline quarantines the address: the client gets another, nobody gets it until the quarantine ends', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::101' }, declineSeconds: 600, maxDeclinedShare: 1 });
    const client = new TestClient6('52:54:00:00:00:01');
    const bad = await obtain(c, client);
    const out = await c.handle(client.bytes(T.DECLINE, { addresses: [bad] }), PEER);
    expect(replyOf(out.reply).status?.code).toBe(Dhcp6Status.SUCCESS);
    expect(out.changes).toEqual([{ kind: 'decline6', address: bad, until: NOW + 600_000 }]);
    expect(c.declined()).toEqual([{ address: bad, until: NOW + 600_000 }]);
    const next = await obtain(c, client);
    expect(next).not.toBe(bad);
    const adv = replyOf((await c.handle(new TestClient6('52:54:00:00:00:02').bytes(T.SOLICIT), PEER)).reply);
    expect(iaStatus(adv)).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    now += 600_001;
    expect(await obtain(c, new TestClient6('52:54:00:00:00:02'))).toBe(bad);
  });

  it('bounds the quarantine: a guest declining again and again cannot take the whole range', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::109' }, maxDeclinedShare: 0.2 });
    const client = new TestClient6('52:54:00:00:00:01');
    for (let i = 0; i < 10; i++) {
      const a = await obtain(c, client);
      await c.handle(client.bytes(T.DECLINE, { addresses: [a] }), PEER);
      now += 1000;
    }
    expect(c.declined()).toHaveLength(2);
    expect(liveAddresses(replyOf((await c.handle(new TestClient6('52:54:00:00:00:02').bytes(T.SOLICIT), PEER)).reply))).toHaveLength(1);
  });

  it('Rapid Commit: a Solicit asking for it gets a committed Reply; without it, or when off, an Advertise', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const out = await c.handle(client.bytes(T.SOLICIT, { rapidCommit: true }), PEER);
    expect(out.kind).toBe('reply');
    const reply = replyOf(out.reply);
    expect(reply.type).toBe(T.REPLY);
    expect(reply.rapidCommit).toBe(true);
    expect(journal.commits).toHaveLength(1);
    expect(c.leases().map((l) => l.address)).toEqual(liveAddresses(reply));

    const off = core({ rapidCommit: false, store: undefined });
    const adv = await off.handle(client.bytes(T.SOLICIT, { rapidCommit: true }), PEER);
    expect(adv.kind).toBe('advertise');
    expect(replyOf(adv.reply).rapidCommit).toBeUndefined();
  });

  it('Renew for an address that is not the binding gives it lifetimes 0; Renew without any binding → NoBinding', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const address = await obtain(c, client);
    const reply = replyOf((await c.handle(client.bytes(T.RENEW, { addresses: [address, 'fd00:10::10e'] }), PEER)).reply);
    const ia = reply.iaNa[0]!;
    expect(liveAddresses(reply)).toEqual([address]);
    expect(ia.addresses.filter((a) => a.validLifetime === 0)).toHaveLength(1);

    const stranger = new TestClient6('52:54:00:00:00:02');
    stranger.serverId = SERVER;
    const none = replyOf((await c.handle(stranger.bytes(T.RENEW, { addresses: ['2001:db8::1'] }), PEER)).reply);
    expect(iaStatus(none)).toBe(Dhcp6Status.NO_BINDING);
    // its own address, taken by another client: NoBinding too
    const thief = replyOf((await c.handle(stranger.bytes(T.RENEW, { addresses: [address] }), PEER)).reply);
    expect(iaStatus(thief)).toBe(Dhcp6Status.NO_BINDING);
  });

  it('Rebind for an address that is not ours → lifetimes 0; for a free address of the range (lost state) → bound', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const foreign = replyOf((await c.handle(client.bytes(T.REBIND, { addresses: ['2001:db8::5'], serverId: null }), PEER)).reply);
    expect(foreign.iaNa[0]!.addresses).toMatchObject([{ preferredLifetime: 0, validLifetime: 0 }]);
    expect(c.leases()).toEqual([]);
    const healed = await c.handle(client.bytes(T.REBIND, { addresses: ['fd00:10::105'], serverId: null }), PEER);
    expect(liveAddresses(replyOf(healed.reply))).toEqual(['fd00:10::105']);
    expect(journal.commits).toHaveLength(1);
  });

  it('Confirm: Success when on link, NotOnLink otherwise, no reply without addresses', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const ok = replyOf((await c.handle(client.bytes(T.CONFIRM, { addresses: ['fd00:10::105'], serverId: null }), PEER)).reply);
    expect(ok.status?.code).toBe(Dhcp6Status.SUCCESS);
    const moved = replyOf((await c.handle(client.bytes(T.CONFIRM, { addresses: ['fd00:99::105'], serverId: null }), PEER)).reply);
    expect(moved.status?.code).toBe(Dhcp6Status.NOT_ON_LINK);
    expect((await c.handle(client.bytes(T.CONFIRM, { serverId: null }), PEER)).kind).toBe('ignored');
    expect(journal.commits).toEqual([]);
  });

  it('a failed commit sends no reply (the client retransmits)', async () => {
    const c = core();
    journal.fail = true;
    const client = new TestClient6('52:54:00:00:00:01');
    client.serverId = SERVER;
    const out = await c.handle(client.bytes(T.REQUEST), PEER);
    expect(out.kind).toBe('ignored');
    expect(out.reply).toBeUndefined();
    expect(out.reason).toMatch(/disk full/);
  });

  it('never hands out the gateway or an address outside the range, even when asked', async () => {
    const c = core({ range: { start: 'fd00:10::1', end: 'fd00:10::2' } });
    const client = new TestClient6('52:54:00:00:00:01');
    client.serverId = SERVER;
    const reply = replyOf((await c.handle(client.bytes(T.REQUEST, { addresses: ['fd00:10::1'] }), PEER)).reply);
    expect(liveAddresses(reply)).toEqual(['fd00:10::2']);
    const other = new TestClient6('52:54:00:00:00:02');
    other.serverId = SERVER;
    const outside = replyOf((await c.handle(other.bytes(T.REQUEST, { addresses: ['fd00:10::999'] }), PEER)).reply);
    expect(iaStatus(outside)).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
  });

  it('a Request for an address it cannot have gets another, and the asked-for one with lifetimes 0', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    client.serverId = SERVER;
    const reply = replyOf((await c.handle(client.bytes(T.REQUEST, { addresses: ['fd00:99::5'] }), PEER)).reply);
    const ia = reply.iaNa[0]!;
    expect(liveAddresses(reply)).toHaveLength(1);
    expect(ia.addresses.filter((a) => a.validLifetime === 0).map((a) => Buffer.from(a.address).toString('hex'))).toEqual(['fd000099000000000000000000000005']);
  });

  it('serves a huge range by hashing (no scan), with distinct addresses', async () => {
    const c = core({ range: { start: 'fd00:10::1:0', end: 'fd00:10::ffff:ffff:ffff:ffff' }, store: undefined });
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add(await obtain(c, new TestClient6(`52:54:00:00:01:${i.toString(16).padStart(2, '0')}`)));
    expect(seen.size).toBe(50);
  });

  it('bounds the bindings (maxLeases): more clients get NoAddrsAvail', async () => {
    const c = core({ range: { start: 'fd00:10::1:0', end: 'fd00:10::1:ffff' }, maxLeases: 3, store: undefined });
    for (let i = 1; i <= 3; i++) await obtain(c, new TestClient6(`52:54:00:00:00:0${i}`));
    const late = new TestClient6('52:54:00:00:00:09');
    late.serverId = SERVER;
    expect(iaStatus(replyOf((await c.handle(late.bytes(T.REQUEST), PEER)).reply))).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
  });

  it('at the bindings bound, expired ones make room, and the next sweep still reports them', async () => {
    const c = core({ range: { start: 'fd00:10::1:0', end: 'fd00:10::1:ffff' }, maxLeases: 2, store: undefined });
    const first = await obtain(c, new TestClient6('52:54:00:00:00:01'));
    await obtain(c, new TestClient6('52:54:00:00:00:02'));
    now += 3_600_001;
    await obtain(c, new TestClient6('52:54:00:00:00:03'));
    expect(c.sweep(now).map((e) => (e.kind === 'release6' ? e.address : '')).sort()).toContain(first);
    expect(c.leases()).toHaveLength(1);
  });
});

describe('Dhcp6Core: reservations', () => {
  it('by DUID: the fixed address and name, never given to another client', async () => {
    const vip = new TestClient6('52:54:00:00:00:aa', duidLlt('52:54:00:00:00:aa', NOW - 1e9));
    const c = core({ reservations: [{ duid: formatDuid(vip.duid), address: 'fd00:10::5', hostname: 'db' }], range: { start: 'fd00:10::5', end: 'fd00:10::6' } });
    const other = new TestClient6('52:54:00:00:00:01');
    other.serverId = SERVER;
    const reply = replyOf((await c.handle(other.bytes(T.REQUEST, { addresses: ['fd00:10::5'] }), PEER)).reply);
    expect(liveAddresses(reply)).toEqual(['fd00:10::6']);
    expect(await obtain(c, vip)).toBe('fd00:10::5');
    expect(c.leases().find((l) => l.address === 'fd00:10::5')).toMatchObject({ hostname: 'db', duid: formatDuid(vip.duid) });
  });

  it('by MAC: read from a DUID-LL/LLT, else from the link-layer source the transport passes', async () => {
    const c = core({ reservations: [{ mac: '52:54:00:00:00:bb', address: 'fd00:10::7', hostname: 'web' }] });
    expect(await obtain(c, new TestClient6('52:54:00:00:00:bb', duidLlt('52:54:00:00:00:bb', NOW)))).toBe('fd00:10::7');

    // DUID-EN (systemd-networkd's default): no MAC inside, the packet's source MAC decides
    const en = Uint8Array.from([0, 2, 0, 0, 0xab, 0x11, 1, 2, 3, 4, 5, 6, 7, 8]);
    const c2 = core({ reservations: [{ mac: '52:54:00:00:00:bb', address: 'fd00:10::7' }], store: undefined });
    expect(await obtain(c2, new TestClient6('52:54:00:00:00:bb', en), 1, { address: 'fe80::1', mac: '52:54:00:00:00:BB' })).toBe('fd00:10::7');
    // without the source MAC it is just another client
    expect(await obtain(c2, new TestClient6('52:54:00:00:00:bb', Uint8Array.from([0, 2, 0, 0, 0xab, 0x11, 9])))).not.toBe('fd00:10::7');
  });

  it('a reservation added at runtime moves its address away from the client holding it at the next Renew', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::101' } });
    const holder = new TestClient6('52:54:00:00:00:01');
    const taken = await obtain(c, holder);
    const owner = new TestClient6('52:54:00:00:00:02');
    c.setReservations([{ duid: formatDuid(owner.duid), address: taken }]);
    const reply = replyOf((await c.handle(holder.bytes(T.RENEW, { addresses: [taken] }), PEER)).reply);
    const ia = reply.iaNa[0]!;
    expect(ia.addresses.find((a) => a.validLifetime === 0)).toBeDefined();
    expect(liveAddresses(reply)).not.toContain(taken);
    expect(await obtain(c, owner)).toBe(taken);
  });

  it('takes the host name from the Client FQDN option (RFC 4704), subject to nameAllowed; a reservation\'s name wins', async () => {
    const refused: string[] = [];
    const c = core({ nameAllowed: (name, claimant) => (name === 'gateway' ? (refused.push(claimant.duid), false) : true), reservations: [{ mac: '52:54:00:00:00:03', address: 'fd00:10::9', hostname: 'db' }] });
    const fqdn = (name: string) => ({ code: 39, data: Uint8Array.from([0x01, ...name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]), 0]) });
    const ask = async (mac: string, name: string): Promise<string | undefined> => {
      const client = new TestClient6(mac);
      const m = client.message(T.SOLICIT, { rapidCommit: true, serverId: null });
      m.other.push(fqdn(name));
      await c.handle(encodeDhcp6(m), PEER);
      return c.leases().find((l) => l.mac === mac)?.hostname;
    };
    expect(await ask('52:54:00:00:00:01', 'Web_1.example.org')).toBe('web-1');
    expect(await ask('52:54:00:00:00:02', 'gateway')).toBeUndefined();
    expect(refused).toHaveLength(1);
    expect(await ask('52:54:00:00:00:03', 'other')).toBe('db');
    expect(clientFqdnLabel(Uint8Array.from([0, 200, 1]))).toBeUndefined();
  });

  it('answers the Client FQDN option as RFC 4704 says: only when asked for in the ORO; S/O/N flags; the name natd publishes', async () => {
    const c = core({ fqdn: { publish: true, domain: 'vm.test' }, nameAllowed: (name) => name !== 'taken', reservations: [{ mac: '52:54:00:00:00:03', address: 'fd00:10::9', hostname: 'db' }] });
    const fqdnOf = (flags: number, name: string) => ({ code: 39, data: Uint8Array.from([flags, ...name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)])]) });
    const exchange = async (mac: string, flags: number, name: string, oro: number[] | undefined, rapidCommit = true) => {
      const client = new TestClient6(mac);
      const m = client.message(T.SOLICIT, { rapidCommit, serverId: null });
      m.other.push(fqdnOf(flags, name));
      if (oro) m.oro = oro;
      const reply = replyOf((await c.handle(encodeDhcp6(m), PEER)).reply);
      const opt = reply.other.find((o) => o.code === 39);
      if (!opt) return undefined;
      const labels: string[] = [];
      let i = 1;
      while (i < opt.data.length && opt.data[i]! > 0) {
        labels.push(Buffer.from(opt.data.subarray(i + 1, i + 1 + opt.data[i]!)).toString());
        i += 1 + opt.data[i]!;
      }
      return { flags: opt.data[0], name: labels.join('.'), rooted: i < opt.data.length && opt.data[i] === 0 };
    };
    // not asked for in the ORO: not sent (§6)
    expect(await exchange('52:54:00:00:00:01', 0x01, 'web', [23, 24])).toBeUndefined();
    // client S=1: natd publishes: S=1, O=0, N=0, the fully qualified name
    expect(await exchange('52:54:00:00:00:01', 0x01, 'web', [39])).toEqual({ flags: 0x01, name: 'web.vm.test', rooted: true });
    // client S=0 (it would update AAAA itself): natd overrides: S=1, O=1
    expect(await exchange('52:54:00:00:00:02', 0x00, 'app', [23, 39])).toEqual({ flags: 0x03, name: 'app.vm.test', rooted: true });
    // a refused name: N=1, S=0, O=1 (the client asked for S), its own label back as a partial name
    expect(await exchange('52:54:00:00:00:04', 0x01, 'taken', [39])).toEqual({ flags: 0x06, name: 'taken', rooted: false });
    // a reservation's name wins over the client's
    expect(await exchange('52:54:00:00:00:03', 0x01, 'other', [39])).toEqual({ flags: 0x01, name: 'db.vm.test', rooted: true });
    // an Advertise says the name a Request would get
    expect(await exchange('52:54:00:00:00:05', 0x01, 'adv', [39], false)).toEqual({ flags: 0x01, name: 'adv.vm.test', rooted: true });
    expect(c.leases().find((l) => l.mac === '52:54:00:00:00:05')).toBeUndefined();
    // DNS off: natd publishes nothing: N=1
    const off = core({ fqdn: { publish: false } });
    const client = new TestClient6('52:54:00:00:00:06');
    const m = client.message(T.SOLICIT, { rapidCommit: false, serverId: null });
    m.other.push(fqdnOf(0x01, 'quiet'));
    m.oro = [39];
    const adv = replyOf((await off.handle(encodeDhcp6(m), PEER)).reply);
    expect(adv.type).toBe(T.ADVERTISE);
    expect(adv.other.find((o) => o.code === 39)?.data[0]).toBe(0x06);
  });

  it('a client given a reservation at runtime moves to it at its next Renew, the old address with lifetimes 0', async () => {
    const c = core();
    const client = new TestClient6('52:54:00:00:00:01');
    const dynamic = await obtain(c, client);
    c.setReservations([{ mac: '52:54:00:00:00:01', address: 'fd00:10::42', hostname: 'web' }]);
    const reply = replyOf((await c.handle(client.bytes(T.RENEW, { addresses: [dynamic] }), PEER)).reply);
    expect(liveAddresses(reply)).toEqual(['fd00:10::42']);
    expect(reply.iaNa[0]!.addresses.filter((a) => a.validLifetime === 0)).toHaveLength(1);
    expect(c.leases()).toMatchObject([{ address: 'fd00:10::42', hostname: 'web' }]);
  });

  it('a reservation moved by reload (RFC 8415 §18.3.4): Renew and Rebind get the old address with lifetimes 0 and the new one', async () => {
    const c = core({ reservations: [{ mac: '52:54:00:00:00:01', address: 'fd00:10::42', hostname: 'web' }] });
    const client = new TestClient6('52:54:00:00:00:01');
    expect(await obtain(c, client)).toBe('fd00:10::42');
    c.setReservations([{ mac: '52:54:00:00:00:01', address: 'fd00:10::43', hostname: 'web' }]);
    const reply = replyOf((await c.handle(client.bytes(T.RENEW, { addresses: ['fd00:10::42'] }), PEER)).reply);
    expect(liveAddresses(reply)).toEqual(['fd00:10::43']);
    expect(reply.iaNa[0]!.addresses.filter((a) => a.validLifetime === 0 && a.preferredLifetime === 0).map((a) => a.address.join())).toHaveLength(1);
    expect(c.leases()).toMatchObject([{ address: 'fd00:10::43', hostname: 'web' }]);
    expect(journal.commits.at(-1)).toMatchObject([{ kind: 'bind6', lease: { address: 'fd00:10::43' } }]);
    // moved again, now into the range; a Rebind (no server id) moves it too
    c.setReservations([{ mac: '52:54:00:00:00:01', address: 'fd00:10::105', hostname: 'web' }]);
    const rebound = replyOf((await c.handle(client.bytes(T.REBIND, { addresses: ['fd00:10::43'], serverId: null }), PEER)).reply);
    expect(liveAddresses(rebound)).toEqual(['fd00:10::105']);
    expect(rebound.iaNa[0]!.addresses.some((a) => a.validLifetime === 0)).toBe(true);
    // the old reserved address is free again for anyone (::43 is outside the range: no one else gets it)
    expect(c.leases().map((l) => l.address)).toEqual(['fd00:10::105']);
  });

  it('rejects a reservation outside the served /64', () => {
    expect(() => core({ reservations: [{ mac: '52:54:00:00:00:01', address: 'fd00:99::5' }] })).toThrow(/outside the served/);
  });
});

describe('Dhcp6Core: stateless', () => {
  const stateless = (): Dhcp6Core => core({ range: undefined, informationRefreshTime: 86400 });

  it('Information-request → Reply with DNS, search list and refresh time, no addresses; also without a client id', async () => {
    const c = stateless();
    const client = new TestClient6('52:54:00:00:00:01');
    for (const opts of [{ iaids: [] }, { iaids: [], noClientId: true }]) {
      const out = await c.handle(client.bytes(T.INFORMATION_REQUEST, { ...opts, oro: [Dhcp6Option.DNS_SERVERS, Dhcp6Option.DOMAIN_LIST] }), PEER);
      const reply = replyOf(out.reply);
      expect(reply.type).toBe(T.REPLY);
      expect(reply.dnsServers).toHaveLength(1);
      expect(reply.domainList).toEqual(['vm']);
      expect(reply.informationRefreshTime).toBe(86400);
      expect(reply.iaNa).toEqual([]);
    }
    expect(journal.commits).toEqual([]);
  });

  it('Solicit → Advertise with NoAddrsAvail in the IA (RFC 8415 §18.3.9), even with Rapid Commit', async () => {
    const c = stateless();
    const out = await c.handle(new TestClient6('52:54:00:00:00:01').bytes(T.SOLICIT, { rapidCommit: true }), PEER);
    expect(out.kind).toBe('advertise');
    const adv = replyOf(out.reply);
    expect(adv.type).toBe(T.ADVERTISE);
    expect(iaStatus(adv)).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    expect(adv.rapidCommit).toBeUndefined();
    expect(c.leases()).toEqual([]);
  });
});

describe('Dhcp6Core: message validation (RFC 8415 §16)', () => {
  const cases: [string, number, Parameters<TestClient6['message']>[1], 'ignored' | 'invalid'][] = [
    ['Solicit with a server id', T.SOLICIT, { serverId: SERVER }, 'invalid'],
    ['Solicit without a client id', T.SOLICIT, { noClientId: true }, 'invalid'],
    ['Request for another server', T.REQUEST, { serverId: duidLl('02:00:00:00:00:99') }, 'ignored'],
    ['Request without a server id', T.REQUEST, { serverId: null }, 'invalid'],
    ['Renew for another server', T.RENEW, { serverId: duidLl('02:00:00:00:00:99') }, 'ignored'],
    ['Release for another server', T.RELEASE, { serverId: duidLl('02:00:00:00:00:99') }, 'ignored'],
    ['Decline without a client id', T.DECLINE, { serverId: SERVER, noClientId: true }, 'invalid'],
    ['Rebind with a server id', T.REBIND, { serverId: SERVER }, 'invalid'],
    ['Confirm with a server id', T.CONFIRM, { serverId: SERVER, addresses: ['fd00:10::5'] }, 'invalid'],
    ['Information-request for another server', T.INFORMATION_REQUEST, { iaids: [], serverId: duidLl('02:00:00:00:00:99') }, 'ignored'],
    ['Information-request with an IA_NA', T.INFORMATION_REQUEST, { iaids: [1] }, 'invalid'],
    ['an Advertise from a guest', T.ADVERTISE, {}, 'ignored'],
    ['a Reply from a guest', T.REPLY, { serverId: SERVER }, 'ignored'],
    ['a Reconfigure from a guest', T.RECONFIGURE, { serverId: SERVER }, 'ignored'],
  ];
  it.each(cases)('%s (message type %i): no reply, no change', async (_name, type, opts, kind) => {
    const c = core();
    const out = await c.handle(new TestClient6('52:54:00:00:00:01').bytes(type, opts), PEER);
    expect(out.kind).toBe(kind);
    expect(out.reply).toBeUndefined();
    expect(journal.commits).toEqual([]);
    expect(c.leases()).toEqual([]);
  });

  it('relay messages are ignored; garbage is invalid', async () => {
    const c = core();
    const relay = Buffer.concat([Buffer.from([12, 0]), Buffer.alloc(32), Buffer.from([0, 9, 0, 0])]);
    expect((await c.handle(relay, PEER)).kind).toBe('ignored');
    expect((await c.handle(Buffer.from([1, 2]), PEER)).kind).toBe('invalid');
    expect((await c.handle(Buffer.from([1, 0, 0, 0, 0, 1, 0, 200]), PEER)).kind).toBe('invalid');
  });
});

describe('Dhcp6Core: a full range (Solicit flood)', () => {
  const mac = (i: number) => `52:54:00:01:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  const solicit = async (c: Dhcp6Core, client: TestClient6) => replyOf((await c.handle(client.bytes(T.SOLICIT, { serverId: null }), PEER)).reply);

  it('answers NoAddrsAvail without scanning the range again; bound clients still renew; freed and expired addresses come back', async () => {
    // 256 addresses, offers held 60 s: 4 real clients bind, a flood of random DUIDs takes the rest as offers
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::1ff' }, rapidCommit: false, offerHoldSeconds: 60 });
    const real = [1, 2, 3, 4].map((i) => new TestClient6(mac(i)));
    const bound = [];
    for (const client of real) bound.push(await obtain(c, client));
    for (let i = 100; i < 100 + 252; i++) expect(liveAddresses(await solicit(c, new TestClient6(mac(i))))).toHaveLength(1);
    expect(c.stats().offers).toBe(252);

    // the first Solicit past the end scans the range once; the next 1000 examine nothing
    expect(iaStatus(await solicit(c, new TestClient6(mac(1000))))).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    const afterScan = c.stats().rangeExamined;
    for (let i = 1001; i < 2001; i++) expect(iaStatus(await solicit(c, new TestClient6(mac(i))))).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    expect(c.stats().rangeExamined).toBe(afterScan);

    // a real client renews its binding meanwhile
    now += 1000;
    const renewed = replyOf((await c.handle(real[0]!.bytes(T.RENEW, { addresses: [bound[0]!] }), PEER)).reply);
    expect(liveAddresses(renewed)).toEqual([bound[0]]);

    // a released address is found at once (examined: the freed one only)
    const rel = await c.handle(real[1]!.bytes(T.RELEASE, { addresses: [bound[1]!] }), PEER);
    expect(rel.kind).toBe('reply');
    const before = c.stats().rangeExamined;
    expect(liveAddresses(await solicit(c, new TestClient6(mac(3000))))).toEqual([bound[1]]);
    expect(c.stats().rangeExamined - before).toBeLessThanOrEqual(2);
    expect(iaStatus(await solicit(c, new TestClient6(mac(3001))))).toBe(Dhcp6Status.NO_ADDRS_AVAIL);

    // offers end: the flood does not pin the range; a new client gets an address, examining only the ended offers
    now += 61_000;
    const late = c.stats().rangeExamined;
    expect(liveAddresses(await solicit(c, new TestClient6(mac(4000))))).toHaveLength(1);
    expect(c.stats().rangeExamined - late).toBeLessThanOrEqual(256);
    // every other client of the flood's size finds one too, without a scan each
    const mid = c.stats().rangeExamined;
    let served = 0;
    for (let i = 4001; iaStatus(await solicit(c, new TestClient6(mac(i)))) !== Dhcp6Status.NO_ADDRS_AVAIL; i++) served++;
    expect(served).toBe(252 + 1 - 1); // the flood's offers and the released address's offer ended; 4000 took one
    expect(c.stats().rangeExamined - mid).toBeLessThan(2 * 256);
  });

  it('an address taken while the range is known full is seen when its new lease ends (no address lost to the memo)', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::103' }, rapidCommit: true, preferredLifetime: 30, validLifetime: 40 });
    const commit = async (i: number) => liveAddresses(replyOf((await c.handle(new TestClient6(mac(i)).bytes(T.SOLICIT, { serverId: null, rapidCommit: true }), PEER)).reply));
    const first = [];
    for (let i = 1; i <= 4; i++) first.push((await commit(i))[0]!);
    expect(await commit(5)).toEqual([]); // full: the memo is set
    const one = new TestClient6(mac(1));
    one.serverId = SERVER;
    await c.handle(one.bytes(T.RELEASE, { addresses: [first[0]!] }), PEER);
    expect(await commit(5)).toEqual([first[0]]); // the freed address, bound again while the range is known full
    now += 41_000; // every lease has ended, the one bound after the memo too
    const again = [];
    for (let i = 6; i <= 9; i++) again.push((await commit(i))[0]);
    expect(again.sort()).toEqual([...first].sort());
    expect(await commit(10)).toEqual([]);
    // and again: the addresses bound from the memo's list end too
    now += 41_000;
    const third = [];
    for (let i = 11; i <= 14; i++) third.push((await commit(i))[0]);
    expect(third.sort()).toEqual([...first].sort());
  });

  it('a reservation change forgets what it knew: an address reserved away from the range is given again', async () => {
    const c = core({ range: { start: 'fd00:10::100', end: 'fd00:10::101' }, rapidCommit: false, reservations: [{ mac: '52:54:00:00:00:99', address: 'fd00:10::101' }] });
    expect(liveAddresses(await solicit(c, new TestClient6(mac(1))))).toHaveLength(1);
    expect(iaStatus(await solicit(c, new TestClient6(mac(2))))).toBe(Dhcp6Status.NO_ADDRS_AVAIL);
    c.setReservations([]);
    expect(liveAddresses(await solicit(c, new TestClient6(mac(2))))).toEqual(['fd00:10::101']);
  });
});
