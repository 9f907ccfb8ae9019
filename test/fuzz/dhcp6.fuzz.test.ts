/**
 * issue 14: the DHCPv6 codec, core and settings parsers under random and mutated input.
 * - decodeDhcp6 never throws; message → bytes → message round-trips.
 * - Dhcp6Core.handle never rejects; a packet it calls invalid or ignored changes nothing (no commit, same leases,
 *   same quarantine), whatever came before.
 * - Sequences of well-formed messages from a few recurring clients (with mutations mixed in) keep the invariants:
 *   one binding per address, every bound address in the range or reserved for its holder, the journal's replay
 *   equals the core's leases, and every reply decodes.
 * - The --dhcp6-range and --dhcp-host parsers never throw on random text.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeDhcp6, encodeDhcp6, Dhcp6MessageType, type Dhcp6Message } from '../../src/dhcp6/codec.js';
import { Dhcp6Core } from '../../src/dhcp6/core.js';
import { duidLl, formatDuid } from '../../src/dhcp6/duid.js';
import { Replay6State } from '../../src/dhcp6/journal6.js';
import { parseDhcp6Range, parseDhcpHostLine } from '../../src/dhcp6/settings.js';
import type { Lease6Change, Lease6Journal } from '../../src/dhcp6/types.js';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';

const T0 = 1_700_000_000_000;
const SERVER = duidLl('02:00:00:00:00:01');
const MACS = Array.from({ length: 8 }, (_, i) => `52:54:00:00:00:0${i}`);
const RESERVED = { mac: MACS[7]!, address: 'fd00:10::5', hostname: 'db' };

class MemoryJournal implements Lease6Journal {
  commits = 0;
  readonly state = new Replay6State();
  commit(changes: readonly Lease6Change[]): Promise<void> {
    this.commits++;
    for (const c of changes) this.state.apply(c);
    return Promise.resolve();
  }
  load6(now: number) {
    return this.state.live(now);
  }
}

const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const statusArb = fc.record({ code: fc.integer({ min: 0, max: 0xffff }), message: fc.string({ maxLength: 20 }) });
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const messageArb: fc.Arbitrary<Dhcp6Message> = fc.record(
  {
    type: fc.integer({ min: 1, max: 11 }),
    transactionId: fc.integer({ min: 0, max: 0xffffff }),
    clientId: fc.uint8Array({ minLength: 3, maxLength: 30 }),
    serverId: fc.uint8Array({ minLength: 3, maxLength: 30 }),
    iaNa: fc.uniqueArray(
      fc.record(
        { iaid: u32, t1: u32, t2: u32, addresses: fc.array(fc.record({ address: bytes16, preferredLifetime: u32, validLifetime: u32, status: statusArb }, { requiredKeys: ['address', 'preferredLifetime', 'validLifetime'] }), { maxLength: 3 }), status: statusArb },
        { requiredKeys: ['iaid', 't1', 't2', 'addresses'] },
      ),
      { maxLength: 3, selector: (ia) => ia.iaid },
    ),
    oro: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 5 }),
    preference: fc.integer({ min: 0, max: 255 }),
    elapsedTime: fc.integer({ min: 0, max: 0xffff }),
    status: statusArb,
    rapidCommit: fc.constant(true as const),
    dnsServers: fc.array(bytes16, { maxLength: 3 }),
    domainList: fc.array(fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.')), { maxLength: 3 }),
    informationRefreshTime: u32,
    other: fc.array(fc.record({ code: fc.constantFrom(4, 25, 39, 16, 17, 99), data: fc.uint8Array({ maxLength: 20 }) }), { maxLength: 3 }),
  },
  { requiredKeys: ['type', 'transactionId', 'iaNa', 'other'] },
);

/** A packet with random byte flips, truncation or extension. */
function mutate(packet: Uint8Array, flips: [number, number][], cut: number | undefined, tail: Uint8Array): Uint8Array {
  const out = Uint8Array.from(packet);
  for (const [at, v] of flips) if (out.length) out[at % out.length] = v;
  const cutAt = cut === undefined ? out.length : cut % (out.length + 1);
  return Uint8Array.from([...out.subarray(0, cutAt), ...tail]);
}

function makeCore(journal: MemoryJournal, now: () => number): Dhcp6Core {
  return new Dhcp6Core({
    serverDuid: SERVER,
    prefix: 'fd00:10::1',
    serverAddress: 'fd00:10::1',
    range: { start: 'fd00:10::100', end: 'fd00:10::107' },
    reservations: [RESERVED],
    preferredLifetime: 60,
    validLifetime: 120,
    dnsServers: ['fd00:10::1'],
    domainSearch: ['vm'],
    rapidCommit: true,
    store: journal,
    now,
  });
}

const snapshot = (c: Dhcp6Core, j: MemoryJournal, now: number): string => JSON.stringify({ leases: c.leases(now), declined: c.declined(now), commits: j.commits });

describe('DHCPv6 codec under random input', () => {
  it('round-trips every message', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const normal = { ...m, domainList: m.domainList?.length ? m.domainList : undefined, dnsServers: m.dnsServers?.length ? m.dnsServers : undefined };
        if (!normal.domainList) delete normal.domainList;
        if (!normal.dnsServers) delete normal.dnsServers;
        const d = decodeDhcp6(encodeDhcp6(normal));
        if (!d.ok) throw new Error(d.reason);
        expect(d.message).toEqual(normal);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random or mutated bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        decodeDhcp6(b);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(messageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat()), fc.uint8Array({ maxLength: 8 }), (m, flips, cut, tail) => {
        const d = decodeDhcp6(mutate(encodeDhcp6(m), flips, cut ?? undefined, tail));
        if (d.ok) encodeDhcp6(d.message); // whatever decodes, encodes
      }),
      { numRuns: 2000 },
    );
  });
});

describe('DHCPv6 core under random input', () => {
  const clientMessage = fc.record({
    client: fc.integer({ min: 0, max: MACS.length - 1 }),
    type: fc.constantFrom(1, 3, 4, 5, 6, 8, 9, 11, 2, 7, 12),
    iaids: fc.subarray([1, 2], { minLength: 0 }),
    addresses: fc.array(fc.oneof(fc.integer({ min: 0x100, max: 0x10a }).map((n) => `fd00:10::${n.toString(16)}`), fc.constantFrom('fd00:10::5', 'fd00:10::1', '2001:db8::1')), { maxLength: 2 }),
    serverId: fc.constantFrom<'ours' | 'none' | 'other'>('ours', 'none', 'other'),
    rapidCommit: fc.boolean(),
    mutation: fc.option(fc.tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat()), fc.uint8Array({ maxLength: 6 })), { freq: 4 }),
    advance: fc.integer({ min: 0, max: 90_000 }),
    peerMac: fc.option(fc.constantFrom(...MACS)),
  });

  it('never rejects; invalid or ignored packets change nothing; the invariants hold after every message', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(clientMessage, { minLength: 1, maxLength: 60 }), async (steps) => {
        let now = T0;
        const journal = new MemoryJournal();
        const core = makeCore(journal, () => now);
        let xid = 1;
        for (const s of steps) {
          now += s.advance;
          const m: Dhcp6Message = {
            type: s.type,
            transactionId: xid++,
            clientId: duidLl(MACS[s.client]!),
            iaNa: s.iaids.map((iaid) => ({ iaid, t1: 0, t2: 0, addresses: s.addresses.map((a) => ({ address: parseIpv6(a)!, preferredLifetime: 0, validLifetime: 0 })) })),
            other: [],
          };
          if (s.serverId === 'ours') m.serverId = SERVER;
          if (s.serverId === 'other') m.serverId = duidLl('02:00:00:00:00:99');
          if (s.rapidCommit) m.rapidCommit = true;
          let packet: Uint8Array = encodeDhcp6(m);
          if (s.mutation) packet = mutate(packet, s.mutation[0], s.mutation[1] ?? undefined, s.mutation[2]);
          const before = snapshot(core, journal, now);
          const out = await core.handle(packet, { address: 'fe80::1', mac: s.peerMac ?? undefined });
          if (out.kind === 'invalid' || out.kind === 'ignored') {
            expect(out.reply).toBeUndefined();
            expect(snapshot(core, journal, now)).toBe(before);
          } else {
            const reply = decodeDhcp6(out.reply!);
            expect(reply.ok).toBe(true);
          }
          // invariants
          const leases = core.leases(now);
          const addresses = leases.map((l) => l.address);
          expect(new Set(addresses).size).toBe(addresses.length);
          for (const l of leases) {
            const low = parseInt(l.address.split('::')[1] ?? '0', 16);
            if (l.address === RESERVED.address) expect(l.mac).toBe(RESERVED.mac);
            else expect(low >= 0x100 && low <= 0x107 && l.address.startsWith('fd00:10::')).toBe(true);
          }
          const replayed = journal.load6(now).leases.map((l) => `${l.duid}|${l.iaid}|${l.address}`).sort();
          expect(replayed).toEqual(leases.map((l) => `${l.duid}|${l.iaid}|${l.address}`).sort());
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a small range filled and emptied at random: NoAddrsAvail exactly when no address is free (the full-range memo)', async () => {
    const step = fc.record({
      client: fc.integer({ min: 0, max: 11 }),
      type: fc.constantFrom(1, 1, 1, 3, 5, 8, 9),
      address: fc.integer({ min: 0x100, max: 0x103 }).map((n) => `fd00:10::${n.toString(16)}`),
      rapidCommit: fc.boolean(),
      advance: fc.constantFrom(0, 0, 0, 1000, 20_000, 35_000, 61_000),
    });
    let fullSeen = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 120 }), async (steps) => {
        let now = T0;
        const core = new Dhcp6Core({
          serverDuid: SERVER, prefix: 'fd00:10::1', range: { start: 'fd00:10::100', end: 'fd00:10::103' }, preferredLifetime: 30, validLifetime: 40,
          rapidCommit: true, offerHoldSeconds: 60, declineSeconds: 50, maxDeclinedShare: 0.5, now: () => now,
        });
        const probe = { duid: 'probe', mac: undefined, reservation: undefined, name: undefined };
        const mayHold = (core as unknown as { mayHold(c: object, k: string, a: string, n: number): boolean }).mayHold.bind(core);
        const free = () => [0x100, 0x101, 0x102, 0x103].map((n) => `fd00:10::${n.toString(16)}`).filter((a) => mayHold(probe, 'probe|1', a, now));
        let xid = 1;
        for (const st of steps) {
          now += st.advance;
          const m: Dhcp6Message = {
            type: st.type, transactionId: xid++, clientId: duidLl(`52:54:00:00:01:${st.client.toString(16).padStart(2, '0')}`),
            iaNa: [{ iaid: 1, t1: 0, t2: 0, addresses: st.type === 1 ? [] : [{ address: parseIpv6(st.address)!, preferredLifetime: 0, validLifetime: 0 }] }], other: [],
          };
          if (st.type !== 1) m.serverId = SERVER;
          if (st.rapidCommit) m.rapidCommit = true;
          const freeBefore = free();
          const out = await core.handle(encodeDhcp6(m), { address: 'fe80::1' });
          if (st.type !== 1) continue;
          const reply = decodeDhcp6(out.reply!);
          if (!reply.ok) throw new Error('reply does not decode');
          const refused = reply.message.iaNa.some((ia) => ia.status?.code === 2);
          if (refused) fullSeen++;
          // a Solicit is refused exactly when nothing was free for a new client (its own lease or offer aside)
          if (refused) expect(freeBefore).toEqual([]);
          if (freeBefore.length > 0) expect(refused).toBe(false);
        }
      }),
      { numRuns: 600 },
    );
    expect(fullSeen).toBeGreaterThan(10);
  });

  it('random bytes never reach the state', async () => {
    let now = T0;
    const journal = new MemoryJournal();
    const core = makeCore(journal, () => now);
    // one real binding first, so there is state to corrupt
    const solicit = encodeDhcp6({ type: Dhcp6MessageType.SOLICIT, transactionId: 1, clientId: duidLl(MACS[0]!), iaNa: [{ iaid: 1, t1: 0, t2: 0, addresses: [] }], other: [], rapidCommit: true });
    expect((await core.handle(solicit, { address: 'fe80::1' })).kind).toBe('reply');
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (b) => {
        const before = snapshot(core, journal, now);
        const out = await core.handle(b, { address: 'fe80::1' });
        if (out.kind === 'invalid' || out.kind === 'ignored') expect(snapshot(core, journal, now)).toBe(before);
        now += 1;
      }),
      { numRuns: 3000 },
    );
    expect(core.leases(now).map((l) => l.duid)).toContain(formatDuid(duidLl(MACS[0]!)));
  });
});

describe('DHCPv6 settings parsers under random text', () => {
  it('never throw, and a parsed range is IPv6', () => {
    const piece = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('::1', 'fd00::5', '[fd00::5]', 'id:00:01:00:01:aa', '52:54:00:aa:bb:cc', '10.0.0.1', '64', '1h', 'infinite', ','));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }).map((p) => p.join(',')), fc.array(piece, { maxLength: 4 }).map((p) => p.join('-')), (a, b) => {
        const problems: string[] = [];
        for (const text of [a, b]) {
          const r = parseDhcp6Range(text, 'r', problems);
          if (r) expect(formatIpv6(parseIpv6(r.start.address)!)).toBe(r.start.address);
          parseDhcpHostLine(text, 'h', problems);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// issue 14: the server's Client FQDN option (RFC 4704) from whatever the client sent
describe('Client FQDN reply under random client options', () => {
  it('never throws; N=1 only without a published name, and then S=0; O says S differs from the client\'s', async () => {
    const { fqdnReplyData } = await import('../../src/dhcp6/fqdn.js');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.option(fc.stringMatching(/^[a-z0-9-]{1,63}$/), { nil: undefined }), fc.option(fc.constantFrom('vm', 'example.org'), { nil: undefined }), (client, published, domain) => {
        const out = fqdnReplyData(client, published, published, domain);
        const flags = out[0]!;
        const clientS = client.length > 0 && (client[0]! & 1) === 1;
        expect(flags & 0xf8).toBe(0);
        if (published !== undefined) expect(flags & 0x05).toBe(0x01);
        else expect(flags & 0x05).toBe(0x04);
        expect(Boolean(flags & 0x02)).toBe(Boolean(flags & 0x01) !== clientS);
      }),
      { numRuns: 2000 },
    );
  });
});
