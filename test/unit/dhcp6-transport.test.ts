import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ClientAddress } from '../../src/dns/client-address.js';
import type { UdpHandlers } from '../../src/dns/udp-transport.js';
import { Dhcp6Transport, macFromClientKey, macFromLinkLocal, MAX_IN_FLIGHT, type Dhcp6CoreLike, type Dhcp6OutcomeLike, type Dhcp6Port } from '../../src/dhcp6/transport.js';
import { recordingLogger } from '../support/recording-logger.js';

interface Sent {
  data: Buffer;
  port: number;
  address: string;
}

function fakeSocket(): { socket: dgram.Socket; sent: Sent[]; emitter: EventEmitter } {
  const emitter = new EventEmitter();
  const sent: Sent[] = [];
  const socket = Object.assign(emitter, {
    send: (data: Buffer, port: number, address: string, cb: (err: Error | null) => void) => {
      sent.push({ data, port, address });
      cb(null);
    },
    close: (cb: () => void) => cb(),
  }) as unknown as dgram.Socket;
  return { socket, sent, emitter };
}

function setUp(core: Dhcp6CoreLike, opts: { now?: () => number } = {}) {
  const { socket, sent, emitter } = fakeSocket();
  const logger = recordingLogger();
  const changes: unknown[] = [];
  const transport = new Dhcp6Transport({ socket, bridge: 'natd-br0', core, logger, ...opts, onChanges: (c) => changes.push(...c) });
  transport.start();
  const receive = (msg: Buffer, from = 'fe80::5054:ff:fe12:3456%natd-br0') => emitter.emit('message', msg, { address: from, port: 546 });
  return { transport, sent, receive, logger, changes };
}

const flush = () => new Promise((r) => setTimeout(r, 0));
const solicit = (tid = 1) => Buffer.from([1, 0, 0, tid, 0, 8, 0, 2, 0, 0]);

describe('DHCPv6 transport', () => {
  it('hands client messages to the core with the EUI-64 MAC and sends the reply to the link-local source on 546, scoped to the bridge', async () => {
    const peers: { address: string; mac?: string }[] = [];
    const core: Dhcp6CoreLike = {
      handle: async (packet, peer) => {
        peers.push(peer);
        return { kind: 'advertise', reply: Buffer.from([2, ...packet.subarray(1, 4)]), changes: [{ add: 'x' }] };
      },
    };
    const { transport, sent, receive, changes } = setUp(core);
    receive(solicit(7));
    await flush();
    expect(peers).toEqual([{ address: 'fe80::5054:ff:fe12:3456', mac: '52:54:00:12:34:56' }]);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.port).toBe(546);
    expect(sent[0]!.address).toBe('fe80::5054:ff:fe12:3456%natd-br0');
    expect([...sent[0]!.data]).toEqual([2, 0, 0, 7]);
    expect(changes).toEqual([{ add: 'x' }]);
    expect(transport.stats()).toMatchObject({ received: 1, receivedByType: { solicit: 1 }, sent: { advertise: 1 }, outcomes: { advertise: 1 } });
  });

  it('sends nothing for ignored and invalid outcomes, and counts them', async () => {
    const outcomes: Dhcp6OutcomeLike[] = [{ kind: 'ignored', reason: 'not for us' }, { kind: 'invalid', reason: 'no client id' }];
    const { transport, sent, receive } = setUp({ handle: async () => outcomes.shift()! });
    receive(solicit());
    receive(solicit());
    await flush();
    expect(sent).toHaveLength(0);
    expect(transport.stats().outcomes).toEqual({ ignored: 1, invalid: 1 });
  });

  it('drops short, oversize, server and unknown messages before the core and counts each', async () => {
    let calls = 0;
    const { transport, receive, sent } = setUp({ handle: async () => (calls++, { kind: 'ignored' }) });
    receive(Buffer.from([1, 0]));
    receive(Buffer.alloc(2000, 1));
    receive(Buffer.from([2, 0, 0, 1])); // advertise from a "client"
    receive(Buffer.from([7, 0, 0, 1])); // reply
    receive(Buffer.from([12, 0, 0, 1])); // relay-forw: no relays on the bridge
    receive(Buffer.from([200, 0, 0, 1]));
    await flush();
    expect(calls).toBe(0);
    expect(sent).toHaveLength(0);
    expect(transport.stats().dropped).toEqual({ short: 1, oversize: 1, 'server-message': 2, 'unknown-type': 2 });
  });

  it('rate-limits per source: a flooding source is dropped while another is still served', async () => {
    let t = 0;
    let calls = 0;
    const { transport, receive } = setUp({ handle: async () => (calls++, { kind: 'ignored' }) }, { now: () => t });
    for (let i = 0; i < 500; i++) receive(solicit(i & 0xff), 'fe80::1%natd-br0');
    receive(solicit(), 'fe80::2%natd-br0');
    await flush();
    const stats = transport.stats();
    expect(stats.dropped['rate-limited']).toBe(500 - 100);
    expect(calls).toBe(101);
    t += 1000; // a second later: 50 more from the flooder
    for (let i = 0; i < 100; i++) receive(solicit(), 'fe80::1%natd-br0');
    await flush();
    expect(calls).toBe(151);
  });

  it('forgets idle sources rather than growing without bound', () => {
    const { transport, receive } = setUp({ handle: async () => ({ kind: 'ignored' }) });
    for (let i = 0; i < 20_000; i++) receive(solicit(), `fe80::${(i + 1).toString(16)}%natd-br0`);
    expect(transport.stats().trackedSources).toBeLessThanOrEqual(4096);
  });

  it('caps the requests waiting for the core; close waits for them', async () => {
    const waiting: (() => void)[] = [];
    const core: Dhcp6CoreLike = { handle: () => new Promise((resolve) => waiting.push(() => resolve({ kind: 'reply', reply: Buffer.from([7, 0, 0, 1]) }))) };
    const { transport, receive, sent } = setUp(core);
    for (let i = 0; i < MAX_IN_FLIGHT + 10; i++) receive(solicit(), `fe80::${(i + 1).toString(16)}%natd-br0`);
    expect(transport.stats().inFlight).toBe(MAX_IN_FLIGHT);
    expect(transport.stats().dropped.busy).toBe(10);
    let closed = false;
    const closing = transport.close().then(() => (closed = true));
    await flush();
    expect(closed).toBe(false);
    for (const w of waiting) w();
    await closing;
    expect(sent).toHaveLength(0); // closed: the socket is gone, nothing is sent
  });

  it('a core that throws (journal failure) sends no reply and is counted', async () => {
    const { transport, receive, sent } = setUp({ handle: async () => { throw new Error('EIO'); } });
    receive(solicit());
    await flush();
    expect(sent).toHaveLength(0);
    expect(transport.stats().dropped['core-error']).toBe(1);
  });

  it('never throws on junk from any source', async () => {
    const { transport, receive } = setUp({ handle: async () => ({ kind: 'invalid' }) });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1600 }), fc.string({ maxLength: 60 }), (bytes, from) => {
        receive(Buffer.from(bytes), from);
      }),
      { numRuns: 2000 },
    );
    await flush();
    expect(transport.stats().received).toBeGreaterThanOrEqual(2000);
  });
});

describe('macFromLinkLocal', () => {
  it('decodes modified EUI-64 link-locals only', () => {
    expect(macFromLinkLocal('fe80::5054:ff:fe12:3456')).toBe('52:54:00:12:34:56');
    expect(macFromLinkLocal('fe80::200:ff:fe00:1%br0')).toBe('00:00:00:00:00:01');
    expect(macFromLinkLocal('fe80::1')).toBeUndefined();
    expect(macFromLinkLocal('fe80::a1b2:c3d4:e5f6:789')).toBeUndefined(); // stable-privacy (RFC 7217)
    expect(macFromLinkLocal('fd00::5054:ff:fe12:3456')).toBeUndefined();
    expect(macFromLinkLocal('garbage')).toBeUndefined();
  });

  it('inverts the EUI-64 encoding for every MAC', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }), (m) => {
        const g = (a: number, b: number) => ((a << 8) | b).toString(16);
        const address = `fe80::${g(m[0]! ^ 2, m[1]!)}:${g(m[2]!, 0xff)}:${g(0xfe, m[3]!)}:${g(m[4]!, m[5]!)}`;
        expect(macFromLinkLocal(address)).toBe(m.map((b) => b.toString(16).padStart(2, '0')).join(':'));
      }),
    );
  });
});

describe('DHCPv6 transport send backlog', () => {
  it('drops Advertises (not Replies) while dgram holds a backlog of unsent datagrams', async () => {
    const { socket, sent, emitter } = fakeSocket();
    let backlog = 100;
    Object.assign(socket, { getSendQueueCount: () => backlog });
    const kinds: ('advertise' | 'reply')[] = ['advertise', 'reply'];
    const transport = new Dhcp6Transport({ socket, bridge: 'br0', logger: recordingLogger(), core: { handle: async () => ({ kind: kinds.shift()!, reply: Buffer.from([2, 0, 0, 1]) }) } });
    transport.start();
    emitter.emit('message', solicit(), { address: 'fe80::1', port: 546 });
    emitter.emit('message', Buffer.from([3, 0, 0, 2]), { address: 'fe80::2', port: 546 });
    await flush();
    expect(sent).toHaveLength(1);
    expect(transport.stats().dropped['send-backlog']).toBe(1);
    backlog = 0;
  });
});

describe('DHCPv6 transport on a batched port (issue 14: the daemon\'s BatchUdp6Transport)', () => {
  /**
   * a port that records what leaves in which batch, as BatchUdp6Transport groups its sendmmsg calls: the answers given
   * while a receive batch is delivered leave with it, the others together at the end of the microtask run
   */
  function fakePort() {
    let handlers: UdpHandlers | undefined;
    const batches: { to: ClientAddress; first: number }[][] = [];
    let open: { to: ClientAddress; first: number }[] | undefined;
    let queued: { to: ClientAddress; first: number }[] | undefined;
    const port: Dhcp6Port = {
      start: (h) => void (handlers = h),
      reply: (message, to) => {
        if (open) return void open.push({ to, first: message[0]! });
        if (!queued) {
          const batch: { to: ClientAddress; first: number }[] = (queued = []);
          queueMicrotask(() => {
            batches.push(batch);
            queued = undefined;
          });
        }
        queued.push({ to, first: message[0]! });
      },
      close: async () => undefined,
    };
    /** one recvmmsg batch: every datagram delivered, then what was answered meanwhile leaves as one batch */
    const deliver = (datagrams: [Buffer, ClientAddress][]) => {
      open = [];
      for (const [msg, from] of datagrams) handlers!.message(msg, from, 546);
      if (open.length) batches.push(open);
      open = undefined;
    };
    return { port, batches, deliver };
  }
  const key = (n: number) => `fe800000000000000000000000000${n.toString(16).padStart(3, '0')}`;

  it('answers Advertises within their batch, and sends the Replies one journal sync released together', async () => {
    let sync: (() => void) | undefined;
    const synced = new Promise<void>((r) => (sync = r));
    const core: Dhcp6CoreLike = {
      handle: async () => ({ kind: 'ignored' }),
      handleNow: (packet) => packet[0] === 1
        ? { kind: 'advertise', reply: Buffer.from([2, 0, 0, packet[3]!]) }
        : synced.then(() => ({ kind: 'reply' as const, reply: Buffer.from([7, 0, 0, packet[3]!]), changes: [packet[3]] })),
    };
    const { port, batches, deliver } = fakePort();
    const changes: unknown[] = [];
    const transport = new Dhcp6Transport({ socket: port, bridge: 'br0', core, logger: recordingLogger(), onChanges: (c) => changes.push(...c) });
    transport.start();
    deliver([[solicit(1), key(1)], [solicit(2), key(2)], [Buffer.from([3, 0, 0, 3]), key(3)], [Buffer.from([3, 0, 0, 4]), key(4)]]);
    expect(batches).toEqual([[{ to: key(1), first: 2 }, { to: key(2), first: 2 }]]); // the Advertises, in the receive batch
    expect(transport.stats().inFlight).toBe(2);
    sync!();
    await flush();
    expect(batches[1]).toEqual([{ to: key(3), first: 7 }, { to: key(4), first: 7 }]); // both Replies in one send batch
    expect(changes).toEqual([3, 4]);
    expect(transport.stats()).toMatchObject({ sent: { advertise: 2, reply: 2 }, inFlight: 0 });
  });

  it('drops sources that are not IPv6 client keys, and reads the MAC of an EUI-64 key once per source', async () => {
    const peers: { address: string; mac?: string }[] = [];
    const { port, deliver } = fakePort();
    const transport = new Dhcp6Transport({ socket: port, bridge: 'br0', logger: recordingLogger(), core: { handle: async (_p, peer) => (peers.push(peer), { kind: 'ignored' }) } });
    transport.start();
    const eui64 = 'fe80000000000000505400fffe123456';
    deliver([[solicit(1), 7], [solicit(2), 'zz'], [solicit(3), eui64], [solicit(4), eui64]]);
    await flush();
    expect(transport.stats().dropped).toEqual({ 'bad-source': 2 });
    expect(peers).toEqual([{ address: 'fe80::5054:ff:fe12:3456', mac: '52:54:00:12:34:56' }, { address: 'fe80::5054:ff:fe12:3456', mac: '52:54:00:12:34:56' }]);
    expect(macFromClientKey(eui64)).toBe('52:54:00:12:34:56');
    expect(macFromClientKey(key(1))).toBeUndefined();
  });
});
