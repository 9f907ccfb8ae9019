/**
 * Fuzz target for the DHCP core: sequences of arbitrary DhcpRequest objects (any field values, plus a bias towards
 * our own addresses and a few recurring clients so that states actually interact) fed to one core with a clock that
 * jumps forward. 100 runs × 1000 requests = 100,000 requests. After every request: no exception, every reply
 * encodes, and the lease table's invariants hold. Now and then the expiry timer runs (expire) before the request.
 * Every lease that leaves the table is reported in the changes of the call that removed it (once), and reading stats
 * changes nothing.
 *
 * Conflict probes run as the transport runs them: a 'probe:*' outcome queues the request (a DISCOVER's retransmission
 * replaces the queued one, a DECLINE's is dropped), and queued probes end at random later steps, interleaved with other
 * requests, with a random verdict that a model of the detector's cache remembers (in use 60 s, free 3 s) and the core
 * reads as CoreDeps.conflictVerdict (in most runs; the others are `--no-ping`). Then: an OFFER only of an address a
 * probe found free (or could not examine) or that is the client's own (its lease or reservation); never an OFFER,
 * nor an ACK of a SELECTING client, of an address whose latest probe said "in use" unless it is the client's own.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeDhcpPacket } from '../../src/dhcp/codec.js';
import { DhcpServerCore, type CoreConfig, type HandleOptions } from '../../src/dhcp/server-core.js';
import { DhcpMessageType, DhcpOption, type CoreResult, type DhcpRequest, type Lease, type LeaseChange, type ProbeVerdict, type Reservation } from '../../src/dhcp/types.js';
import { makeSubnet, subnetContains } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const T0 = 1_700_000_000_000;
const SERVER = ip('10.10.0.1');
const SUBNET = makeSubnet(SERVER, 24);
const MACS = Array.from({ length: 16 }, (_, i) => `52:54:00:00:00:${i.toString(16).padStart(2, '0')}`);
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
  rangeEnd: ip('10.10.0.105'), // six: offers no longer hold a full range, only leases exhaust it
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
    // relayed requests are all ignored alike: rare, so the generator spends its steps on the paths that decide
    giaddr: fc.oneof({ weight: 30, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: address }),
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
  /** speak about the address this client was last given, as a real client would (renew, release, decline) */
  coherent: fc.boolean(),
  /** queued probes that end before the request: which one (modulo the queue) and what it found */
  verdicts: fc.array(
    fc.record({
      pick: fc.nat(),
      verdict: fc.oneof(
        { weight: 5, arbitrary: fc.constant<ProbeVerdict>('free') },
        { weight: 2, arbitrary: fc.constant<ProbeVerdict>('in-use') },
        { weight: 1, arbitrary: fc.constantFrom<ProbeVerdict>('skipped', 'busy') },
      ),
    }),
    { maxLength: 2 },
  ),
  /** the daemon's expiry timer fires before the request */
  timer: fc.boolean(),
});

/** Points the request at the address the client was last offered or acknowledged. */
function followUp(request: DhcpRequest, known: number | undefined): DhcpRequest {
  if (known === undefined) return request;
  const usesCiaddr = request.type === DhcpMessageType.RELEASE || request.type === DhcpMessageType.INFORM || request.ciaddr !== 0;
  return { ...request, requestedAddress: known, ...(usesCiaddr ? { ciaddr: known } : {}) };
}

/** Plain checks: 100,000 steps × every lease is too many for expect()'s bookkeeping. */
function check(condition: unknown, what: string): void {
  if (!condition) throw new Error(`invariant broken: ${what}`);
}

function checkInvariants(core: DhcpServerCore, now: number): void {
  const leases = core.leases.all();
  check(leases.length === core.leases.size, 'size matches the client index');
  check(new Set(leases.map((l) => l.address)).size === leases.length, 'no address held by two clients');
  for (const lease of leases) {
    check(core.leases.getByAddress(lease.address)?.clientId === lease.clientId, 'address index agrees');
    check(core.leases.getByClient(lease.clientId)?.address === lease.address, 'client index agrees');
    check(subnetContains(SUBNET, lease.address), 'lease inside the subnet');
    check(![SERVER, SUBNET.network, SUBNET.broadcast].includes(lease.address), 'lease on a host address');
    check(lease.expiresAt > now, 'expired leases are swept');
    check(!core.leases.isQuarantined(lease.address, now), 'no lease on a quarantined address');
    const reserved = RESERVATIONS.find((r) => r.address === lease.address);
    check(!reserved || lease.mac === reserved.mac, 'reserved address leased only to its MAC');
  }
  const before = core.leases.all();
  const stats = core.stats(now);
  check(stats.quarantined <= stats.quarantineLimit, 'quarantine within its bound');
  check(stats.leases === leases.length, 'stats counts the live leases');
  // read ahead of the clock, when leases have run out: counted as ended, but left for expire() to report
  const later = now + 700_000;
  check(core.stats(later).leases === leases.filter((l) => l.expiresAt > later).length, 'stats counts as of its time');
  const after = core.leases.all();
  check(after.length === before.length && after.every((l, i) => l === before[i]), 'stats changes nothing');
}

/** The table by client id, to compare before and after a call. */
function snapshot(core: DhcpServerCore): Map<string, Lease> {
  return new Map(core.leases.all().map((l) => [l.clientId, l]));
}

/**
 * The changes account for the table: a lease that left (or moved) is reported by a release of it or by its client's
 * new bind; a release names a lease the table held (so nothing is reported twice); a bind is what the table holds.
 */
function checkReported(before: Map<string, Lease>, after: Map<string, Lease>, changes: readonly LeaseChange[]): void {
  for (const [clientId, lease] of before) {
    if (after.get(clientId)?.address === lease.address) continue;
    const reported = changes.some((c) => (c.kind === 'release' && c.clientId === clientId && c.address === lease.address) || (c.kind === 'bind' && c.lease.clientId === clientId));
    check(reported, 'every lease that leaves the table is reported');
  }
  const released = new Set<string>();
  for (const c of changes) {
    if (c.kind === 'release') {
      check(before.get(c.clientId)?.address === c.address && !released.has(c.clientId), 'a release reports a lease the table held, once');
      released.add(c.clientId);
    }
    if (c.kind === 'bind') check(after.get(c.lease.clientId) === c.lease, 'a bind is what the table holds');
  }
}

function checkReply(core: DhcpServerCore, request: DhcpRequest, result: CoreResult, now: number): void {
  check(typeof result.outcome === 'string' && result.outcome.length > 0, 'an outcome');
  const reply = result.reply;
  if (result.probe) {
    const asked = request.type === DhcpMessageType.DISCOVER ? 'probe:offer' : request.type === DhcpMessageType.DECLINE ? 'probe:decline' : '';
    check(result.outcome === asked && !reply, 'a probe only for a DISCOVER or a DECLINE, and no reply before it');
  }
  if (!reply) return;
  check(request.giaddr >>> 0 === 0, 'no reply to a relayed request');
  const to = reply.destination;
  check(to.kind === 'broadcast' || (subnetContains(SUBNET, to.address) && to.address !== SUBNET.broadcast), 'unicast only inside the subnet');
  check(encodeDhcpPacket(reply.packet, 576).length <= 548, 'reply fits 576 bytes');
  const type = reply.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0];
  const yiaddr = reply.packet.yiaddr;
  if (type === DhcpMessageType.OFFER) {
    const holder = core.leases.getByAddress(yiaddr);
    const reserved = RESERVATIONS.find((r) => r.address === yiaddr);
    check(!reserved || request.mac === reserved.mac, 'reserved address offered only to its MAC');
    // only a reservation may take over a lease, and only one its own MAC holds under another client id
    check(!holder || holder.clientId === request.clientId || (reserved && holder.mac === request.mac), 'offer of a leased address');
    check(!core.leases.isQuarantined(yiaddr, now), 'offer of a quarantined address');
  }
  if (type === DhcpMessageType.ACK && yiaddr !== 0) {
    check(core.leases.getByClient(request.clientId)?.address === yiaddr, 'ACKed address recorded for the client');
  }
}

const IN_USE_TTL_MS = 60_000;
const FREE_TTL_MS = 3_000;

/** One core, its clock, the model of the transport's probe queue and of the detector's verdict cache. */
class Run {
  now = T0;
  readonly core: DhcpServerCore;
  /** the address each client was last given (offered or acknowledged) */
  readonly given = new Map<string, number>();
  readonly outcomes = new Map<string, number>();
  /** `${type}:${clientId}` -> the request waiting for its probe, as the transport keeps them */
  private readonly queued = new Map<string, { request: DhcpRequest; opts: HandleOptions; address: number }>();
  private readonly verdicts = new Map<number, { verdict: 'in-use' | 'free'; until: number }>();

  /** `probing`: offers are probed (CoreDeps.conflictVerdict given); false is `--no-ping` */
  constructor(private readonly probing: boolean) {
    this.core = new DhcpServerCore(CONFIG, RESERVATIONS, probing ? { conflictVerdict: (address) => this.cached(address) } : {});
  }

  cached(address: number): 'in-use' | 'free' | undefined {
    const entry = this.verdicts.get(address);
    return entry && entry.until > this.now ? entry.verdict : undefined;
  }

  expireTimer(): void {
    const before = snapshot(this.core);
    const expired = this.core.expire(this.now);
    checkReported(before, snapshot(this.core), expired);
    check(expired.every((c) => c.kind === 'release'), 'the timer only ends leases');
  }

  /** Ends one queued probe (`pick` modulo the queue) with `verdict`, remembered as the detector would. */
  endProbe(pick: number, verdict: ProbeVerdict): void {
    const keys = [...this.queued.keys()];
    if (keys.length === 0) return;
    const key = keys[pick % keys.length]!;
    const { request, opts, address } = this.queued.get(key)!;
    this.queued.delete(key);
    if (verdict === 'in-use' || verdict === 'free') {
      this.verdicts.set(address, { verdict, until: this.now + (verdict === 'in-use' ? IN_USE_TTL_MS : FREE_TTL_MS) });
    }
    const examined = verdict === 'free' || verdict === 'skipped' ? address : undefined;
    this.call(request, opts, () => this.core.probeDone(request, address, verdict, this.now, opts), examined);
  }

  /** One core call and every check after it. `examined`: the address a probe just found free or could not examine. */
  call(request: DhcpRequest, opts: HandleOptions, decide: () => CoreResult, examined?: number): void {
    const before = snapshot(this.core);
    const result = decide();
    this.outcomes.set(result.outcome, (this.outcomes.get(result.outcome) ?? 0) + 1);
    try {
      checkReported(before, snapshot(this.core), result.changes);
      checkReply(this.core, request, result, this.now);
      this.checkProbed(request, result, before, examined);
      checkInvariants(this.core, this.now);
    } catch (err) {
      // the counterexample is 1000 steps long: name the step that broke it
      const { type, clientId, mac, ciaddr, requestedAddress, serverId } = request;
      throw new Error(`${(err as Error).message}, after outcome ${result.outcome} of ${JSON.stringify({ type, clientId, mac, ciaddr, requestedAddress, serverId })}`);
    }
    if (result.reply && result.reply.packet.yiaddr !== 0) this.given.set(request.clientId, result.reply.packet.yiaddr);
    if (result.probe) {
      const key = `${request.type}:${request.clientId}`;
      const waiting = this.queued.get(key);
      if (!waiting) this.queued.set(key, { request, opts, address: result.probe.address });
      else if (request.type === DhcpMessageType.DISCOVER) this.queued.set(key, { ...waiting, request, opts });
    }
  }

  /** What the probes said is honoured: see the header. `before`: the table before the call (whose lease it was). */
  private checkProbed(request: DhcpRequest, result: CoreResult, before: Map<string, Lease>, examined: number | undefined): void {
    const type = result.reply?.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0];
    const yiaddr = result.reply?.packet.yiaddr ?? 0;
    const own = before.get(request.clientId)?.address === yiaddr || RESERVATIONS.some((r) => r.mac === request.mac && r.address === yiaddr);
    if (type === DhcpMessageType.OFFER && this.probing) {
      check(own || this.cached(yiaddr) === 'free' || yiaddr === examined, 'an OFFER only of a probed address');
    }
    if (!this.probing || own || this.cached(yiaddr) !== 'in-use') return;
    check(type !== DhcpMessageType.OFFER, 'no OFFER of an address in use');
    const selecting = request.type === DhcpMessageType.REQUEST && request.serverId !== undefined;
    check(!(type === DhcpMessageType.ACK && selecting), 'no ACK of an address in use to a SELECTING client');
  }
}

describe('DHCP core fuzz', () => {
  it('survives 100,000 arbitrary requests with its table consistent', () => {
    let handled = 0;
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(step, { minLength: 1000, maxLength: 1000 }), fc.integer({ min: 0, max: 3 }), (steps, noPing) => {
        const run = new Run(noPing !== 0);
        for (const step of steps) {
          run.now += step.advance;
          if (step.timer) run.expireTimer();
          for (const { pick, verdict } of step.verdicts) run.endProbe(pick, verdict);
          const request = step.coherent ? followUp(step.request, run.given.get(step.request.clientId)) : step.request;
          const opts: HandleOptions = step.receivedOn === undefined ? {} : { receivedOnInterfaceAddress: step.receivedOn };
          run.call(request, opts, () => run.core.handle(request, run.now, opts));
          handled++;
        }
        for (const [outcome, n] of run.outcomes) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + n);
        const stats = run.core.stats(run.now);
        expect(stats.free).toBeLessThanOrEqual(stats.rangeSize);
      }),
      {
        numRuns: Number(process.env.FUZZ_RUNS ?? 100),
        endOnFailure: true,
        // replay a failure that CI printed: FUZZ_SEED=<seed> FUZZ_PATH=<path>
        ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED), path: process.env.FUZZ_PATH } : {}),
      },
    );
    if (process.env.FUZZ_RUNS) console.log(Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])));
    else expect(handled).toBeGreaterThanOrEqual(100_000);
    // the generator must reach every decision, or the run proves little
    for (const outcome of ['probe:offer', 'probe:decline', 'ignore:probe-busy', 'offer', 'ack', 'nak:unavailable', 'nak:wrong-subnet', 'decline', 'ignore:decline-unconfirmed', 'release', 'inform', 'ignore:other-server', 'ignore:pool-exhausted', 'ignore:relayed']) {
      expect(outcomes.get(outcome) ?? 0, outcome).toBeGreaterThan(0);
    }
  }, 120_000);
});
