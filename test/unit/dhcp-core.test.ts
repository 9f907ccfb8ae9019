/**
 * The server core, systemd-networkd style: one known-good request per message type, one field changed at a time,
 * and the reply type (OFFER/ACK/NAK/none) and outcome asserted.
 */
import { describe, expect, it } from 'vitest';
import { decodeDhcpPacket, decodeFqdnOption, encodeDhcpPacket, FqdnFlags } from '../../src/dhcp/codec.js';
import { DhcpServerCore, type CoreConfig } from '../../src/dhcp/server-core.js';
import {
  BOOTREPLY,
  DhcpMessageType,
  DhcpOption,
  type CoreResult,
  type DhcpRequest,
  type ProbeVerdict,
  type Reservation,
} from '../../src/dhcp/types.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const T0 = 1_700_000_000_000;
const SERVER = ip('10.10.0.1');
const OTHER_SERVER = ip('10.10.0.2');

function config(overrides: Partial<CoreConfig> = {}): CoreConfig {
  return {
    serverAddress: SERVER,
    subnet: makeSubnet(SERVER, 24),
    router: SERVER,
    dnsServers: [SERVER],
    domain: 'vm.test',
    leaseTimeSeconds: 3600,
    rangeStart: ip('10.10.0.100'),
    rangeEnd: ip('10.10.0.199'),
    ...overrides,
  };
}

function newCore(overrides: Partial<CoreConfig> = {}, reservations: Reservation[] = []): DhcpServerCore {
  return new DhcpServerCore(config(overrides), reservations);
}

function macOf(n: number): string {
  return `52:54:00:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
}

/** A known-good request from client n; tests change one field at a time. */
function request(n: number, overrides: Partial<DhcpRequest> = {}): DhcpRequest {
  const mac = overrides.mac ?? macOf(n);
  const chaddr = new Uint8Array(16);
  mac.split(':').forEach((b, i) => (chaddr[i] = parseInt(b, 16)));
  return {
    type: DhcpMessageType.DISCOVER,
    xid: 0x12345678 + n,
    flags: 0,
    broadcast: false,
    ciaddr: 0,
    giaddr: 0,
    hops: 0,
    htype: 1,
    mac,
    chaddr,
    clientId: `01${mac.replace(/:/g, '')}`,
    parameterRequestList: [1, 3, 6, 15, 28, 51, 54],
    maxMessageSize: 576,
    ...overrides,
  };
}

const TYPE_NAMES: Record<number, string> = { 2: 'OFFER', 5: 'ACK', 6: 'NAK' };

function replyType(result: CoreResult): string {
  const type = result.reply?.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0];
  return type === undefined ? 'none' : (TYPE_NAMES[type] ?? `type ${type}`);
}

function u32(value: Uint8Array | undefined): number | undefined {
  return value && value.length === 4 ? ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) | value[3]!) >>> 0 : undefined;
}

/** DISCOVER then REQUEST (SELECTING): the address the client ends up with. */
function obtain(core: DhcpServerCore, n: number, now = T0, extra: Partial<DhcpRequest> = {}): number {
  const offer = core.handle(request(n, extra), now);
  expect(replyType(offer)).toBe('OFFER');
  const address = offer.reply!.packet.yiaddr;
  const ack = core.handle(
    request(n, { ...extra, type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: address }),
    now,
  );
  expect(replyType(ack)).toBe('ACK');
  return address;
}

/** A DECLINE handed back to the core with the verdict of the probe it asked for ('in-use' confirms it). */
const probed = (core: DhcpServerCore, req: DhcpRequest, now: number, verdict: ProbeVerdict): CoreResult =>
  core.probeDone(req, req.requestedAddress!, verdict, now);
const decline = (n: number, address: number, extra: Partial<DhcpRequest> = {}): DhcpRequest =>
  request(n, { type: DhcpMessageType.DECLINE, requestedAddress: address, serverId: SERVER, ...extra });

const renew = (n: number, address: number, extra: Partial<DhcpRequest> = {}): DhcpRequest =>
  request(n, { type: DhcpMessageType.REQUEST, ciaddr: address, ...extra });
const initReboot = (n: number, address: number, extra: Partial<DhcpRequest> = {}): DhcpRequest =>
  request(n, { type: DhcpMessageType.REQUEST, requestedAddress: address, ...extra });

describe('DISCOVER', () => {
  it('offers an address of the range with the mandatory options and persists nothing', () => {
    const core = newCore();
    const result = core.handle(request(1), T0);
    expect(replyType(result)).toBe('OFFER');
    expect(result.outcome).toBe('offer');
    expect(result.changes).toEqual([]);
    const p = result.reply!.packet;
    expect(p.yiaddr).toBeGreaterThanOrEqual(ip('10.10.0.100'));
    expect(p.yiaddr).toBeLessThanOrEqual(ip('10.10.0.199'));
    expect(p.op).toBe(BOOTREPLY);
    expect(p.xid).toBe(request(1).xid);
    expect(p.ciaddr).toBe(0);
    expect(p.hlen).toBe(6);
    expect(p.chaddr).toEqual(request(1).chaddr);
    expect(u32(p.options.get(DhcpOption.SERVER_ID))).toBe(SERVER);
    expect(u32(p.options.get(DhcpOption.LEASE_TIME))).toBe(3600);
    expect(u32(p.options.get(DhcpOption.RENEWAL_TIME))).toBe(1800);
    expect(u32(p.options.get(DhcpOption.REBINDING_TIME))).toBe(3150);
    expect(u32(p.options.get(DhcpOption.SUBNET_MASK))).toBe(ip('255.255.255.0'));
    expect(u32(p.options.get(DhcpOption.ROUTER))).toBe(SERVER);
    expect(u32(p.options.get(DhcpOption.DNS_SERVERS))).toBe(SERVER);
    expect(u32(p.options.get(DhcpOption.BROADCAST_ADDRESS))).toBe(ip('10.10.0.255'));
    expect(Buffer.from(p.options.get(DhcpOption.DOMAIN_NAME)!).toString()).toBe('vm.test');
    expect(core.leases.size).toBe(0);
  });

  it('holds the offered address while others are free: another client gets a different one', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.101'), offerHoldSeconds: 10 });
    const first = core.handle(request(1), T0).reply!.packet.yiaddr;
    const second = core.handle(request(2), T0 + 5_000).reply!.packet.yiaddr;
    expect(second).not.toBe(first);
    expect(core.stats(T0 + 5_000).offersReclaimed).toBe(0);
  });

  it('offers the same address again to the same client', () => {
    const core = newCore();
    const a = core.handle(request(1), T0).reply!.packet.yiaddr;
    expect(core.handle(request(1), T0 + 1000).reply!.packet.yiaddr).toBe(a);
  });

  it('honours a requested address when it is free', () => {
    const core = newCore();
    const result = core.handle(request(1, { requestedAddress: ip('10.10.0.150') }), T0);
    expect(result.reply!.packet.yiaddr).toBe(ip('10.10.0.150'));
    const outside = core.handle(request(2, { requestedAddress: ip('10.10.0.20') }), T0);
    expect(outside.reply!.packet.yiaddr).not.toBe(ip('10.10.0.20'));
  });

  it('keeps a client on its address across state loss (stable hash)', () => {
    const addresses = [1, 2, 3, 4, 5].map((n) => obtain(newCore(), n));
    const fresh = newCore();
    for (const [i, n] of [5, 3, 1, 4, 2].entries()) {
      expect(fresh.handle(request(n), T0 + i).reply!.packet.yiaddr).toBe(addresses[n - 1]);
    }
  });

  it('gives no reply to a message type only servers send', () => {
    const result = newCore().handle(request(1, { type: 2 as never }), T0);
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('ignore:unexpected-type');
  });
});

describe('REQUEST in SELECTING (server id present)', () => {
  it('ACKs our offer and reports the binding to persist', () => {
    const core = newCore();
    const offered = core.handle(request(1, { hostname: 'web' }), T0).reply!.packet.yiaddr;
    const result = core.handle(request(1, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: offered, hostname: 'web' }), T0);
    expect(replyType(result)).toBe('ACK');
    expect(result.outcome).toBe('ack');
    expect(result.reply!.packet.yiaddr).toBe(offered);
    expect(result.changes).toEqual([
      { kind: 'bind', lease: { clientId: request(1).clientId, mac: macOf(1), address: offered, hostname: 'web', expiresAt: T0 + 3_600_000 } },
    ]);
    expect(core.leases.getByAddress(offered)?.clientId).toBe(request(1).clientId);
  });

  it('leaves a name the name policy refuses off the lease, the change and the reply (the policy is told which step binds)', () => {
    const asked: Array<[string, boolean]> = [];
    const core = new DhcpServerCore(config(), [], {
      nameAllowed: (name, claimant, binding) => {
        asked.push([name, binding]);
        return claimant.mac !== macOf(2);
      },
    });
    obtain(core, 1, T0, { hostname: 'db' });
    const address = obtain(core, 2, T0, { hostname: 'db' });
    expect(asked).toEqual([['db', false], ['db', true], ['db', false], ['db', true]]);
    expect(core.leases.getByClient(request(1).clientId)?.hostname).toBe('db');
    expect(core.leases.getByClient(request(2).clientId)?.hostname).toBeUndefined();
    const renew = core.handle(request(2, { type: DhcpMessageType.REQUEST, ciaddr: address, hostname: 'db' }), T0 + 1000);
    expect(replyType(renew)).toBe('ACK');
    expect(renew.changes[0]).toMatchObject({ kind: 'bind', lease: { address } });
    expect((renew.changes[0] as { lease: { hostname?: string } }).lease.hostname).toBeUndefined();
    expect(renew.reply!.packet.options.get(DhcpOption.HOSTNAME)).toBeUndefined();
  });

  it('forgets our offer silently when the client chose another server', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.100') });
    const offered = core.handle(request(1), T0).reply!.packet.yiaddr;
    const result = core.handle(request(1, { type: DhcpMessageType.REQUEST, serverId: OTHER_SERVER, requestedAddress: ip('10.10.9.9') }), T0);
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('ignore:other-server');
    expect(result.changes).toEqual([]);
    // the held address is free again at once
    expect(core.handle(request(2), T0).reply?.packet.yiaddr).toBe(offered);
  });

  it('accepts the interface address as our server id too', () => {
    const core = newCore();
    const offered = core.handle(request(1), T0, { receivedOnInterfaceAddress: ip('10.10.0.3') });
    expect(u32(offered.reply!.packet.options.get(DhcpOption.SERVER_ID))).toBe(ip('10.10.0.3'));
    const ack = core.handle(
      request(1, { type: DhcpMessageType.REQUEST, serverId: ip('10.10.0.3'), requestedAddress: offered.reply!.packet.yiaddr }),
      T0,
      { receivedOnInterfaceAddress: ip('10.10.0.3') },
    );
    expect(replyType(ack)).toBe('ACK');
  });

  it('NAKs an address leased to another client', () => {
    const core = newCore();
    const taken = obtain(core, 1);
    const result = core.handle(request(2, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: taken }), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.outcome).toBe('nak:unavailable');
    expect(core.leases.getByAddress(taken)?.clientId).toBe(request(1).clientId);
  });

  it('NAKs an address outside our subnet', () => {
    const result = newCore().handle(request(1, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: ip('192.168.1.5') }), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.outcome).toBe('nak:wrong-subnet');
  });

  it('ignores a SELECTING request without a requested address', () => {
    const result = newCore().handle(request(1, { type: DhcpMessageType.REQUEST, serverId: SERVER }), T0);
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('ignore:malformed-request');
  });

  it('ignores a REQUEST with neither server id, ciaddr nor requested address', () => {
    expect(replyType(newCore().handle(request(1, { type: DhcpMessageType.REQUEST }), T0))).toBe('none');
  });
});

describe('REQUEST in INIT-REBOOT (requested address, no server id, ciaddr 0)', () => {
  it('ACKs the client own lease', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(initReboot(1, address), T0 + 60_000);
    expect(replyType(result)).toBe('ACK');
    expect(result.changes).toHaveLength(1);
  });

  it('NAKs an address on the wrong subnet', () => {
    const result = newCore().handle(initReboot(1, ip('192.168.1.5')), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.outcome).toBe('nak:wrong-subnet');
  });

  it('NAKs an address bound to another client', () => {
    const core = newCore();
    const taken = obtain(core, 1);
    const result = core.handle(initReboot(2, taken), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.outcome).toBe('nak:unavailable');
  });

  it('ACKs a free address of our range without a record (the lease store was lost), and records it', () => {
    const core = newCore();
    const result = core.handle(initReboot(1, ip('10.10.0.150')), T0);
    expect(replyType(result)).toBe('ACK');
    expect(result.changes.map((c) => c.kind)).toEqual(['bind']);
    expect(core.leases.getByClient(request(1).clientId)?.address).toBe(ip('10.10.0.150'));
  });

  it('NAKs an address in the subnet that the server would never hand out', () => {
    for (const address of ['10.10.0.20', '10.10.0.1', '10.10.0.255', '10.10.0.0']) {
      expect(replyType(newCore().handle(initReboot(1, ip(address)), T0))).toBe('NAK');
    }
  });

  it('NAKs an address other than the one our record binds the client to', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(initReboot(1, address === ip('10.10.0.150') ? ip('10.10.0.151') : ip('10.10.0.150')), T0);
    expect(result.outcome).toBe('nak:wrong-address');
  });
});

describe('REQUEST in RENEWING / REBINDING (ciaddr set)', () => {
  it('ACKs our lease, extends it, unicasts to ciaddr and echoes ciaddr', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(renew(1, address), T0 + 1_800_000);
    expect(replyType(result)).toBe('ACK');
    expect(result.reply!.packet.ciaddr).toBe(address);
    expect(result.reply!.destination).toEqual({ kind: 'unicast', address, port: 68 });
    expect(core.leases.getByClient(request(1).clientId)?.expiresAt).toBe(T0 + 1_800_000 + 3_600_000);
    // rebinding (broadcast flag) is handled the same way; the reply still goes to ciaddr
    expect(replyType(core.handle(renew(1, address, { broadcast: true, flags: 0x8000 }), T0 + 3_000_000))).toBe('ACK');
  });

  it('heals an unknown lease whose address is free in our range', () => {
    const result = newCore().handle(renew(1, ip('10.10.0.160')), T0);
    expect(replyType(result)).toBe('ACK');
    expect(result.changes[0]).toMatchObject({ kind: 'bind', lease: { address: ip('10.10.0.160') } });
  });

  it('NAKs an address outside our subnet, broadcast', () => {
    const result = newCore().handle(renew(1, ip('192.168.1.5')), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.reply!.destination).toEqual({ kind: 'broadcast', port: 68 });
  });

  it('NAKs an address leased to someone else', () => {
    const core = newCore();
    const taken = obtain(core, 1);
    expect(core.handle(renew(2, taken), T0).outcome).toBe('nak:unavailable');
  });

  it('stays silent for an unknown address in our subnet outside the range (cannot be sure)', () => {
    const result = newCore().handle(renew(1, ip('10.10.0.20')), T0);
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('ignore:unknown-lease');
  });

  it('honours a shorter requested lease time, never a longer one, and never below a minute', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const lease = (asked: number): number | undefined =>
      u32(core.handle(renew(1, address, { requestedLeaseSeconds: asked }), T0).reply!.packet.options.get(DhcpOption.LEASE_TIME));
    expect(lease(600)).toBe(600);
    expect(lease(86_400)).toBe(3600);
    expect(lease(5)).toBe(60);
  });

  it('still renews existing clients when the pool is exhausted', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.102') });
    const addresses = [1, 2, 3].map((n) => obtain(core, n));
    for (let i = 0; i < 1000; i++) {
      const result = core.handle(request(100 + i), T0 + i);
      expect(result.outcome).toBe('ignore:pool-exhausted');
      expect(result.reply).toBeUndefined();
    }
    expect(core.stats(T0 + 1000).free).toBe(0);
    for (const [i, address] of addresses.entries()) expect(replyType(core.handle(renew(i + 1, address), T0 + 2000))).toBe('ACK');
  });
});

describe('DECLINE', () => {
  it('quarantines the address, drops the lease, and never offers it meanwhile', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.103'), declineQuarantineSeconds: 600 });
    const address = obtain(core, 1);
    const result = probed(core, request(1, { type: DhcpMessageType.DECLINE, requestedAddress: address, serverId: SERVER }), T0 + 1000, 'in-use');
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('decline');
    expect(result.changes).toEqual([
      { kind: 'release', clientId: request(1).clientId, address },
      { kind: 'decline', address, until: T0 + 1000 + 600_000 },
    ]);
    expect(core.leases.getByClient(request(1).clientId)).toBeUndefined();
    // every other address gets taken, the declined one is offered to nobody, not even its decliner
    const offered = new Set<number>();
    for (let n = 1; n <= 10; n++) {
      const r = core.handle(request(n), T0 + 2000);
      if (r.reply) offered.add(r.reply.packet.yiaddr);
    }
    expect(offered.size).toBe(3);
    expect(offered.has(address)).toBe(false);
    expect(core.stats(T0 + 2000).quarantined).toBe(1);
    // after the quarantine the address is offered again
    expect(core.handle(request(1), T0 + 1000 + 600_000).reply?.packet.yiaddr).toBe(address);
  });

  it('ignores a decline of an address the client does not hold', () => {
    const core = newCore();
    const taken = obtain(core, 1);
    const result = core.handle(request(2, { type: DhcpMessageType.DECLINE, requestedAddress: taken }), T0);
    expect(result.outcome).toBe('ignore:decline-unknown');
    expect(result.changes).toEqual([]);
    expect(core.leases.getByAddress(taken)).toBeDefined();
  });

  it('ignores a decline addressed to another server', () => {
    const core = newCore();
    const address = obtain(core, 1);
    expect(core.handle(request(1, { type: DhcpMessageType.DECLINE, requestedAddress: address, serverId: OTHER_SERVER }), T0).outcome).toBe(
      'ignore:other-server',
    );
  });
});

describe('RELEASE', () => {
  it('frees the address, reports it, and the client gets it back later', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(request(1, { type: DhcpMessageType.RELEASE, ciaddr: address, serverId: SERVER }), T0 + 10);
    expect(replyType(result)).toBe('none');
    expect(result.outcome).toBe('release');
    expect(result.changes).toEqual([{ kind: 'release', clientId: request(1).clientId, address }]);
    expect(core.leases.size).toBe(0);
    expect(core.handle(request(1), T0 + 20).reply!.packet.yiaddr).toBe(address);
  });

  it('ignores a release of an address the client does not hold', () => {
    const core = newCore();
    const address = obtain(core, 1);
    expect(core.handle(request(2, { type: DhcpMessageType.RELEASE, ciaddr: address }), T0).outcome).toBe('ignore:release-unknown');
    expect(core.leases.size).toBe(1);
  });
});

describe('INFORM', () => {
  it('ACKs with options, no yiaddr and no lease time, unicast to ciaddr', () => {
    const result = newCore().handle(request(1, { type: DhcpMessageType.INFORM, ciaddr: ip('10.10.0.20') }), T0);
    expect(replyType(result)).toBe('ACK');
    expect(result.outcome).toBe('inform');
    const p = result.reply!.packet;
    expect(p.yiaddr).toBe(0);
    expect(p.ciaddr).toBe(ip('10.10.0.20'));
    expect(p.options.has(DhcpOption.LEASE_TIME)).toBe(false);
    expect(p.options.has(DhcpOption.RENEWAL_TIME)).toBe(false);
    expect(p.options.has(DhcpOption.DNS_SERVERS)).toBe(true);
    expect(result.reply!.destination).toEqual({ kind: 'unicast', address: ip('10.10.0.20'), port: 68 });
    expect(result.changes).toEqual([]);
  });

  it('ignores an INFORM without ciaddr or from another subnet', () => {
    expect(replyType(newCore().handle(request(1, { type: DhcpMessageType.INFORM }), T0))).toBe('none');
    expect(replyType(newCore().handle(request(1, { type: DhcpMessageType.INFORM, ciaddr: ip('10.99.0.2') }), T0))).toBe('none');
  });
});

describe('reservations', () => {
  const reservedMac = macOf(7);

  it('gives a reserved address inside the range to its MAC only, with the reservation name', () => {
    const core = newCore({}, [{ mac: reservedMac, address: ip('10.10.0.150'), hostname: 'db' }]);
    expect(obtain(core, 7, T0, { hostname: 'client-says' })).toBe(ip('10.10.0.150'));
    expect(core.leases.getByAddress(ip('10.10.0.150'))?.hostname).toBe('db');
    // another MAC asking for it explicitly gets something else, or a NAK
    const other = core.handle(request(1, { requestedAddress: ip('10.10.0.150') }), T0);
    expect(other.reply!.packet.yiaddr).not.toBe(ip('10.10.0.150'));
    expect(replyType(core.handle(initReboot(1, ip('10.10.0.150')), T0))).toBe('NAK');
  });

  it('gives a reservation outside the dynamic range but inside the subnet', () => {
    const core = newCore({}, [{ mac: reservedMac, address: ip('10.10.0.5') }]);
    expect(obtain(core, 7)).toBe(ip('10.10.0.5'));
    expect(replyType(core.handle(renew(7, ip('10.10.0.5')), T0 + 1000))).toBe('ACK');
  });

  it('never offers a reserved address to another MAC, even when the pool is otherwise full', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.103') }, [{ mac: reservedMac, address: ip('10.10.0.101') }]);
    const offered: number[] = [];
    for (let n = 10; n < 20; n++) {
      const r = core.handle(request(n), T0);
      if (r.reply) offered.push(r.reply.packet.yiaddr);
    }
    // offers to the clients beyond the third are taken back from the earlier ones: still only three addresses
    expect(new Set(offered).size).toBe(3);
    expect(offered).not.toContain(ip('10.10.0.101'));
    expect(core.handle(request(7), T0).reply?.packet.yiaddr).toBe(ip('10.10.0.101'));
  });

  it('a reservation added at runtime moves both clients at their next renewal', () => {
    const core = newCore();
    const squatter = obtain(core, 1);
    const owner = obtain(core, 7);
    core.setReservations([{ mac: reservedMac, address: squatter }]);
    // while its reserved address is busy the owner keeps its dynamic lease
    expect(replyType(core.handle(renew(7, owner), T0 + 1000))).toBe('ACK');
    // the squatter may not renew an address now reserved for another MAC; its lease ends with the NAK
    const nak = core.handle(renew(1, squatter), T0 + 1000);
    expect(nak.outcome).toBe('nak:unavailable');
    expect(nak.changes).toEqual([{ kind: 'release', clientId: request(1).clientId, address: squatter }]);
    expect(obtain(core, 1, T0 + 1000)).not.toBe(squatter);
    // now the owner is sent to its reservation
    expect(core.handle(renew(7, owner), T0 + 2000).outcome).toBe('nak:reserved-elsewhere');
    expect(obtain(core, 7, T0 + 2000)).toBe(squatter);
  });

  it('a client with a free reservation elsewhere is NAKed so it moves to it', () => {
    const core = newCore();
    const dynamic = obtain(core, 7);
    core.setReservations([{ mac: reservedMac, address: ip('10.10.0.5') }]);
    expect(core.handle(renew(7, dynamic), T0 + 1000).outcome).toBe('nak:reserved-elsewhere');
    expect(obtain(core, 7, T0 + 2000)).toBe(ip('10.10.0.5'));
  });

  it('the reservation takes over a lease its own MAC holds under another client id', () => {
    const core = newCore({}, [{ mac: reservedMac, address: ip('10.10.0.5') }]);
    obtain(core, 7);
    const newId = { clientId: 'ff00112233' };
    const offer = core.handle(request(7, newId), T0 + 10);
    expect(offer.reply!.packet.yiaddr).toBe(ip('10.10.0.5'));
    const ack = core.handle(request(7, { ...newId, type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: ip('10.10.0.5') }), T0 + 10);
    expect(replyType(ack)).toBe('ACK');
    expect(ack.changes.map((c) => c.kind)).toEqual(['release', 'bind']);
    expect(core.leases.getByAddress(ip('10.10.0.5'))?.clientId).toBe('ff00112233');
    expect(core.leases.size).toBe(1);
  });

  it('a decline of the reservation offered under a new client id ends the old lease on it too', () => {
    // found by the core fuzz: the old lease stayed on the quarantined address
    const core = newCore({ declineQuarantineSeconds: 600 }, [{ mac: reservedMac, address: ip('10.10.0.5') }]);
    const oldId = request(7).clientId;
    obtain(core, 7);
    const newId = { clientId: 'ff00112233' };
    expect(core.handle(request(7, newId), T0 + 10).reply!.packet.yiaddr).toBe(ip('10.10.0.5'));
    const decline = probed(core, request(7, { ...newId, type: DhcpMessageType.DECLINE, requestedAddress: ip('10.10.0.5'), serverId: SERVER }), T0 + 20, 'in-use');
    expect(decline.outcome).toBe('decline');
    expect(decline.changes).toEqual([
      { kind: 'release', clientId: oldId, address: ip('10.10.0.5') },
      { kind: 'decline', address: ip('10.10.0.5'), until: T0 + 20 + 600_000 },
    ]);
    expect(core.leases.size).toBe(0);
    // the old client id renewing the address is told no while the quarantine lasts
    expect(replyType(core.handle(renew(7, ip('10.10.0.5')), T0 + 30))).toBe('NAK');
  });
});

describe('expiry and restore', () => {
  it('reports expired leases as releases with the next request, and the client gets its address back', () => {
    const core = newCore({ leaseTimeSeconds: 600 });
    const address = obtain(core, 1);
    const later = core.handle(request(2), T0 + 600_000);
    expect(later.changes).toEqual([{ kind: 'release', clientId: request(1).clientId, address }]);
    expect(later.reply!.packet.yiaddr).not.toBe(address);
    expect(core.handle(request(1), T0 + 600_001).reply!.packet.yiaddr).toBe(address);
  });

  it('expire() reports each ended lease once, as a release; offers and quarantines end with it, silently', () => {
    const core = newCore({ leaseTimeSeconds: 600, declineQuarantineSeconds: 900, offerHoldSeconds: 30 });
    const first = obtain(core, 1);
    const second = obtain(core, 2, T0 + 1000);
    const declined = obtain(core, 3);
    probed(core, request(3, { type: DhcpMessageType.DECLINE, requestedAddress: declined, serverId: SERVER }), T0, 'in-use');
    core.handle(request(4), T0 + 580_000); // an offer held until T0 + 610 s
    expect(core.expire(T0 + 599_999)).toEqual([]);
    expect(core.expire(T0 + 600_000)).toEqual([{ kind: 'release', clientId: request(1).clientId, address: first }]);
    expect(core.expire(T0 + 600_000)).toEqual([]);
    expect(core.expire(T0 + 601_000)).toEqual([{ kind: 'release', clientId: request(2).clientId, address: second }]);
    expect(core.leases.size).toBe(0);
    // the next request reports nothing already reported
    expect(core.handle(request(5), T0 + 601_000).changes).toEqual([]);
    expect(core.stats(T0 + 601_000)).toMatchObject({ leases: 0, quarantined: 1, offers: 2 });
    expect(core.expire(T0 + 900_000)).toEqual([]); // the offers and the quarantine end, and are no lease change
    expect(core.stats(T0 + 900_000)).toMatchObject({ leases: 0, quarantined: 0, offers: 0, free: 100 });
  });

  it('stats() is read-only: it counts as of `now`, and removes nothing for expire() or handle() to miss', () => {
    const core = newCore({ leaseTimeSeconds: 600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.103') });
    const address = obtain(core, 1);
    obtain(core, 2, T0 + 60_000);
    core.handle(request(3), T0 + 590_000); // an offer
    const later = T0 + 610_000;
    const first = core.stats(later);
    expect(first).toMatchObject({ leases: 1, offers: 1, free: 2 }); // client 1's lease ended: counted free, not swept
    expect(core.stats(later)).toEqual(first);
    expect(core.stats()).toMatchObject({ leases: 2, offers: 1, free: 1 }); // as of the latest request, still intact
    expect(core.leases.size).toBe(2);
    expect(core.leases.getByClient(request(1).clientId)?.address).toBe(address);
    expect(core.expire(later)).toEqual([{ kind: 'release', clientId: request(1).clientId, address }]);
    expect(core.stats(later)).toEqual(first);
  });

  it('restores unexpired leases and quarantines, dropping expired and foreign ones', () => {
    const core = newCore();
    core.restore(
      [
        { clientId: 'aa', mac: macOf(1), address: ip('10.10.0.120'), expiresAt: T0 + 1000 },
        { clientId: 'bb', mac: macOf(2), address: ip('10.10.0.121'), expiresAt: T0 - 1 },
        { clientId: 'cc', mac: macOf(3), address: ip('10.99.0.5'), expiresAt: T0 + 1000 },
      ],
      T0,
      [{ address: ip('10.10.0.122'), until: T0 + 1000 }],
    );
    expect(core.leases.all().map((l) => l.clientId)).toEqual(['aa']);
    expect(core.leases.isQuarantined(ip('10.10.0.122'), T0)).toBe(true);
    expect(replyType(core.handle(renew(1, ip('10.10.0.120'), { clientId: 'aa' }), T0))).toBe('ACK');
  });
});

describe('reply options', () => {
  it('sends requested options in the client order after the mandatory ones, and only those', () => {
    const core = newCore({ searchDomains: ['vm.test', 'corp.test'] });
    const p = core.handle(request(1, { parameterRequestList: [119, 6] }), T0).reply!.packet;
    expect([...p.options.keys()]).toEqual([53, 54, 51, 58, 59, 1, 3, 119, 6]);
    // without a PRL, everything configured
    const all = core.handle(request(2, { parameterRequestList: [] }), T0).reply!.packet;
    expect([...all.options.keys()]).toEqual([53, 54, 51, 58, 59, 1, 3, 6, 15, 28, 119]);
  });

  it('includes the default route in option 121 (clients given 121 ignore option 3)', () => {
    const core = newCore({ classlessRoutes: [{ network: ip('192.168.50.0'), prefix: 24, router: ip('10.10.0.9') }] });
    const value = core.handle(request(1, { parameterRequestList: [121, 3] }), T0).reply!.packet.options.get(121)!;
    expect([...value]).toEqual([24, 192, 168, 50, 10, 10, 0, 9, 0, 10, 10, 0, 1]);
  });

  it('echoes option 81: the server updates DNS unless the client said N', () => {
    const core = newCore();
    const reply = (flags: number) =>
      decodeFqdnOption(core.handle(request(1, { fqdnFlags: flags, fqdnHostname: 'box' }), T0).reply!.packet.options.get(81)!)!;
    expect(reply(0)).toEqual({ flags: FqdnFlags.S | FqdnFlags.O, rcode1: 255, rcode2: 255, name: 'box.vm.test' });
    expect(reply(FqdnFlags.S | FqdnFlags.E)).toEqual({ flags: FqdnFlags.S | FqdnFlags.E, rcode1: 255, rcode2: 255, name: 'box.vm.test' });
    expect(reply(FqdnFlags.N).flags).toBe(FqdnFlags.N);
    expect(core.handle(request(2), T0).reply!.packet.options.has(81)).toBe(false);
  });

  it('stores the option 81 name in preference to option 12', () => {
    const core = newCore();
    obtain(core, 1, T0, { hostname: 'plain', fqdnHostname: 'fqdn', fqdnFlags: 0 });
    expect(core.leases.getByClient(request(1).clientId)?.hostname).toBe('fqdn');
  });

  it('NAK carries only message type, server id and a message, with no addresses', () => {
    const result = newCore().handle(renew(1, ip('192.168.1.5')), T0);
    const p = result.reply!.packet;
    expect([...p.options.keys()]).toEqual([53, 54, 56]);
    expect(p.yiaddr).toBe(0);
    expect(p.ciaddr).toBe(0);
  });

  it('every reply encodes and decodes within the client limit', () => {
    const core = newCore({ searchDomains: ['a.example', 'b.example'], classlessRoutes: [{ network: ip('172.16.0.0'), prefix: 12, router: SERVER }] });
    const result = core.handle(request(1, { parameterRequestList: [1, 3, 6, 15, 28, 119, 121], fqdnFlags: 4, fqdnHostname: 'x' }), T0);
    const bytes = encodeDhcpPacket(result.reply!.packet, 576);
    expect(bytes.length).toBeLessThanOrEqual(576 - 28);
    expect(decodeDhcpPacket(bytes).yiaddr).toBe(result.reply!.packet.yiaddr);
  });
});

describe('reply destination (RFC 2131 §4.1)', () => {
  it('unicasts to a configured client at its ciaddr, keeping the flags', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(renew(1, address, { flags: 0x8000, broadcast: true }), T0 + 10);
    expect(result.reply!.destination).toEqual({ kind: 'unicast', address, port: 68 });
    expect(result.reply!.packet.flags).toBe(0x8000);
    expect(result.reply!.packet.giaddr).toBe(0);
  });

  it('never unicasts to a ciaddr outside the subnet: RENEW/REBIND get a broadcast NAK (§4.1: NAKs are broadcast)', () => {
    const result = newCore().handle(renew(1, ip('192.0.2.7')), T0);
    expect(replyType(result)).toBe('NAK');
    expect(result.outcome).toBe('nak:wrong-subnet');
    expect(result.reply!.destination).toEqual({ kind: 'broadcast', port: 68 });
  });

  it('never unicasts to a ciaddr outside the subnet: a DISCOVER carrying one is answered as if ciaddr were 0', () => {
    const unicast = newCore().handle(request(1, { ciaddr: ip('192.0.2.7') }), T0);
    expect(unicast.reply!.destination).toEqual({ kind: 'unicast-new', address: unicast.reply!.packet.yiaddr, mac: macOf(1), port: 68 });
    const broadcast = newCore().handle(request(1, { ciaddr: ip('10.10.0.255'), flags: 0x8000, broadcast: true }), T0);
    expect(broadcast.reply!.destination).toEqual({ kind: 'broadcast', port: 68 });
  });

  it('broadcasts when the client asks to, else unicasts to the new address with the MAC', () => {
    const b = newCore().handle(request(1, { flags: 0x8000, broadcast: true }), T0);
    expect(b.reply!.destination).toEqual({ kind: 'broadcast', port: 68 });
    const u = newCore().handle(request(1), T0);
    expect(u.reply!.destination).toEqual({ kind: 'unicast-new', address: u.reply!.packet.yiaddr, mac: macOf(1), port: 68 });
  });

  it('broadcasts to hardware it cannot address by MAC', () => {
    const result = newCore().handle(request(1, { htype: 32, mac: '' }), T0);
    expect(result.reply!.destination).toEqual({ kind: 'broadcast', port: 68 });
  });
});

describe('relay agents (RFC 2131 §4.1 giaddr): natd is bound to its bridge and is not a relay-aware server', () => {
  it.each([
    ['DISCOVER', {}],
    ['REQUEST (selecting)', { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: ip('10.10.0.150') }],
    ['REQUEST (init-reboot)', { type: DhcpMessageType.REQUEST, requestedAddress: ip('10.10.0.150') }],
    ['REQUEST (renewing)', { type: DhcpMessageType.REQUEST, ciaddr: ip('192.168.1.5') }],
    ['INFORM', { type: DhcpMessageType.INFORM, ciaddr: ip('10.10.0.20') }],
    ['DECLINE', { type: DhcpMessageType.DECLINE, requestedAddress: ip('10.10.0.150') }],
    ['RELEASE', { type: DhcpMessageType.RELEASE, ciaddr: ip('10.10.0.150') }],
  ] as Array<[string, Partial<DhcpRequest>]>)('ignores a relayed %s: no reply, nothing changed', (_name, fields) => {
    const core = newCore();
    const result = core.handle(request(1, { ...fields, giaddr: ip('10.10.0.254') }), T0);
    expect(result.outcome).toBe('ignore:relayed');
    expect(result.reply).toBeUndefined();
    expect(result.changes).toEqual([]);
    expect(core.stats(T0).offers).toBe(0);
  });

  it('ignores a relayed request even from a client that holds a lease, which keeps it', () => {
    const core = newCore();
    const address = obtain(core, 1);
    expect(core.handle(renew(1, address, { giaddr: ip('192.0.2.8') }), T0 + 10).outcome).toBe('ignore:relayed');
    expect(core.leases.getByClient(request(1).clientId)?.address).toBe(address);
  });
});

describe('DISCOVER flood (RFC 2131 §4.3.1 offers; soft like Kea\'s): offers cannot starve real clients', () => {
  const small = { rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.103') };

  it('takes back the oldest un-REQUESTed offer for a new client when the range is full', () => {
    const core = newCore(small);
    const flood = [1, 2, 3, 4].map((n, i) => core.handle(request(n), T0 + i).reply!.packet.yiaddr);
    const fresh = core.handle(request(50), T0 + 10);
    expect(replyType(fresh)).toBe('OFFER');
    expect(fresh.reply!.packet.yiaddr).toBe(flood[0]);
    expect(core.stats(T0 + 10).offersReclaimed).toBe(1);
    // the next one takes the second oldest, not the fresh client's
    expect(core.handle(request(51), T0 + 11).reply!.packet.yiaddr).toBe(flood[1]);
  });

  it('a client whose offer was taken back still gets the address by REQUESTing it first', () => {
    const core = newCore(small);
    for (const n of [1, 2, 3, 4]) core.handle(request(n), T0);
    const offered = core.handle(request(50), T0 + 1).reply!.packet.yiaddr;
    // the flood goes on and takes every offer back, the fresh client's too
    for (let n = 100; n < 110; n++) core.handle(request(n), T0 + 2);
    const ack = core.handle(request(50, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: offered }), T0 + 3);
    expect(replyType(ack)).toBe('ACK');
    expect(ack.reply!.packet.yiaddr).toBe(offered);
    // whoever the address was offered to meanwhile loses: a REQUEST for it is NAKed, and it starts over
    for (let n = 100; n < 110; n++) {
      const late = core.handle(request(n, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: offered }), T0 + 4);
      expect(late.outcome).toBe('nak:unavailable');
    }
  });

  it('never takes back a lease: with every address leased the pool is exhausted', () => {
    const core = newCore(small);
    for (const n of [1, 2, 3, 4]) obtain(core, n);
    expect(core.handle(request(50), T0 + 1).outcome).toBe('ignore:pool-exhausted');
    expect(core.stats(T0 + 1).offersReclaimed).toBe(0);
  });

  it('never takes back an offer of a reserved address (nobody else could have it)', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.100') }, [{ mac: macOf(7), address: ip('10.10.0.100') }]);
    expect(core.handle(request(7), T0).reply!.packet.yiaddr).toBe(ip('10.10.0.100'));
    expect(core.handle(request(50), T0 + 1).outcome).toBe('ignore:pool-exhausted');
  });

  it('leaves a normal DISCOVER/REQUEST alone while addresses are free: stable-hash address, no reclaim', () => {
    const alone = obtain(newCore(), 5);
    const core = newCore();
    for (let n = 100; n < 110; n++) core.handle(request(n), T0); // other offers outstanding, most of the range free
    const offered = core.handle(request(5), T0 + 1).reply!.packet.yiaddr;
    expect(offered).toBe(alone);
    expect(replyType(core.handle(request(5, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: offered }), T0 + 2))).toBe('ACK');
    expect(core.stats(T0 + 2).offersReclaimed).toBe(0);
  });
});

describe('DECLINE verified (RFC 2131 §4.3.3; trusted only when a probe confirms, as RFC 5227 / Kea)', () => {
  it('asks the caller to probe before deciding: no change, no reply, the lease still stands', () => {
    const core = newCore();
    const address = obtain(core, 1);
    const result = core.handle(decline(1, address), T0 + 10);
    expect(result.outcome).toBe('probe:decline');
    expect(result.probe).toEqual({ address });
    expect(result.changes).toEqual([]);
    expect(result.reply).toBeUndefined();
    expect(core.leases.getByClient(request(1).clientId)?.address).toBe(address);
  });

  it('is not confirmed by a verdict on another address, a probe that could not run, or no verdict', () => {
    for (const [verdict, about] of [['in-use', 1], ['skipped', 0], ['busy', 0]] as const) {
      const core = newCore();
      const address = obtain(core, 1);
      const result = core.probeDone(decline(1, address), address + about, verdict, T0 + 10);
      expect(result.outcome).toBe('ignore:decline-unconfirmed');
      expect(core.stats(T0 + 10).quarantined).toBe(0);
    }
  });

  it('checks who may decline before asking for a probe: another client\'s address is ignored at once', () => {
    const core = newCore();
    const taken = obtain(core, 1);
    expect(core.handle(decline(2, taken), T0).outcome).toBe('ignore:decline-unknown');
  });

  it('an unconfirmed DECLINE quarantines nothing; the decliner\'s lease ends and it is offered another address', () => {
    const core = newCore({ declineQuarantineSeconds: 600 });
    const address = obtain(core, 1);
    const result = probed(core, decline(1, address), T0 + 10, 'free');
    expect(result.outcome).toBe('ignore:decline-unconfirmed');
    expect(result.changes).toEqual([{ kind: 'release', clientId: request(1).clientId, address }]);
    expect(core.stats(T0 + 10).quarantined).toBe(0);
    expect(core.handle(request(1), T0 + 20).reply!.packet.yiaddr).not.toBe(address);
    // the address is usable by everyone else at once
    expect(core.handle(request(2, { requestedAddress: address }), T0 + 30).reply!.packet.yiaddr).toBe(address);
    // and by the decliner again after the quarantine time
    const later = newCore({ declineQuarantineSeconds: 600 });
    const again = obtain(later, 1);
    probed(later, decline(1, again), T0 + 10, 'free');
    expect(later.handle(request(1), T0 + 10 + 600_000).reply!.packet.yiaddr).toBe(again);
  });

  it('an unconfirmed DECLINE of an offer only ends the offer', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.100') });
    const offered = core.handle(request(1), T0).reply!.packet.yiaddr;
    const result = probed(core, decline(1, offered), T0 + 10, 'free');
    expect(result.changes).toEqual([]);
    expect(core.stats(T0 + 10).offers).toBe(0);
    expect(core.handle(request(2), T0 + 20).reply!.packet.yiaddr).toBe(offered);
  });

  it('bounds the quarantine to a share of the range (default 10%): the oldest quarantine ends first', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.119') }); // 20 addresses → 2
    const declined = [1, 2, 3].map((n, i) => {
      const address = obtain(core, n, T0 + i);
      expect(probed(core, decline(n, address), T0 + 100 + i, 'in-use').outcome).toBe('decline');
      return address;
    });
    const stats = core.stats(T0 + 200);
    expect(stats.quarantineLimit).toBe(2);
    expect(stats.quarantined).toBe(2);
    expect(stats.quarantinesEvicted).toBe(1);
    expect(core.declined(T0 + 200).map((q) => q.address)).toEqual(declined.slice(1).sort((a, b) => a - b));
    expect(core.leases.isQuarantined(declined[0]!, T0 + 200)).toBe(false);
  });

  it('takes the share from the configuration, and applies the bound to what the journal restores', () => {
    const core = newCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.119'), maxQuarantineShare: 0.25 });
    expect(core.stats(T0).quarantineLimit).toBe(5);
    const journal = [1, 2, 3, 4, 5, 6, 7].map((i) => ({ address: ip('10.10.0.100') + i, until: T0 + 1000 * i }));
    core.restore([], T0, journal);
    expect(core.declined(T0).map((q) => q.until)).toEqual([3, 4, 5, 6, 7].map((i) => T0 + 1000 * i));
  });
});

describe('conflict probes (RFC 2131 §4.4.1): the core asks for them, the caller runs them, probeDone decides', () => {
  /** A core with offer probing on; `verdicts` stands for the caller's detector cache (CoreDeps.conflictVerdict). */
  function probingCore(overrides: Partial<CoreConfig> = {}, reservations: Reservation[] = []) {
    const verdicts = new Map<number, 'in-use' | 'free'>();
    const core = new DhcpServerCore(config(overrides), reservations, { conflictVerdict: (address) => verdicts.get(address) });
    return { core, verdicts };
  }
  const selecting = (n: number, address: number) => request(n, { type: DhcpMessageType.REQUEST, serverId: SERVER, requestedAddress: address });

  it('answers a DISCOVER with a probe of the chosen address, holding it meanwhile; a "free" verdict makes the OFFER', () => {
    const { core } = probingCore();
    const asked = core.handle(request(1), T0);
    expect(asked.outcome).toBe('probe:offer');
    expect(asked.reply).toBeUndefined();
    expect(asked.changes).toEqual([]);
    const address = asked.probe!.address;
    expect(address).toBeGreaterThanOrEqual(ip('10.10.0.100'));
    expect(core.stats(T0).offers).toBe(1);
    // held for client 1 while the probe runs: another client is asked to wait for a probe of another address
    expect(core.handle(request(2, { requestedAddress: address }), T0 + 1).probe!.address).not.toBe(address);
    const offer = core.probeDone(request(1), address, 'free', T0 + 300);
    expect(offer.outcome).toBe('offer');
    expect(replyType(offer)).toBe('OFFER');
    expect(offer.reply!.packet.yiaddr).toBe(address);
  });

  it('offers the address a probe could not examine at all ("skipped": nothing can be learned, waiting is useless)', () => {
    const { core } = probingCore();
    const address = core.handle(request(1), T0).probe!.address;
    expect(core.probeDone(request(1), address, 'skipped', T0 + 10).reply!.packet.yiaddr).toBe(address);
  });

  it('an "in-use" verdict moves the client to another address, which needs its own probe, then is offered', () => {
    const { core } = probingCore();
    const first = core.handle(request(1), T0).probe!.address;
    // the verdict itself decides, even if the caller's cache has not (or no longer) recorded it
    const next = core.probeDone(request(1), first, 'in-use', T0 + 250);
    expect(next.outcome).toBe('probe:offer');
    expect(next.reply).toBeUndefined();
    const second = next.probe!.address;
    expect(second).not.toBe(first);
    expect(core.stats(T0 + 250).offers).toBe(1); // the first address is no longer held
    const offer = core.probeDone(request(1), second, 'free', T0 + 500);
    expect(offer.reply!.packet.yiaddr).toBe(second);
  });

  it('never offers unprobed when the probe gives no verdict ("busy"): no reply, and the retransmission asks again', () => {
    const { core } = probingCore();
    const address = core.handle(request(1), T0).probe!.address;
    const busy = core.probeDone(request(1), address, 'busy', T0 + 10);
    expect(busy.outcome).toBe('ignore:probe-busy');
    expect(busy.reply).toBeUndefined();
    expect(core.handle(request(1), T0 + 4000).probe).toEqual({ address });
  });

  it('a fresh verdict spares the probe: "free" is offered at once, "in-use" is not chosen', () => {
    const { core, verdicts } = probingCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.101') });
    verdicts.set(ip('10.10.0.100'), 'in-use');
    verdicts.set(ip('10.10.0.101'), 'free');
    const result = core.handle(request(1, { requestedAddress: ip('10.10.0.100') }), T0);
    expect(result.outcome).toBe('offer');
    expect(result.reply!.packet.yiaddr).toBe(ip('10.10.0.101'));
    // the range is full: client 1's offer is taken back for client 2, never the address that answers
    expect(core.handle(request(2), T0 + 1).reply!.packet.yiaddr).toBe(ip('10.10.0.101'));
    expect(core.handle(request(3), T0 + 2).outcome).toBe('offer');
    verdicts.set(ip('10.10.0.101'), 'in-use');
    expect(core.handle(request(4), T0 + 3).outcome).toBe('ignore:pool-exhausted');
  });

  it('the client\'s own lease and its reservation need no probe', () => {
    const reserved = { mac: macOf(7), address: ip('10.10.0.50') };
    const { core, verdicts } = probingCore({}, [reserved]);
    const address = core.handle(request(1), T0).probe!.address;
    core.probeDone(request(1), address, 'free', T0 + 10);
    expect(replyType(core.handle(selecting(1, address), T0 + 20))).toBe('ACK');
    verdicts.clear(); // the verdict is long forgotten when the client comes back
    expect(core.handle(request(1), T0 + 60_000).outcome).toBe('offer');
    expect(core.handle(request(7), T0 + 60_000).reply!.packet.yiaddr).toBe(reserved.address);
  });

  it('an "in-use" verdict when nothing else is free: no offer, and the address is not held', () => {
    const { core } = probingCore({ rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.100') });
    const address = core.handle(request(1), T0).probe!.address;
    expect(core.probeDone(request(1), address, 'in-use', T0 + 10).outcome).toBe('ignore:pool-exhausted');
    expect(core.stats(T0 + 10).offers).toBe(0);
  });

  it('SELECTING an address found in use since is NAKed (the client starts over); INIT-REBOOT and renewing are not', () => {
    const { core, verdicts } = probingCore();
    const address = core.handle(request(1), T0).probe!.address;
    core.probeDone(request(1), address, 'free', T0 + 10);
    verdicts.set(address, 'in-use'); // another host took it after the offer's probe
    const nak = core.handle(selecting(1, address), T0 + 20);
    expect(replyType(nak)).toBe('NAK');
    expect(nak.outcome).toBe('nak:unavailable');
    // the client verifying an address it believes it holds may be the very host that answered: healed, as before
    expect(replyType(core.handle(initReboot(1, address), T0 + 30))).toBe('ACK');
    expect(replyType(core.handle(renew(1, address), T0 + 40))).toBe('ACK');
    expect(replyType(core.handle(selecting(1, address), T0 + 50))).toBe('ACK'); // its own lease now
  });

  it('a verdict handed back with a request that asked for no probe is ignored', () => {
    const { core } = probingCore();
    expect(core.probeDone(selecting(1, ip('10.10.0.120')), ip('10.10.0.120'), 'free', T0).outcome).toBe('ignore:unexpected-type');
    expect(core.leases.size).toBe(0);
  });

  it('without conflictVerdict (--no-ping) offers go out at once; DECLINEs are still probed', () => {
    const core = newCore();
    const offer = core.handle(request(1), T0);
    expect(offer.outcome).toBe('offer');
    expect(core.handle(decline(1, offer.reply!.packet.yiaddr), T0 + 10).outcome).toBe('probe:decline');
  });
});
