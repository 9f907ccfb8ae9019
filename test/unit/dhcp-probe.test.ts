/**
 * Conflict probing: the detector's cache, sharing, concurrency bound and overload answer; the neighbour-table
 * parser; and, through the real transport and core with a fake socket, that a DISCOVER waits for the probe the core
 * asked for (alone), its verdict goes back to the core, and an address found in use is replaced by another one.
 */
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, encodeU32 } from '../../src/dhcp/codec.js';
import { ConflictDetector, macFromNeighJson, type ProbeAnswer } from '../../src/dhcp/probe.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { DhcpTransport } from '../../src/dhcp/transport.js';
import { DhcpOption, type LeaseChange } from '../../src/dhcp/types.js';
import { formatIpv4, makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { recordingLogger } from '../support/recording-logger.js';

const ip = (text: string): number => parseIpv4(text)!;

/** A probe whose answers the test releases by hand. */
function manualProbe() {
  const pending = new Map<string, (a: ProbeAnswer) => void>();
  const calls: string[] = [];
  const probe = (address: string) => {
    calls.push(address);
    return new Promise<ProbeAnswer>((resolve) => pending.set(address, resolve));
  };
  const answer = (address: string, a: ProbeAnswer) => {
    const resolve = pending.get(address);
    if (!resolve) throw new Error(`no probe of ${address} running`);
    pending.delete(address);
    resolve(a);
  };
  return { probe, answer, calls, pending };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('ConflictDetector', () => {
  it('remembers an answered address as in use until its TTL ends, a silent one as free for less', async () => {
    let now = 1000;
    const p = manualProbe();
    const d = new ConflictDetector({ probe: p.probe, inUseTtlMs: 60_000, freeTtlMs: 3000, now: () => now });
    const busy = d.check(ip('10.0.0.5'), '52:54:00:00:00:01');
    const idle = d.check(ip('10.0.0.6'), '52:54:00:00:00:01');
    p.answer('10.0.0.5', { answered: true, mac: '52:54:00:99:99:99' });
    p.answer('10.0.0.6', { answered: false });
    expect([await busy, await idle]).toEqual(['in-use', 'free']);
    expect(d.cached(ip('10.0.0.5'))).toBe('in-use');
    expect(d.cached(ip('10.0.0.6'))).toBe('free');
    now += 3000;
    expect(d.cached(ip('10.0.0.6'))).toBeUndefined();
    expect(d.cached(ip('10.0.0.5'))).toBe('in-use');
    now += 57_000;
    expect(d.cached(ip('10.0.0.5'))).toBeUndefined();
    expect(d.stats()).toMatchObject({ probes: 2, inUse: 1 });
  });

  it('does not count the requesting client answering for its own address as a conflict', async () => {
    const p = manualProbe();
    const d = new ConflictDetector({ probe: p.probe });
    const verdict = d.check(ip('10.0.0.5'), '52:54:00:00:00:01');
    p.answer('10.0.0.5', { answered: true, mac: '52:54:00:00:00:01' });
    expect(await verdict).toBe('free');
  });

  it('shares one probe between checks of the same address', async () => {
    const p = manualProbe();
    const d = new ConflictDetector({ probe: p.probe });
    const a = d.check(ip('10.0.0.5'), '52:54:00:00:00:01');
    const b = d.check(ip('10.0.0.5'), '52:54:00:00:00:02');
    await flush();
    expect(p.calls).toEqual(['10.0.0.5']);
    p.answer('10.0.0.5', { answered: false });
    expect([await a, await b]).toEqual(['free', 'free']);
  });

  it('runs at most maxConcurrent probes, queues maxQueued more and answers busy (never "go ahead") past that', async () => {
    const p = manualProbe();
    const d = new ConflictDetector({ probe: p.probe, maxConcurrent: 2, maxQueued: 1 });
    const verdicts = [1, 2, 3, 4].map((n) => d.check(ip(`10.0.0.${n}`), '52:54:00:00:00:01'));
    await flush();
    expect(p.calls).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(d.stats()).toMatchObject({ running: 2, queued: 1, busy: 1, skipped: 0 });
    expect(await verdicts[3]).toBe('busy');
    p.answer('10.0.0.1', { answered: false });
    await flush();
    await flush();
    expect(p.calls).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    p.answer('10.0.0.2', { answered: false });
    p.answer('10.0.0.3', { answered: true });
    expect(await Promise.all(verdicts.slice(0, 3))).toEqual(['free', 'free', 'in-use']);
    expect(d.stats()).toMatchObject({ running: 0, queued: 0 });
  });

  it('learns nothing from a probe that could not run or threw', async () => {
    const d = new ConflictDetector({
      probe: async (address) => {
        if (address.endsWith('.1')) throw new Error('spawn ping ENOENT');
        return { answered: false, error: 'permission denied' };
      },
    });
    expect(await d.check(ip('10.0.0.1'), '52:54:00:00:00:01')).toBe('skipped');
    expect(await d.check(ip('10.0.0.2'), '52:54:00:00:00:01')).toBe('skipped');
    expect(d.cached(ip('10.0.0.1'))).toBeUndefined();
    expect(d.stats().errors).toBe(2);
  });

  it('answers busy, not skipped, when the probe could not send its request for now (retry)', async () => {
    const d = new ConflictDetector({ probe: async () => ({ answered: false, error: 'no ARP request could be sent', retry: true }) });
    expect(await d.check(ip('10.0.0.1'), '52:54:00:00:00:01')).toBe('busy');
    expect(d.cached(ip('10.0.0.1'))).toBeUndefined();
    expect(d.stats()).toMatchObject({ busy: 1, skipped: 0, errors: 1 });
  });

  it('passes the client MAC to the probe, so a probe that can tell answers apart waits for another host', async () => {
    const seen: Array<string | undefined> = [];
    const d = new ConflictDetector({ probe: async (_address, clientMac) => (seen.push(clientMac), { answered: false }) });
    await d.check(ip('10.0.0.1'), '52:54:00:00:00:07');
    expect(seen).toEqual(['52:54:00:00:00:07']);
  });
});

describe('macFromNeighJson', () => {
  it('finds the lladdr of the address and nothing for an incomplete entry', () => {
    const text = JSON.stringify([
      { dst: '10.0.0.9', dev: 'br0', state: ['INCOMPLETE'] },
      { dst: '10.0.0.5', dev: 'br0', lladdr: '52:54:00:AB:cd:01', state: ['REACHABLE'] },
    ]);
    expect(macFromNeighJson(text, '10.0.0.5')).toBe('52:54:00:ab:cd:01');
    expect(macFromNeighJson(text, '10.0.0.9')).toBeUndefined();
  });

  it('never throws on any text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), fc.ipV4(), (text, address) => {
        const mac = macFromNeighJson(text, address);
        expect(mac === undefined || /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('DhcpTransport with conflict probing', () => {
  class FakeSocket extends EventEmitter {
    readonly sent: { bytes: Buffer; port: number; address: string }[] = [];
    send(bytes: Buffer, port: number, address: string, cb: (err: Error | null) => void): void {
      this.sent.push({ bytes, port, address });
      cb(null);
    }
    close(cb: () => void): void {
      cb();
    }
  }

  function setup(withDetector = true, now: () => number = Date.now, limits: { maxConcurrent?: number; maxQueued?: number } = {}) {
    const server = ip('10.10.0.1');
    const p = manualProbe();
    const conflicts = new ConflictDetector({ probe: p.probe, ...limits });
    const core = new DhcpServerCore(
      { serverAddress: server, subnet: makeSubnet(server, 24), router: server, dnsServers: [], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') },
      [],
      { conflictVerdict: conflicts.cached },
    );
    const socket = new FakeSocket();
    const logger = recordingLogger();
    const committed: LeaseChange[] = [];
    const announced: LeaseChange[] = [];
    const transport = new DhcpTransport({
      socket: socket as unknown as dgram.Socket, bridge: 'br0', core, ...(withDetector ? { conflicts } : {}), logger, now,
      commit: async (changes) => void committed.push(...changes), onCommitted: (changes) => void announced.push(...changes),
      setNeighbour: () => undefined,
    });
    transport.start();
    const send = (n: number, type: number, extra: Array<[number, Uint8Array]> = []) => {
      const packet = emptyPacket(1);
      packet.xid = n;
      packet.flags = 0x8000; // broadcast replies: no neighbour seeding involved
      packet.chaddr.set([0x52, 0x54, 0, 0, 0, n]);
      packet.options = new Map([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(type)], ...extra]);
      socket.emit('message', encodeDhcpPacket(packet), { address: '0.0.0.0', port: 68 });
    };
    const discover = (n: number) => send(n, 1);
    const offers = () => socket.sent.map((s) => decodeDhcpPacket(s.bytes)).map((pk) => ({ xid: pk.xid, yiaddr: formatIpv4(pk.yiaddr) }));
    /** DISCOVER (probe answered free), REQUEST, ACK: the address client n holds */
    const lease = async (n: number): Promise<string> => {
      discover(n);
      await flush();
      const address = p.calls.at(-1)!;
      p.answer(address, { answered: false });
      await flush();
      const asked: Array<[number, Uint8Array]> = [[DhcpOption.REQUESTED_ADDRESS, encodeU32(ip(address))], [DhcpOption.SERVER_ID, encodeU32(server)]];
      send(n, 3, asked);
      await flush();
      expect(core.leases.getByAddress(ip(address))).toBeDefined();
      return address;
    };
    const decline = (n: number, address: string) =>
      send(n, 4, [[DhcpOption.REQUESTED_ADDRESS, encodeU32(ip(address))], [DhcpOption.SERVER_ID, encodeU32(server)]]);
    return { p, socket, transport, logger, discover, offers, lease, decline, core, committed, announced };
  }

  it('holds a DISCOVER until its probe ends, without holding other clients back', async () => {
    const t = setup();
    t.discover(1);
    t.discover(2);
    await flush();
    expect(t.p.calls).toHaveLength(2);
    expect(t.offers()).toEqual([]);
    expect(t.transport.stats().heldDiscovers).toBe(2);
    t.p.answer(t.p.calls[1]!, { answered: false });
    await flush();
    expect(t.offers()).toEqual([{ xid: 2, yiaddr: t.p.calls[1] }]);
    // a retransmission while the probe runs joins it instead of starting another
    t.discover(1);
    await flush();
    expect(t.p.calls).toHaveLength(2);
  });

  it('never offers unprobed when the probe queue is full: that DISCOVER goes unanswered, its retransmission is offered', async () => {
    const t = setup(true, Date.now, { maxConcurrent: 1, maxQueued: 0 });
    t.discover(1);
    t.discover(2);
    await flush();
    expect(t.p.calls).toHaveLength(1);
    expect(t.offers()).toEqual([]);
    expect(t.transport.stats().dropped['probe-busy']).toBe(1);
    expect(t.transport.stats().heldDiscovers).toBe(1);
    t.p.answer(t.p.calls[0]!, { answered: false });
    await flush();
    expect(t.offers().map((o) => o.xid)).toEqual([1]);
    t.discover(2); // the client's retransmission, once a slot is free
    await flush();
    expect(t.p.calls).toHaveLength(2);
    t.p.answer(t.p.calls[1]!, { answered: false });
    await flush();
    expect(t.offers().map((o) => o.xid)).toEqual([1, 2]);
  });

  it('offers another address when the first one answers, and logs it', async () => {
    const t = setup();
    t.discover(1);
    await flush();
    const first = t.p.calls[0]!;
    t.p.answer(first, { answered: true, mac: '52:54:00:99:99:99' });
    await flush();
    expect(t.offers()).toEqual([]);
    const second = t.p.calls[1]!;
    expect(second).not.toBe(first);
    t.p.answer(second, { answered: false });
    await flush();
    expect(t.offers()).toEqual([{ xid: 1, yiaddr: second }]);
    expect(t.logger.messages('warn')).toContainEqual(expect.objectContaining({ msg: 'address in use, skipped', address: first }));
    expect(t.transport.stats().probes).toMatchObject({ probes: 2, inUse: 1 });
  });

  it('counts a DISCOVER that waited for its probe once, with the decision after it (offer, or the busy drop)', async () => {
    const t = setup(true, Date.now, { maxConcurrent: 1, maxQueued: 0 });
    t.discover(1);
    t.discover(1); // retransmission while the probe runs: replaces the waiting one
    t.discover(2); // no probe slot: no verdict
    await flush();
    t.p.answer(t.p.calls[0]!, { answered: false });
    await flush();
    const stats = t.transport.stats();
    expect(stats.outcomes).toEqual({ offer: 1, 'ignore:probe-busy': 1 });
    expect(stats.dropped).toEqual({ 'probe-busy': 1 });
    expect(stats.sent).toEqual({ offer: 1 });
  });

  it('probes nothing for a client coming back to its own lease', async () => {
    const t = setup();
    const address = await t.lease(1);
    const probes = t.p.calls.length;
    t.discover(1);
    expect(t.offers().at(-1)).toEqual({ xid: 1, yiaddr: address }); // at once, no probe
    expect(t.p.calls).toHaveLength(probes);
  });

  it('a core that throws on the verdict costs that request only', async () => {
    const t = setup();
    t.discover(1);
    await flush();
    t.core.probeDone = () => {
      throw new Error('bug');
    };
    t.p.answer(t.p.calls[0]!, { answered: false });
    await flush();
    expect(t.transport.stats().dropped).toEqual({ 'core-exception': 1 });
    expect(t.offers()).toEqual([]);
  });

  it('verifies a DECLINE with a fresh probe (not the offer\'s cached "free") and quarantines when another host answers', async () => {
    const t = setup();
    const address = await t.lease(1);
    expect(t.p.calls).toEqual([address]);
    t.decline(1, address);
    await flush();
    expect(t.p.calls).toEqual([address, address]); // probed again despite the fresh cached verdict
    expect(t.transport.stats().pendingDeclines).toBe(1);
    expect(t.core.stats().quarantined).toBe(0);
    t.p.answer(address, { answered: true, mac: '52:54:00:99:99:99' });
    await flush();
    expect(t.core.stats().quarantined).toBe(1);
    expect(t.committed).toContainEqual(expect.objectContaining({ kind: 'decline', address: ip(address) }));
    expect(t.transport.stats().outcomes).toMatchObject({ decline: 1 });
    expect(t.transport.stats().outcomes['verify:decline']).toBeUndefined();
  });

  it('quarantines nothing when the probe finds nobody, or only the decliner itself, and counts it', async () => {
    const t = setup();
    const address = await t.lease(1);
    t.decline(1, address);
    await flush();
    t.p.answer(address, { answered: true, mac: '52:54:00:00:00:01' }); // the decliner's own MAC: no conflict
    await flush();
    expect(t.core.stats().quarantined).toBe(0);
    expect(t.transport.stats().outcomes).toMatchObject({ 'ignore:decline-unconfirmed': 1 });
    expect(t.committed.filter((c) => c.kind === 'decline')).toEqual([]);
    // the decliner's lease ended: it gave the address up
    expect(t.core.leases.getByAddress(ip(address))).toBeUndefined();
  });

  describe('every lease end is persisted (issue 13: one expiry path)', () => {
    const HOUR = 3_600_000;
    const released = (address: string) => expect.objectContaining({ kind: 'release', address: ip(address) });

    it('the expiry timer: expireLeases() commits the ended leases, then announces them', async () => {
      let clock = 1_700_000_000_000;
      const t = setup(true, () => clock);
      const address = await t.lease(1);
      t.committed.length = 0;
      t.announced.length = 0;
      await t.transport.expireLeases();
      expect(t.committed).toEqual([]);
      clock += HOUR;
      await t.transport.expireLeases();
      expect(t.committed).toEqual([released(address)]);
      expect(t.announced).toEqual(t.committed);
      await t.transport.expireLeases(); // reported once
      expect(t.committed).toHaveLength(1);
    });

    it('a DISCOVER held for its probe, or a DECLINE waiting for its verification, persists the leases it ended', async () => {
      let clock = 1_700_000_000_000;
      const t = setup(true, () => clock);
      const first = await t.lease(1);
      clock += HOUR / 2;
      const declining = await t.lease(2);
      clock += HOUR / 2; // client 1's lease ended, client 2's runs
      t.committed.length = 0;
      t.discover(3);
      await flush();
      expect(t.transport.stats().heldDiscovers).toBe(1);
      expect(t.committed).toEqual([released(first)]); // before the probe ends

      const second = await t.lease(4);
      clock += HOUR / 2; // client 2's lease ended too: the DECLINE of client 4's address waits for its probe
      t.committed.length = 0;
      t.decline(4, second);
      await flush();
      expect(t.transport.stats().pendingDeclines).toBe(1);
      expect(t.committed).toEqual([released(declining)]);
    });
  });

  it('without a detector a DECLINE is never confirmed', () => {
    const t = setup(false);
    t.discover(1);
    const offered = t.offers()[0]!.yiaddr;
    t.decline(1, offered);
    expect(t.core.stats().quarantined).toBe(0);
    expect(t.transport.stats().outcomes).toMatchObject({ offer: 1, 'ignore:decline-unconfirmed': 1 });
  });
});

describe('ConflictDetector fresh checks', () => {
  it('probes again when asked for a fresh verdict, and remembers the new one', async () => {
    const p = manualProbe();
    const d = new ConflictDetector({ probe: p.probe });
    const first = d.check(ip('10.0.0.5'), '52:54:00:00:00:01');
    p.answer('10.0.0.5', { answered: false });
    expect(await first).toBe('free');
    expect(await d.check(ip('10.0.0.5'), '52:54:00:00:00:01')).toBe('free'); // cached
    const fresh = d.check(ip('10.0.0.5'), '52:54:00:00:00:01', { fresh: true });
    expect(p.calls).toHaveLength(2);
    p.answer('10.0.0.5', { answered: true, mac: '52:54:00:99:99:99' });
    expect(await fresh).toBe('in-use');
    expect(d.cached(ip('10.0.0.5'))).toBe('in-use');
  });
});
