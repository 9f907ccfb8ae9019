/**
 * Fuzz target for the DHCP core: sequences of arbitrary DhcpRequest objects (any field values, plus a bias towards
 * our own addresses and a few recurring clients so that states actually interact) fed to one core with a clock that
 * jumps forward. 100 runs × 1000 requests = 100,000 requests. After every request: no exception, every reply
 * encodes, and the lease table's invariants hold.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeDhcpPacket } from '../../src/dhcp/codec.js';
import { DhcpServerCore, type CoreConfig } from '../../src/dhcp/server-core.js';
import { DhcpMessageType, DhcpOption, type CoreResult, type DhcpRequest, type Reservation } from '../../src/dhcp/types.js';
import { makeSubnet, parseIpv4, subnetContains } from '../../src/net/ipv4.js';

const ip = (text: string): number => parseIpv4(text)!;
const T0 = 1_700_000_000_000;
const SERVER = ip('10.10.0.1');
const SUBNET = makeSubnet(SERVER, 24);
const MACS = Array.from({ length: 12 }, (_, i) => `52:54:00:00:00:${i.toString(16).padStart(2, '0')}`);
const RESERVATIONS: Reservation[] = [
  { mac: MACS[7]!, address: ip('10.10.0.105'), hostname: 'inside' },
  { mac: MACS[8]!, address: ip('10.10.0.20'), hostname: 'outside' },
];
const CONFIG: CoreConfig = {
  serverAddress: SERVER,
  subnet: SUBNET,
  router: SERVER,
  dnsServers: [SERVER, ip('10.10.0.2')],
  domain: 'vm.test',
  searchDomains: ['vm.test', 'example.org'],
  classlessRoutes: [{ network: ip('192.168.7.0'), prefix: 24, router: ip('10.10.0.3') }],
  // a small range so that exhaustion, collisions and reuse all happen
  rangeStart: ip('10.10.0.100'),
  rangeEnd: ip('10.10.0.109'),
  leaseTimeSeconds: 600,
  declineQuarantineSeconds: 300,
  offerHoldSeconds: 30,
};

const ourAddress = fc.constantFrom(
  0, SERVER, SUBNET.network, SUBNET.broadcast, ip('10.10.0.20'), ip('10.10.0.50'), ip('10.10.0.99'),
  ...Array.from({ length: 11 }, (_, i) => ip('10.10.0.100') + i), ip('192.168.1.5'), 0xffffffff,
);
const anyNumber = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.double(),
  fc.constantFrom(NaN, Infinity, -1, 0),
);
const address = fc.oneof({ weight: 4, arbitrary: ourAddress }, { weight: 1, arbitrary: anyNumber });

const requestArb: fc.Arbitrary<DhcpRequest> = fc.record(
  {
    type: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(1, 3, 3, 3, 4, 7, 8) },
      { weight: 1, arbitrary: fc.integer({ min: -3, max: 300 }) },
    ) as fc.Arbitrary<DhcpRequest['type']>,
    xid: anyNumber,
    flags: fc.oneof(fc.constantFrom(0, 0x8000), anyNumber),
    broadcast: fc.boolean(),
    ciaddr: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: address }),
    giaddr: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: address }),
    hops: anyNumber,
    htype: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: anyNumber }),
    mac: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...MACS) }, { weight: 1, arbitrary: fc.string() }),
    chaddr: fc.uint8Array({ maxLength: 20 }),
    clientId: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...MACS.map((m) => `01${m.replace(/:/g, '')}`), 'ff01', '') },
      { weight: 1, arbitrary: fc.string() },
    ),
    requestedAddress: address,
    serverId: fc.oneof({ weight: 3, arbitrary: fc.constant(SERVER) }, { weight: 1, arbitrary: address }),
    parameterRequestList: fc.array(fc.oneof(fc.constantFrom(1, 3, 6, 15, 28, 119, 121), fc.integer({ min: -5, max: 300 })), { maxLength: 40 }),
    maxMessageSize: fc.oneof(fc.constant(576), anyNumber),
    hostname: fc.string({ maxLength: 80 }),
    fqdnHostname: fc.string({ maxLength: 80 }),
    fqdnFlags: fc.oneof(fc.integer({ min: 0, max: 15 }), anyNumber),
    requestedLeaseSeconds: anyNumber,
    vendorClass: fc.string(),
  },
  { requiredKeys: ['type', 'xid', 'flags', 'broadcast', 'ciaddr', 'giaddr', 'hops', 'htype', 'mac', 'chaddr', 'clientId', 'parameterRequestList', 'maxMessageSize'] },
);

const step = fc.record({
  request: requestArb,
  /** ms the clock moves first: mostly small, sometimes past a lease, an offer hold or a quarantine */
  advance: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 5_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 700_000 }) }),
  receivedOn: fc.option(fc.constantFrom(SERVER, ip('10.10.0.3')), { nil: undefined }),
});

function checkInvariants(core: DhcpServerCore, now: number): void {
  const leases = core.leases.all();
  expect(leases.length).toBe(core.leases.size);
  expect(new Set(leases.map((l) => l.address)).size).toBe(leases.length);
  for (const lease of leases) {
    expect(core.leases.getByAddress(lease.address)?.clientId).toBe(lease.clientId);
    expect(core.leases.getByClient(lease.clientId)?.address).toBe(lease.address);
    expect(subnetContains(SUBNET, lease.address)).toBe(true);
    expect([SERVER, SUBNET.network, SUBNET.broadcast]).not.toContain(lease.address);
    expect(lease.expiresAt).toBeGreaterThan(now);
    expect(core.leases.isQuarantined(lease.address, now)).toBe(false);
    const reserved = RESERVATIONS.find((r) => r.address === lease.address);
    if (reserved) expect(lease.mac).toBe(reserved.mac);
  }
}

function checkReply(core: DhcpServerCore, request: DhcpRequest, result: CoreResult, now: number): void {
  expect(typeof result.outcome).toBe('string');
  const reply = result.reply;
  if (!reply) return;
  const bytes = encodeDhcpPacket(reply.packet, 576);
  expect(bytes.length).toBeLessThanOrEqual(548);
  const type = reply.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0];
  const yiaddr = reply.packet.yiaddr;
  if (type === DhcpMessageType.OFFER) {
    const holder = core.leases.getByAddress(yiaddr);
    if (holder) expect(holder.clientId).toBe(request.clientId);
    expect(core.leases.isQuarantined(yiaddr, now)).toBe(false);
    const reserved = RESERVATIONS.find((r) => r.address === yiaddr);
    if (reserved) expect(request.mac).toBe(reserved.mac);
  }
  if (type === DhcpMessageType.ACK && yiaddr !== 0) {
    expect(core.leases.getByClient(request.clientId)?.address).toBe(yiaddr);
  }
}

describe('DHCP core fuzz', () => {
  it('survives 100,000 arbitrary requests with its table consistent', () => {
    let handled = 0;
    fc.assert(
      fc.property(fc.array(step, { minLength: 1000, maxLength: 1000 }), (steps) => {
        const core = new DhcpServerCore(CONFIG, RESERVATIONS);
        let now = T0;
        for (const { request, advance, receivedOn } of steps) {
          now += advance;
          const result = core.handle(request, now, receivedOn === undefined ? {} : { receivedOnInterfaceAddress: receivedOn });
          handled++;
          checkReply(core, request, result, now);
          checkInvariants(core, now);
        }
        const stats = core.stats(now);
        expect(stats.free).toBeLessThanOrEqual(stats.rangeSize);
      }),
      { numRuns: 100 },
    );
    expect(handled).toBeGreaterThanOrEqual(100_000);
  }, 120_000);
});
