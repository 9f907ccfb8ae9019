/**
 * The pure DHCPv4 server core (RFC 2131): (state, parsed request, now) → (reply?, changes to persist, outcome).
 * No sockets, timers or files: the transport receives and parses, calls `handle`, persists `changes`, then sends.
 *
 * State is the lease table, the pool (reservations and in-memory offers) and the decline quarantine. The core updates
 * its own state immediately; the caller makes the changes durable before the reply leaves.
 *
 * natd is authoritative for its bridge (as libvirt's dnsmasq with dhcp-authoritative): a client whose lease record
 * was lost is healed with an ACK when its address is free, instead of being left waiting.
 *
 * Guests are untrusted (issue 12). natd serves only the bridge it is bound to and is not a relay-aware server: a
 * relayed message (giaddr set) can only be a guest pretending to be a relay, and is ignored; no reply is ever
 * unicast to an address outside the subnet. A DECLINE is trusted only after a probe confirms that something answers
 * at the address (RFC 5227's idea, as Kea does), and the quarantine holds at most a share of the range.
 *
 * Conflict probes (RFC 2131 §4.4.1) are the core's decisions too; only running them is the caller's. When an OFFER
 * needs a probe, or a DECLINE its verification, `handle` answers with a 'probe:offer' / 'probe:decline' outcome
 * naming the address, and the caller hands the verdict back through `probeDone`, which makes the OFFER, picks another
 * address (maybe asking for another probe), or decides the DECLINE. The verdicts the caller remembers reach the core
 * through CoreDeps.conflictVerdict, so a fresh one spares the probe.
 */
import { subnetContains, type Subnet } from '../net/ipv4.js';
import { encodeString, encodeU32, FqdnFlags } from './codec.js';
import { encodeConfiguredOptions } from './configured-options.js';
import { LeaseTable, storedLease } from './lease-table.js';
import { OptionEngine, type ResolvedOptions } from './option-set.js';
import type { OptionSpec } from './option-spec.js';
import { BOOTFILE_NAME_OPTION, bootReply, clientTags, EMPTY_BOOT_POLICY, selectBoot, TFTP_SERVER_NAME_OPTION, type BootPolicy } from './boot.js';
import { AddressPool } from './pool.js';
import { BOOTREPLY,
  DhcpMessageType,
  DhcpOption,
  type CoreResult,
  type DhcpPacket,
  type DhcpRequest,
  type Lease,
  type LeaseChange,
  type ProbeVerdict,
  type ReplyDestination,
  type Reservation, BROADCAST_FLAG, INFINITE_EXPIRES_AT, INFINITE_LEASE_SECONDS } from './types.js';

export interface CoreConfig {
  serverAddress: number;
  subnet: Subnet;
  router: number;
  dnsServers: number[];
  domain?: string;
  searchDomains?: string[];
  classlessRoutes?: { network: number; prefix: number; router: number }[];
  /** INFINITE_LEASE_SECONDS: infinite leases */
  leaseTimeSeconds: number;
  rangeStart: number;
  rangeEnd: number;
  declineQuarantineSeconds?: number;
  offerHoldSeconds?: number;
  /** declined addresses quarantined at once, as a share of the range (at least 1); the oldest ends first */
  maxQuarantineShare?: number;
  // issue 16: option engine, MTU, Rapid Commit
  /** option 26, sent like the other built-in options (--mtu) */
  mtu?: number;
  /** --dhcp-option / --dhcp-option-force specs, in the order given (tagged ones apply to clients with the tags) */
  options?: readonly OptionSpec[];
  /** answer a DISCOVER carrying option 80 with an ACK (RFC 4039); default true, as systemd-networkd's server */
  rapidCommit?: boolean;
  /** issue 16: PXE boot entries and the tag rules that choose among them (boot.ts) */
  boot?: BootPolicy;
}

export interface CoreDeps {
  /**
   * The fresh verdict of a recent conflict probe of the address, if any (the caller's ConflictDetector.cached).
   * Given, offers are probed (absent is `--no-ping`): an address another host answers for is not offered to a client
   * that did not hold it, and an OFFER of an address with no fresh verdict waits for a probe ('probe:offer').
   */
  conflictVerdict?: (address: number) => 'in-use' | 'free' | undefined;
  /**
   * Whether a client may have the host name it asks for (another client's or a reservation's name, a denied name):
   * a refused name is left off the lease and the reply, so the table, the journal and `natd leases` agree with DNS.
   * `binding` is true for the ACK that binds the lease (the policy counts and logs refusals only then).
   */
  nameAllowed?: (name: string, claimant: { clientId: string; mac: string; address: number }, binding: boolean) => boolean;
}

export interface HandleOptions {
  /**
   * Address of the interface the request arrived on. Used as our server identifier in replies, and a request
   * naming it (option 54) is ours as well as one naming config.serverAddress.
   */
  receivedOnInterfaceAddress?: number;
}

/** A probe's verdict on an address, as handed to probeDone. */
interface Probed {
  address: number;
  verdict: ProbeVerdict;
}

export interface CoreStats {
  leases: number;
  /** addresses of the dynamic range nobody holds, is offered, reserved or quarantined */
  free: number;
  offers: number;
  quarantined: number;
  reservations: number;
  rangeSize: number;
  /** how many declined addresses may be quarantined at once */
  quarantineLimit: number;
  /** offers taken back from clients that never REQUESTed, for new clients, while the range was full */
  offersReclaimed: number;
  /** quarantines ended early because the quarantine was at its limit */
  quarantinesEvicted: number;
}

/** dnsmasq's DECLINE back-off: long enough for the conflicting host to be noticed by an operator. */
const DEFAULT_DECLINE_QUARANTINE_SECONDS = 600;
/** An OFFER holds its address this long; clients answer within seconds. */
const DEFAULT_OFFER_HOLD_SECONDS = 30;
/** At most a tenth of the range quarantined: a guest that really answers ARP for addresses can take no more. */
const DEFAULT_MAX_QUARANTINE_SHARE = 0.1;
/** Clients remembered as having declined an address unconfirmed (so it is not offered back to them at once). */
const MAX_UNCONFIRMED_DECLINERS = 1024;
/** A client may ask for a shorter lease, but not one that makes it renew in a storm. */
const MIN_LEASE_SECONDS = 60;

type NakReason = 'nak:wrong-subnet' | 'nak:wrong-address' | 'nak:reserved-elsewhere' | 'nak:unavailable';

/** The request with every number forced into range, so nothing a peer sends can make the encoder throw. */
interface Req extends DhcpRequest {
  serverIsUs: boolean;
  /** tags the request earned (--dhcp-match, --dhcp-userclass, --dhcp-vendorclass), worked out once per request */
  earned?: ReadonlySet<string>;
}

const NO_EARNED_TAGS: ReadonlySet<string> = new Set();

export class DhcpServerCore {
  /** The lease table, to read: leases end only through handle() and expire(), which report every end as a change. */
  readonly leases: LeaseTable;
  private readonly pool: AddressPool;
  private readonly config: Readonly<CoreConfig>;
  /** configured option values, encoded once; resolved per client's tags (option-set.ts) */
  private options: OptionEngine;
  /** what a client without a reservation gets */
  /** the built-in options (mask, router, DNS, …), encoded once */
  private readonly builtInOptions: ReadonlyMap<number, Uint8Array>;
  private readonly rapidCommit: boolean;
  private readonly quarantineMs: number;
  private readonly offerHoldMs: number;
  private readonly nameAllowed: CoreDeps['nameAllowed'];
  private readonly conflictVerdict: CoreDeps['conflictVerdict'];
  private readonly quarantineLimit: number;
  /** clientId -> the address it declined without proof, and until when it is not offered that address again */
  private readonly unconfirmedDeclines = new Map<string, { address: number; until: number }>();
  private offersReclaimed = 0;
  private quarantinesEvicted = 0;
  /** the latest clock the caller gave us, so stats() needs no clock of its own */
  private lastNow = 0;
  /** issue 16: PXE boot fields (replaced on reload) */
  private boot: BootPolicy;

  constructor(config: CoreConfig, reservations: Reservation[], deps: CoreDeps = {}) {
    this.config = Object.freeze({ ...config });
    this.leases = new LeaseTable();
    this.pool = new AddressPool(
      {
        subnet: config.subnet,
        rangeStart: config.rangeStart,
        rangeEnd: config.rangeEnd,
        excluded: [config.serverAddress, config.router].filter((a) => a !== 0),
      },
      this.leases,
      deps.conflictVerdict && ((address) => deps.conflictVerdict!(address) === 'in-use'),
    );
    this.quarantineMs = (config.declineQuarantineSeconds ?? DEFAULT_DECLINE_QUARANTINE_SECONDS) * 1000;
    this.offerHoldMs = (config.offerHoldSeconds ?? DEFAULT_OFFER_HOLD_SECONDS) * 1000;
    this.nameAllowed = deps.nameAllowed;
    this.conflictVerdict = deps.conflictVerdict;
    const share = config.maxQuarantineShare ?? DEFAULT_MAX_QUARANTINE_SHARE;
    this.quarantineLimit = Math.max(1, Math.floor(this.pool.rangeSize * (Number.isFinite(share) ? Math.max(0, share) : 0)));
    this.builtInOptions = this.encodeConfiguredOptions();
    this.options = new OptionEngine(this.builtInOptions, config.options ?? [], config.serverAddress);
    this.rapidCommit = config.rapidCommit ?? true;
    this.pool.setReservations(reservations);
    this.boot = config.boot ?? EMPTY_BOOT_POLICY;
  }

  /** issue 16: replaces the PXE boot entries and tag rules (reload). */
  setBoot(policy: BootPolicy): void {
    this.boot = policy;
  }

  /** Replaces the --dhcp-option specs (reload); encoded here, once, like at start. */
  setOptions(specs: readonly OptionSpec[]): void {
    this.options = new OptionEngine(this.builtInOptions, specs, this.config.serverAddress);
  }

  /** Replaces the reservations (SIGHUP, control API); returns the entries skipped as invalid or conflicting. */
  setReservations(reservations: Reservation[]): Reservation[] {
    return this.pool.setReservations(reservations);
  }

  /** Loads leases (and quarantines) from the store at start; expired and foreign ones are dropped. */
  restore(leases: Lease[], now: number, declined: Array<{ address: number; until: number }> = []): void {
    for (const lease of leases) {
      const address = lease.address >>> 0;
      if (lease.expiresAt > now && this.pool.isAssignable(address)) this.leases.put(lease.address === address ? lease : { ...lease, address });
    }
    // the journal keeps every decline; only the newest ones within the limit come back (the oldest ended first)
    const live = declined.filter((d) => d.until > now).sort((a, b) => b.until - a.until).slice(0, this.quarantineLimit);
    for (const { address, until } of live) this.leases.decline(address >>> 0, until);
  }

  /** Quarantined addresses with the time each quarantine ends, by address (for `natd leases`). */
  declined(now = this.lastNow): Array<{ address: number; until: number }> {
    return this.leases.quarantined().filter((q) => q.until > now).sort((a, b) => a.address - b.address);
  }

  /**
   * Figures for the control API as of `now` (default: the latest time the caller gave). Read-only: what ended by then
   * is not counted, but is removed (and reported) only by handle() or expire(), so reading stats never changes state.
   */
  stats(now = this.lastNow): CoreStats {
    return {
      leases: this.leases.liveCount(now),
      free: this.pool.freeCount(now),
      offers: this.pool.offerCount(now),
      quarantined: this.declined(now).length,
      reservations: this.pool.reservationCount,
      rangeSize: this.pool.rangeSize,
      quarantineLimit: this.quarantineLimit,
      offersReclaimed: this.offersReclaimed,
      quarantinesEvicted: this.quarantinesEvicted,
    };
  }

  /**
   * Ends what has run out by `now` and returns the leases that ended as 'release' changes, for the caller to journal
   * and to take their names off DNS (the one path every lease end takes). The caller's timer calls it so an idle
   * server's leases end too; handle() calls it first, so a request never sees an ended lease. Offers and quarantines
   * end here as well, silently: offers are never journaled, and the journal keeps a decline with its end time.
   *
   * An expiry is reported as a release: it has the same effect on the table, the journal and the names, and the
   * journal keeps the format an older natd reads.
   */
  expire(now: number): LeaseChange[] {
    if (now > this.lastNow) this.lastNow = now;
    this.pool.sweepHolds(now);
    const ended = this.leases.sweepExpired(now);
    return ended.map((l) => ({ kind: 'release', clientId: l.clientId, address: l.address }));
  }

  /**
   * Decides on one request. Leases that expired since the last call end first (expire) and are reported ahead of the
   * request's own changes. The request object is annotated in place (normalise), never otherwise changed.
   */
  handle(request: DhcpRequest, now: number, opts: HandleOptions = {}): CoreResult {
    return this.run(request, now, opts, undefined);
  }

  /**
   * The rest of a request `handle` answered with a 'probe:*' outcome: the conflict probe of `address` found `verdict`;
   * `request` is the one it was for (for a DISCOVER, the client's newest retransmission). DISCOVER: 'free', or
   * 'skipped' (nothing can be learned) → the OFFER; 'in-use' → another address, which may need its own probe (another
   * 'probe:offer'); 'busy' → no reply ('ignore:probe-busy'): never an unprobed offer, the client's retransmission
   * tries again. DECLINE: 'in-use' confirms it; anything else does not. Expired leases are reported first, as in handle.
   */
  probeDone(request: DhcpRequest, address: number, verdict: ProbeVerdict, now: number, opts: HandleOptions = {}): CoreResult {
    const asks = request.type === DhcpMessageType.DISCOVER || request.type === DhcpMessageType.DECLINE;
    if (!asks) return ignore('ignore:unexpected-type'); // no other message asks for a probe
    return this.run(request, now, opts, { address: address >>> 0, verdict });
  }

  private run(request: DhcpRequest, now: number, opts: HandleOptions, probed: Probed | undefined): CoreResult {
    const expired = this.expire(now);
    const result = this.decide(request, now, opts, probed);
    if (expired.length === 0) return result;
    return { ...result, changes: [...expired, ...result.changes] };
  }

  /**
   * The option values for this client: its reservation's (tags, own options) or everybody's, with the tags its
   * request earned (they select options too, as in dnsmasq). Every case is a cache lookup in the option engine.
   */
  private optionsFor(req: Req): ResolvedOptions {
    const reservation = this.pool.reservationForMac(req.mac);
    return this.options.forClient(reservation, this.earnedTags(req));
  }

  private earnedTags(req: Req): ReadonlySet<string> {
    const b = this.boot;
    if (b.matches.length + b.userClasses.length + b.vendorClasses.length === 0) return NO_EARNED_TAGS;
    return (req.earned ??= clientTags(b, req.rawOptions, undefined));
  }

  private decide(request: DhcpRequest, now: number, opts: HandleOptions, probed: Probed | undefined): CoreResult {
    const req = this.normalise(request, opts);
    const serverId = (opts.receivedOnInterfaceAddress ?? this.config.serverAddress) >>> 0;
    // Only a relay agent sets giaddr, and natd serves its own bridge only: a guest claiming to be a relay would have
    // the reply sent to whatever address it names (dnsmasq answers relays only for a configured dhcp-range there).
    if (req.giaddr !== 0) return ignore('ignore:relayed');
    switch (req.type) {
      case DhcpMessageType.DISCOVER:
        return this.discover(req, now, serverId, probed);
      case DhcpMessageType.REQUEST:
        return this.request(req, now, serverId);
      case DhcpMessageType.DECLINE:
        return this.decline(req, now, probed);
      case DhcpMessageType.RELEASE:
        return this.release(req);
      case DhcpMessageType.INFORM:
        return this.inform(req, serverId);
      default:
        return ignore('ignore:unexpected-type');
    }
  }

  // ---- message handlers ---------------------------------------------------------------------------------------

  /**
   * DISCOVER → OFFER. `probed`: the verdict on the address chosen for this client before (probeDone). Found in use,
   * it is no longer offered and another address is chosen; found free (or not probeable), it is offered without
   * another probe. With Rapid Commit (RFC 4039: option 80 from the client, enabled here) the address, once it needs
   * no probe, is bound at once and ACKed with option 80, the lease persisted before the ACK like any other.
   */
  private discover(req: Req, now: number, serverId: number, probed?: Probed): CoreResult {
    // no verdict: never an unprobed offer; the client's retransmission tries again
    if (probed?.verdict === 'busy') return ignore('ignore:probe-busy');
    const address = this.chooseAndHold(req, now, probed);
    if (address === undefined) return ignore('ignore:pool-exhausted');
    if (this.needsProbe(req, address, probed)) return { changes: [], outcome: 'probe:offer', probe: { address } };
    if (this.rapidCommit && req.rapidCommit) {
      const result = this.bind(req, address, now, serverId);
      result.reply?.packet.options.set(DhcpOption.RAPID_COMMIT, new Uint8Array(0));
      return { ...result, outcome: 'ack:rapid-commit' };
    }
    const leaseSeconds = this.leaseSecondsFor(req);
    const hostname = this.hostnameFor(req, address, false);
    return {
      reply: this.reply(req, DhcpMessageType.OFFER, serverId, { yiaddr: address, leaseSeconds, hostname }),
      changes: [],
      outcome: 'offer',
    };
  }

  /**
   * The address to offer the client, held for it (also while its probe runs, so no other DISCOVER is offered it).
   * The offer is a promise held in memory only: nothing to persist until the client REQUESTs it.
   */
  private chooseAndHold(req: Req, now: number, probed: Probed | undefined): number | undefined {
    const avoid = [this.avoidedBy(req.clientId, now), this.foundInUse(req, now, probed)].filter((a): a is number => a !== undefined);
    let address = this.pool.choose(req.clientId, req.mac, now, req.requestedAddress, avoid);
    if (address === undefined) {
      // The range is full. An offer nobody REQUESTed is only a promise: the oldest goes to this client instead, so a
      // DISCOVER flood from invented MACs cannot starve real clients (Kea holds nothing for an offer by default).
      address = this.pool.reclaimOffer(req.clientId, req.mac, now, avoid);
      if (address === undefined) return undefined;
      this.offersReclaimed++;
    }
    this.pool.hold(req.clientId, address, now + this.offerHoldMs);
    return address;
  }

  /** The address a probe just found in use for this client: not offered to it again, and no longer held for it. */
  private foundInUse(req: Req, now: number, probed: Probed | undefined): number | undefined {
    if (probed?.verdict !== 'in-use') return undefined;
    if (this.pool.heldFor(req.clientId, now) === probed.address) this.pool.releaseHold(req.clientId);
    return probed.address;
  }

  /**
   * Whether an OFFER of `address` waits for a conflict probe: probing is on, the address is not the client's own
   * (its reservation or lease: the client itself may answer there, and an in-use verdict would not move it), it was
   * not just probed for this client, and no fresh verdict is known.
   */
  private needsProbe(req: Req, address: number, probed: Probed | undefined): boolean {
    if (!this.conflictVerdict || probed?.address === address) return false;
    if (this.pool.reservationForMac(req.mac)?.address === address || this.leases.getByClient(req.clientId)?.address === address) return false;
    return this.conflictVerdict(address) === undefined;
  }

  /** RFC 2131 §4.3.2: the options present tell which state the client is in. */
  private request(req: Req, now: number, serverId: number): CoreResult {
    if (req.serverId !== undefined) return this.requestSelecting(req, now, serverId);
    if (req.ciaddr !== 0) return this.requestRenewing(req, now, serverId);
    if (req.requestedAddress !== undefined) return this.requestInitReboot(req, now, serverId);
    return ignore('ignore:malformed-request');
  }

  /** SELECTING: the client picked one server's offer and names it in option 54. */
  private requestSelecting(req: Req, now: number, serverId: number): CoreResult {
    if (!req.serverIsUs) {
      // It took another server's offer: ours is free again. Silence, per the RFC.
      this.pool.releaseHold(req.clientId);
      return ignore('ignore:other-server');
    }
    const address = req.requestedAddress ?? (req.ciaddr || undefined);
    if (address === undefined) return ignore('ignore:malformed-request');
    // The client may have held another lease with us before; selecting a new address moves it.
    const nak = this.bindRefusal(req, address, now, false) ?? this.probedInUse(req, address);
    if (nak) return this.nak(req, serverId, nak);
    return this.bind(req, address, now, serverId);
  }

  /**
   * INIT-REBOOT: the client verifies the address it remembers (option 50, no server id, ciaddr 0). As the
   * authoritative server we NAK what we would not give it (it costs the client one DISCOVER round, and it has not
   * started using the address yet) and ACK a free address even without a record, so a lost lease store heals.
   */
  private requestInitReboot(req: Req, now: number, serverId: number): CoreResult {
    const address = req.requestedAddress!;
    const nak = this.bindRefusal(req, address, now, true);
    if (nak) return this.nak(req, serverId, nak, address);
    return this.bind(req, address, now, serverId);
  }

  /**
   * RENEWING (unicast at T1) or REBINDING (broadcast at T2): ciaddr is the address in use; both are handled alike.
   * Our lease → ACK extending it; no record and the address free for this client → ACK (heal, as INIT-REBOOT).
   * NAK only when certain the client must not keep the address: wrong subnet, our record binds the client
   * elsewhere, the address belongs to someone else (lease, offer, reservation) or was declined.
   * An address in our subnet but outside anything we hand out, that nobody holds, is ignored: we cannot vouch for
   * it, and a NAK would cut a working client's connection on a guess; it stops using it at lease end anyway.
   */
  private requestRenewing(req: Req, now: number, serverId: number): CoreResult {
    const address = req.ciaddr;
    const known = this.leases.getByClient(req.clientId)?.address === address;
    const nak = this.bindRefusal(req, address, now, true);
    if (nak === 'nak:unavailable' && !known && this.isUnclaimedOutsidePool(address, now)) {
      return ignore('ignore:unknown-lease');
    }
    if (nak) return this.nak(req, serverId, nak, address);
    return this.bind(req, address, now, serverId);
  }

  /**
   * DECLINE: the client says the address is in use (its ARP check was answered). Trusted only when our own probe
   * confirms it (`probed`; without one the core asks for a fresh probe, 'probe:decline': a "free" remembered from the
   * offer's probe is what the client disputes); then the address is quarantined, bounded.
   * Unconfirmed, nothing is quarantined: the client's own offer and lease on the address end (it gave the address
   * up, RFC 2131 §3.1 step 5, and nobody else is affected) and it is not offered that address again for the
   * quarantine time, so a client whose check saw something our probe did not is not sent round in a loop.
   */
  private decline(req: Req, now: number, probed: Probed | undefined): CoreResult {
    if (req.serverId !== undefined && !req.serverIsUs) return ignore('ignore:other-server');
    const address = req.requestedAddress ?? (req.ciaddr || undefined);
    if (address === undefined) return ignore('ignore:malformed-decline');
    const lease = this.leases.getByClient(req.clientId);
    const offered = this.pool.heldFor(req.clientId, now);
    // Only the client holding the address may decline it, or one host could quarantine the whole pool.
    if (lease?.address !== address && offered !== address) return ignore('ignore:decline-unknown');
    if (probed === undefined) return { changes: [], outcome: 'probe:decline', probe: { address } };
    const changes: LeaseChange[] = [];
    this.pool.releaseHold(req.clientId);
    if (probed.verdict !== 'in-use' || probed.address !== address) {
      if (lease?.address === address) {
        this.leases.remove(req.clientId);
        changes.push({ kind: 'release', clientId: req.clientId, address });
      }
      this.rememberUnconfirmedDecline(req.clientId, address, now);
      return { changes, outcome: 'ignore:decline-unconfirmed' };
    }
    // Usually the decliner's own lease. It can be another client id's: a reservation offered to a MAC whose old
    // lease (same MAC, other client id) still holds the address. A declined address is bound to nobody (as Kea
    // marks the address itself declined), so that lease ends too.
    const holder = this.leases.getByAddress(address);
    if (holder) {
      this.leases.remove(holder.clientId);
      changes.push({ kind: 'release', clientId: holder.clientId, address });
    }
    const until = now + this.quarantineMs;
    this.leases.decline(address, until);
    changes.push({ kind: 'decline', address, until });
    this.boundQuarantine();
    return { changes, outcome: 'decline' };
  }

  /**
   * Ends the oldest quarantines while more than the limit are held. Not journaled: the store keeps every decline
   * and restore() applies the same limit to them, keeping the newest.
   */
  private boundQuarantine(): void {
    const entries = this.leases.quarantined();
    if (entries.length <= this.quarantineLimit) return;
    entries.sort((a, b) => a.until - b.until);
    for (const { address } of entries.slice(0, entries.length - this.quarantineLimit)) {
      this.leases.endQuarantine(address);
      this.quarantinesEvicted++;
    }
  }

  private rememberUnconfirmedDecline(clientId: string, address: number, now: number): void {
    this.unconfirmedDeclines.delete(clientId);
    this.unconfirmedDeclines.set(clientId, { address, until: now + this.quarantineMs });
    if (this.unconfirmedDeclines.size > MAX_UNCONFIRMED_DECLINERS) {
      this.unconfirmedDeclines.delete(this.unconfirmedDeclines.keys().next().value as string);
    }
  }

  /** The address this client declined unconfirmed, while it is still not to be offered back to it. */
  private avoidedBy(clientId: string, now: number): number | undefined {
    const entry = this.unconfirmedDeclines.get(clientId);
    if (!entry) return undefined;
    if (entry.until > now) return entry.address;
    this.unconfirmedDeclines.delete(clientId);
    return undefined;
  }

  /** RELEASE: the client gives its address (ciaddr) back. No reply. */
  private release(req: Req): CoreResult {
    if (req.serverId !== undefined && !req.serverIsUs) return ignore('ignore:other-server');
    const lease = this.leases.getByClient(req.clientId);
    this.pool.releaseHold(req.clientId);
    if (!lease || lease.address !== req.ciaddr) return ignore('ignore:release-unknown');
    this.leases.remove(req.clientId);
    return { changes: [{ kind: 'release', clientId: req.clientId, address: lease.address }], outcome: 'release' };
  }

  /** INFORM: a client configured by other means asks for options only (no yiaddr, no lease time). */
  private inform(req: Req, serverId: number): CoreResult {
    if (req.ciaddr === 0) return ignore('ignore:malformed-inform');
    // the ACK goes to ciaddr: never outside the bridge's subnet
    if (!subnetContains(this.config.subnet, req.ciaddr)) return ignore('ignore:wrong-subnet');
    return { reply: this.reply(req, DhcpMessageType.ACK, serverId, { yiaddr: 0 }), changes: [], outcome: 'inform' };
  }

  // ---- decisions ----------------------------------------------------------------------------------------------

  /**
   * Why this client may not be bound to this address now, or undefined when it may.
   * `strictRecord`: the client claims an address it believes it holds (INIT-REBOOT, RENEWING), so a record of ours
   * binding it elsewhere wins; in SELECTING it is choosing afresh and may move.
   */
  private bindRefusal(req: Req, address: number, now: number, strictRecord: boolean): NakReason | undefined {
    if (!subnetContains(this.config.subnet, address)) return 'nak:wrong-subnet';
    const reservation = this.pool.reservationForMac(req.mac);
    // A client with a reservation moves to it as soon as it is free (it may have been busy when it last came).
    if (reservation && reservation.address !== address &&
        this.pool.isFreeFor(reservation.address, req.clientId, req.mac, now)) {
      return 'nak:reserved-elsewhere';
    }
    const lease = this.leases.getByClient(req.clientId);
    if (strictRecord && lease && lease.address !== address) return 'nak:wrong-address';
    // An offer made to another client does not refuse a REQUEST: the first client to REQUEST gets the address and
    // the other's REQUEST is NAKed (it starts over). An offer reclaimed under a DISCOVER flood is so won back.
    if (!this.pool.isOfferable(address, req.clientId, req.mac, now, false)) return 'nak:unavailable';
    return undefined;
  }

  /**
   * SELECTING an address a probe found in use since it was offered (or never offered): NAKed, so the client starts
   * over and is offered another. Its own lease or reservation excepted, as in needsProbe. INIT-REBOOT and RENEWING
   * are not refused on it: the host answering may be the client itself, whose lease record was lost.
   */
  private probedInUse(req: Req, address: number): NakReason | undefined {
    if (this.conflictVerdict?.(address) !== 'in-use') return undefined;
    const own = this.pool.reservationForMac(req.mac)?.address === address || this.leases.getByClient(req.clientId)?.address === address;
    return own ? undefined : 'nak:unavailable';
  }

  /** In our subnet, outside the range and every reservation, held by nobody, not declined. */
  private isUnclaimedOutsidePool(address: number, now: number): boolean {
    return (
      this.pool.isAssignable(address) &&
      !this.pool.inRange(address) &&
      this.pool.reservationAt(address) === undefined &&
      this.leases.getByAddress(address) === undefined &&
      !this.leases.isQuarantined(address, now)
    );
  }

  private bind(req: Req, address: number, now: number, serverId: number): CoreResult {
    const changes: LeaseChange[] = [];
    const holder = this.leases.getByAddress(address);
    if (holder && holder.clientId !== req.clientId) {
      // Only reachable when the MAC's reservation takes over its own lease made under another client id.
      this.leases.remove(holder.clientId);
      changes.push({ kind: 'release', clientId: holder.clientId, address });
    }
    const leaseSeconds = this.leaseSecondsFor(req);
    const lease: Lease = {
      clientId: req.clientId,
      mac: req.mac,
      address,
      expiresAt: leaseSeconds === INFINITE_LEASE_SECONDS ? INFINITE_EXPIRES_AT : now + leaseSeconds * 1000,
    };
    const hostname = this.hostnameFor(req, address, true);
    if (hostname !== undefined) lease.hostname = hostname;
    this.pool.releaseHold(req.clientId);
    this.pool.releaseHoldOn(address);
    this.unconfirmedDeclines.delete(req.clientId);
    const stored = storedLease(lease); // frozen: the table, the store's replay and the change share it
    this.leases.put(stored);
    changes.push({ kind: 'bind', lease: stored });
    return {
      reply: this.reply(req, DhcpMessageType.ACK, serverId, { yiaddr: address, leaseSeconds, hostname }),
      changes,
      outcome: 'ack',
    };
  }

  /**
   * A NAK ends any offer we held for the client, and the client's lease on the refused address (e.g. now reserved
   * for another MAC, or out of range): it has been told to stop using it, so the address is free at once.
   */
  private nak(req: Req, serverId: number, reason: NakReason, refused?: number): CoreResult {
    this.pool.releaseHold(req.clientId);
    const changes: LeaseChange[] = [];
    const lease = this.leases.getByClient(req.clientId);
    if (lease && refused !== undefined && lease.address === refused) {
      this.leases.remove(req.clientId);
      changes.push({ kind: 'release', clientId: req.clientId, address: refused });
    }
    return { reply: this.reply(req, DhcpMessageType.NAK, serverId, { yiaddr: 0, reason }), changes, outcome: reason };
  }

  /**
   * The reservation's lease time, else the configured one (either may be INFINITE_LEASE_SECONDS).
   * requestedLeaseSeconds only shortens it, and not below MIN_LEASE_SECONDS.
   */
  private leaseSecondsFor(req: Req): number {
    const own = this.pool.reservationForMac(req.mac)?.leaseSeconds;
    const configured = clampU32(Math.floor(own ?? this.config.leaseTimeSeconds));
    const asked = req.requestedLeaseSeconds;
    if (asked === undefined || !Number.isFinite(asked) || asked <= 0 || asked >= configured) return configured;
    return Math.max(Math.floor(asked), Math.min(MIN_LEASE_SECONDS, configured));
  }

  /**
   * A reservation's name wins over the client's; then option 81, option 12, and the name the lease already had, as
   * far as the name policy allows it (see CoreDeps.nameAllowed).
   */
  private hostnameFor(req: Req, address: number, binding: boolean): string | undefined {
    const reservation = this.pool.reservationAt(address);
    if (reservation?.mac === req.mac && reservation.hostname) return reservation.hostname;
    const known = this.leases.getByClient(req.clientId);
    const asked = req.fqdnHostname ?? req.hostname ?? (known?.address === address ? known.hostname : undefined);
    if (asked === undefined || !this.nameAllowed) return asked;
    return this.nameAllowed(asked, { clientId: req.clientId, mac: req.mac, address }, binding) ? asked : undefined;
  }

  /**
   * issue 18: annotates the request in place (a copy of every field per request was 3% of natd's DHCP CPU): the
   * numbers forced into range (a no-op for what parseRequest built), serverIsUs for this call's `opts`, and the
   * earned tags forgotten (worked out again, for this configuration). Idempotent: a request handed in again (after
   * a probe) is annotated again.
   */
  private normalise(request: DhcpRequest, opts: HandleOptions): Req {
    const req = request as Req;
    req.ciaddr = request.ciaddr >>> 0;
    req.giaddr = request.giaddr >>> 0;
    if (request.requestedAddress !== undefined) req.requestedAddress = request.requestedAddress >>> 0;
    const serverId = request.serverId === undefined ? undefined : (req.serverId = request.serverId >>> 0);
    const received = opts.receivedOnInterfaceAddress === undefined ? undefined : opts.receivedOnInterfaceAddress >>> 0;
    req.serverIsUs = serverId !== undefined && (serverId === this.config.serverAddress >>> 0 || serverId === received);
    if (req.earned !== undefined) req.earned = undefined;
    return req;
  }

  // ---- replies ------------------------------------------------------------------------------------------------

  private reply(
    req: Req,
    type: number,
    serverId: number,
    detail: { yiaddr: number; leaseSeconds?: number; hostname?: string | undefined; reason?: string },
  ): { packet: DhcpPacket; destination: ReplyDestination } {
    const nak = type === DhcpMessageType.NAK;
    const inform = req.type === DhcpMessageType.INFORM;
    const chaddr = new Uint8Array(16);
    chaddr.set(req.chaddr.subarray(0, 16));
    const packet: DhcpPacket = {
      op: BOOTREPLY,
      htype: req.htype & 0xff,
      hlen: hardwareLength(req.mac),
      hops: 0,
      xid: req.xid >>> 0,
      secs: 0,
      flags: req.flags & 0xffff,
      // Table 3: ACK/INFORM-ACK echo ciaddr, OFFER and NAK carry 0.
      ciaddr: type === DhcpMessageType.ACK ? req.ciaddr : 0,
      yiaddr: detail.yiaddr,
      siaddr: 0,
      giaddr: 0, // relayed requests are ignored
      chaddr,
      sname: '',
      file: '',
      options: nak
        ? this.nakOptions(serverId, detail.reason ?? 'nak')
        : this.replyOptions(req, type, serverId, inform ? undefined : detail.leaseSeconds, detail.hostname),
    };
    if (!nak) this.addBootFields(req, packet, serverId);
    return { packet, destination: destinationOf(req, nak, detail.yiaddr, this.config.subnet) };
  }

  /**
   * issue 16: `file`, `sname`, `siaddr` of the boot entry the client's tags select (boot.ts), and options 66/67 when
   * it asks for them (67 always when the name is too long for `file`). Last in the options: first dropped for size.
   */
  private addBootFields(req: Req, packet: DhcpPacket, serverId: number): void {
    if (this.boot.entries.length === 0) return;
    const reservation = this.pool.reservationForMac(req.mac);
    const tags = new Set([...(reservation ? ['known', ...(reservation.tags ?? [])] : []), ...this.earnedTags(req)]);
    const entry = selectBoot(this.boot, tags);
    if (!entry) return;
    const boot = bootReply(entry, serverId);
    packet.file = boot.file;
    packet.sname = boot.sname;
    packet.siaddr = boot.siaddr;
    if (req.parameterRequestList.includes(TFTP_SERVER_NAME_OPTION)) packet.options.set(TFTP_SERVER_NAME_OPTION, encodeString(boot.tftpServerName));
    if (boot.fileInOptionOnly || req.parameterRequestList.includes(BOOTFILE_NAME_OPTION)) packet.options.set(BOOTFILE_NAME_OPTION, encodeString(boot.bootFileName));
  }

  private nakOptions(serverId: number, reason: string): Map<number, Uint8Array> {
    return new Map([
      [DhcpOption.MESSAGE_TYPE, Uint8Array.of(DhcpMessageType.NAK)],
      [DhcpOption.SERVER_ID, encodeU32(serverId)],
      [DhcpOption.MESSAGE, encodeString(NAK_MESSAGES[reason] ?? 'request refused')],
    ]);
  }

  /**
   * Insertion order is the codec's priority when the client's size limit forces it to drop options: the
   * mandatory ones first, then the client's own option 55 order.
   */
  private replyOptions(
    req: Req,
    type: number,
    serverId: number,
    leaseSeconds: number | undefined,
    hostname: string | undefined,
  ): Map<number, Uint8Array> {
    const options = new Map<number, Uint8Array>();
    options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(type));
    options.set(DhcpOption.SERVER_ID, encodeU32(serverId));
    if (leaseSeconds !== undefined) {
      options.set(DhcpOption.LEASE_TIME, encodeU32(leaseSeconds));
      // an infinite lease is never renewed: no T1/T2 (as dnsmasq), which would tell the client to renew after all
      if (leaseSeconds !== INFINITE_LEASE_SECONDS) {
        options.set(DhcpOption.RENEWAL_TIME, encodeU32(Math.floor(leaseSeconds * 0.5)));
        options.set(DhcpOption.REBINDING_TIME, encodeU32(Math.floor(leaseSeconds * 0.875)));
      }
    }
    const configured = this.optionsFor(req);
    // Mask and router always: without them a client that forgot to ask has no working network.
    const byCode = configured.byCode;
    for (const code of [DhcpOption.SUBNET_MASK, DhcpOption.ROUTER]) {
      const value = byCode[code];
      if (value) options.set(code, value);
    }
    const wanted = req.parameterRequestList.length > 0 ? req.parameterRequestList : configured.defaultOrder;
    for (const code of wanted) {
      const value = byCode[code]; // undefined for anything but 0-255
      if (value && !options.has(code)) options.set(code, value);
    }
    // --dhcp-option-force: after what the client asked for, so they are the first dropped when space runs out
    for (const code of configured.forced) {
      if (!options.has(code)) options.set(code, byCode[code]!);
    }
    if (req.fqdnFlags !== undefined && leaseSeconds !== undefined) {
      options.set(DhcpOption.CLIENT_FQDN, this.fqdnReply(req.fqdnFlags, hostname));
    }
    return options;
  }

  /**
   * RFC 4702 §4: natd serves its guests' names from its own DNS, i.e. it does the A-record "update": S set, O set
   * when that overrides the client's wish to do it itself, unless the client asked for no update at all (N).
   * RCODE1/2 are 255 as §3.2 asks of servers. The name is the lease's, in the encoding the client used (E).
   */
  private fqdnReply(clientFlags: number, hostname: string | undefined): Uint8Array {
    const encoding = clientFlags & FqdnFlags.E;
    let flags: number;
    if (clientFlags & FqdnFlags.N) flags = FqdnFlags.N | encoding;
    else flags = FqdnFlags.S | (clientFlags & FqdnFlags.S ? 0 : FqdnFlags.O) | encoding;
    const labels = hostname ? [hostname, ...(this.config.domain ? this.config.domain.split('.') : [])] : [];
    const usable = labels.filter((l) => l.length > 0 && Buffer.byteLength(l) <= 63);
    let name: Uint8Array;
    if (encoding) {
      const parts: number[] = [];
      for (const label of usable) {
        const bytes = Buffer.from(label, 'utf8');
        parts.push(bytes.length, ...bytes);
      }
      // Fully qualified (root label) only when we know the domain; a bare host label stays partial.
      if (usable.length > 1) parts.push(0);
      name = Uint8Array.from(parts);
    } else {
      name = encodeString(usable.join('.'));
    }
    const out = new Uint8Array(3 + name.length);
    out.set([flags, 255, 255]);
    out.set(name, 3);
    return out;
  }

  /** The options natd derives from its configuration, in the order sent to a client without a request list. */
  private encodeConfiguredOptions(): Map<number, Uint8Array> {
    return encodeConfiguredOptions(this.config);
  }
}

const NAK_MESSAGES: Record<string, string> = {
  'nak:wrong-subnet': 'address not on this network',
  'nak:wrong-address': 'address is not the one leased to this client',
  'nak:reserved-elsewhere': 'a different address is reserved for this client',
  'nak:unavailable': 'address not available',
};

function ignore(outcome: string): CoreResult {
  return { changes: [], outcome };
}

/**
 * RFC 2131 §4.1 for a server on the client's own segment (relayed requests never get here): a NAK → broadcast; a
 * configured client (ciaddr) → unicast, but only to an address of our subnet (the socket is bound to the bridge,
 * and Linux would ARP for any address there, so a guest could have replies sent to an address it claims off the
 * subnet); the client asked for broadcast → broadcast; else unicast to the new address (always ours), which needs
 * the neighbour entry seeded with the MAC (only possible for Ethernet-style 6-byte addresses).
 */
export function destinationOf(req: DhcpRequest, nak: boolean, yiaddr: number, subnet: Subnet): ReplyDestination {
  if (nak) return { kind: 'broadcast', port: 68 };
  const ciaddr = req.ciaddr >>> 0;
  if (ciaddr !== 0 && subnetContains(subnet, ciaddr) && ciaddr !== subnet.network && ciaddr !== subnet.broadcast) {
    return { kind: 'unicast', address: ciaddr, port: 68 };
  }
  if (req.broadcast || (req.flags & BROADCAST_FLAG) !== 0) return { kind: 'broadcast', port: 68 };
  if (yiaddr !== 0 && hardwareLength(req.mac) === 6) return { kind: 'unicast-new', address: yiaddr, mac: req.mac, port: 68 };
  return { kind: 'broadcast', port: 68 };
}

/** chaddr length as the parser saw it: the MAC string has one "xx" per byte. */
function hardwareLength(mac: string): number {
  return mac.length === 0 ? 0 : Math.min(16, Math.floor((mac.length + 1) / 3));
}

function clampU32(n: number): number {
  return Number.isFinite(n) ? Math.min(0xffffffff, Math.max(1, n)) : 1;
}
