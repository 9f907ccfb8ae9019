/**
 * The address pool: which address a client gets, and which addresses are free.
 *
 * Choice order (sd-dhcp-server's, plus dnsmasq's memory of past clients): the client's reservation, its current
 * lease, the address already offered to it, its last ended lease, the address it asked for, then a stable FNV-1a
 * hash of its client id into the dynamic range with a linear probe, so a client keeps its address even when all
 * state is lost. Never chosen: an address reserved for another MAC, leased or offered to another client,
 * quarantined after a DECLINE, the network/broadcast/server/gateway address, or one the injected `isKnownInUse`
 * says somebody already answers for (checked only for addresses the client did not hold before).
 *
 * Offers are held here, in memory only, for a short time: an OFFER is a promise, not a lease. They are soft (as in
 * Kea, where an offer holds nothing unless `offer-lifetime` is set): while other addresses are free an offer keeps
 * its address from other DISCOVERs, but once the range is full the oldest offer nobody REQUESTed is taken back for a
 * new client (`reclaimOffer`), and a REQUEST is not refused because of an offer made to someone else. So DISCOVERs
 * from invented MACs cannot hold the pool against real clients.
 */
import { subnetContains, type Subnet } from '../net/ipv4.js';
import type { LeaseTable } from './lease-table.js';
import type { Reservation } from './types.js';

export interface PoolRange {
  subnet: Subnet;
  /** dynamic range, inclusive; clamped to the subnet's host addresses */
  rangeStart: number;
  rangeEnd: number;
  /** addresses never handed out (the server's own, the gateway) */
  excluded: number[];
}

/** True when something already answers for the address (ARP/ICMP evidence gathered by the I/O shell). */
export type InUsePredicate = (address: number) => boolean;

/** How long a failed full probe is trusted while nothing was freed: isKnownInUse may change on its own. */
const EXHAUSTION_MEMO_MS = 1000;
/** Stands for "no client" when counting free addresses: client ids are hex, so never this. */
const NOBODY = '\u0000';

interface Hold {
  address: number;
  until: number;
}

export class AddressPool {
  readonly subnet: Subnet;
  /** first and last address of the dynamic range; start > end means an empty range */
  readonly start: number;
  readonly end: number;
  private readonly excluded: ReadonlySet<number>;
  private readonly reservationsByMac = new Map<string, Reservation>();
  private readonly reservationsByAddress = new Map<number, Reservation>();
  /** clientId -> offered address; Map order is expiry order because every hold lasts the same time */
  private readonly holds = new Map<string, Hold>();
  private readonly holdsByAddress = new Map<number, string>();
  /** bumped when a hold ends (an address may be free again) */
  private holdsFreed = 0;
  /** bumped on every hold or reservation change (for the cached free count) */
  private localChanges = 0;
  private exhaustedMemo: { stamp: string; at: number } | undefined;
  /** the last free count, valid for its stamp while `from <= now < until` */
  private freeMemo: { stamp: string; from: number; until: number; count: number } | undefined;

  constructor(
    range: PoolRange,
    private readonly table: LeaseTable,
    private readonly isKnownInUse: InUsePredicate = () => false,
  ) {
    this.subnet = range.subnet;
    this.excluded = new Set(range.excluded.map((a) => a >>> 0));
    const firstHost = range.subnet.network + 1;
    const lastHost = range.subnet.broadcast - 1;
    this.start = Math.max(range.rangeStart >>> 0, firstHost);
    this.end = Math.min(range.rangeEnd >>> 0, lastHost);
  }

  /** Number of addresses in the dynamic range (including excluded ones inside it). */
  get rangeSize(): number {
    return Math.max(0, this.end - this.start + 1);
  }

  inRange(address: number): boolean {
    return address >= this.start && address <= this.end;
  }

  /** A host address of our subnet that is not the server's or the gateway's. */
  isAssignable(address: number): boolean {
    return (
      subnetContains(this.subnet, address) &&
      address !== this.subnet.network &&
      address !== this.subnet.broadcast &&
      !this.excluded.has(address)
    );
  }

  // ---- reservations -----------------------------------------------------------------------------------------

  /**
   * Replaces all reservations. Entries outside the subnet, on the server/gateway address, or conflicting with an
   * earlier entry (same MAC or same address) are skipped and returned; validation with line numbers is the
   * loader's job, this only keeps the pool consistent.
   */
  setReservations(reservations: readonly Reservation[]): Reservation[] {
    this.reservationsByMac.clear();
    this.reservationsByAddress.clear();
    const rejected: Reservation[] = [];
    for (const r of reservations) {
      const address = r.address >>> 0;
      if (!this.isAssignable(address) || this.reservationsByMac.has(r.mac) || this.reservationsByAddress.has(address)) {
        rejected.push(r);
        continue;
      }
      const stored: Reservation = { ...r, address };
      this.reservationsByMac.set(r.mac, stored);
      this.reservationsByAddress.set(address, stored);
    }
    this.localChanges++;
    this.holdsFreed++; // a dropped reservation frees its address
    return rejected;
  }

  reservationForMac(mac: string): Reservation | undefined {
    return this.reservationsByMac.get(mac);
  }

  reservationAt(address: number): Reservation | undefined {
    return this.reservationsByAddress.get(address);
  }

  get reservationCount(): number {
    return this.reservationsByMac.size;
  }

  // ---- offers held in memory ----------------------------------------------------------------------------------

  hold(clientId: string, address: number, until: number): void {
    this.releaseHold(clientId);
    const owner = this.holdsByAddress.get(address);
    if (owner !== undefined) this.releaseHold(owner);
    this.holds.set(clientId, { address, until });
    this.holdsByAddress.set(address, clientId);
    this.localChanges++;
  }

  releaseHold(clientId: string): void {
    this.dropHold(clientId, true);
  }

  private dropHold(clientId: string, freed: boolean): void {
    const held = this.holds.get(clientId);
    if (!held) return;
    this.holds.delete(clientId);
    if (this.holdsByAddress.get(held.address) === clientId) this.holdsByAddress.delete(held.address);
    if (freed) this.holdsFreed++;
    this.localChanges++;
  }

  /** Ends the offer of this address, whoever it was made to (a REQUEST for it won). */
  releaseHoldOn(address: number): void {
    const owner = this.holdsByAddress.get(address);
    if (owner !== undefined) this.releaseHold(owner);
  }

  /**
   * When the range has nothing free: takes back the oldest offer made to another client that this client may have
   * instead, and returns its address (the caller offers it anew). Offers of reserved addresses stay (nobody else
   * could have them), and so does an address something is known to answer for.
   */
  reclaimOffer(clientId: string, mac: string, now: number, avoid: readonly number[] = []): number | undefined {
    for (const [owner, held] of this.holds) {
      if (owner === clientId || held.until <= now || avoid.includes(held.address)) continue;
      if (this.reservationsByAddress.has(held.address)) continue;
      if (!this.isOfferable(held.address, clientId, mac, now, false) || this.isKnownInUse(held.address)) continue;
      // not counted as freed: the caller holds it again at once, so "nothing free" stays true for the memo
      this.dropHold(owner, false);
      return held.address;
    }
    return undefined;
  }

  /** The address offered to the client, if the offer still stands. */
  heldFor(clientId: string, now: number): number | undefined {
    const held = this.holds.get(clientId);
    return held && held.until > now ? held.address : undefined;
  }

  /** Offers still standing at `now` (ended ones may wait for the next sweep). */
  offerCount(now: number): number {
    let standing = 0;
    for (const held of this.holds.values()) if (held.until > now) standing++;
    return standing;
  }

  /** Ends offers that ran out; cheap because holds expire in insertion order. */
  sweepHolds(now: number): void {
    for (const [clientId, held] of this.holds) {
      if (held.until > now) break;
      this.releaseHold(clientId);
    }
  }

  // ---- availability -------------------------------------------------------------------------------------------

  /**
   * May this client have this address right now? Assignable, not reserved for another MAC, not leased or offered
   * to another client, not quarantined. A lease held by the same MAC under another client id does not block the
   * MAC's own reservation (the machine changed DHCP client; the caller moves the lease).
   * `offersBlock` false: an offer made to another client does not count (a REQUEST takes the address from it).
   */
  isFreeFor(address: number, clientId: string, mac: string, now: number, offersBlock = true): boolean {
    if (!this.isAssignable(address)) return false;
    const reserved = this.reservationsByAddress.get(address);
    if (reserved && reserved.mac !== mac) return false;
    const lease = this.table.getByAddress(address);
    if (lease && lease.clientId !== clientId && !(reserved && lease.mac === mac)) return false;
    const holder = this.holdsByAddress.get(address);
    if (offersBlock && holder !== undefined && holder !== clientId && (this.holds.get(holder)?.until ?? 0) > now) return false;
    return !this.table.isQuarantined(address, now);
  }

  /** isFreeFor, and inside what the pool hands out to this MAC: the dynamic range or its reservation. */
  isOfferable(address: number, clientId: string, mac: string, now: number, offersBlock = true): boolean {
    const inScope = this.inRange(address) || this.reservationsByAddress.get(address)?.mac === mac;
    return inScope && this.isFreeFor(address, clientId, mac, now, offersBlock);
  }

  /**
   * Picks an address for the client, or undefined when the pool has nothing for it. `avoid`: addresses not to give
   * this client now: one it declined without proof of a conflict (free for others, but offering it back would loop),
   * one a probe just found in use.
   */
  choose(clientId: string, mac: string, now: number, requested?: number, avoid: readonly number[] = []): number | undefined {
    const known = [this.reservationsByMac.get(mac)?.address, this.table.getByClient(clientId)?.address];
    for (const address of known) {
      if (address !== undefined && !avoid.includes(address) && this.isOfferable(address, clientId, mac, now)) return address;
    }
    // An offer is not a lease: in-use evidence that arrived after it was made (an async probe) withdraws it.
    const held = this.heldFor(clientId, now);
    if (held !== undefined && !avoid.includes(held) && this.isOfferable(held, clientId, mac, now) && !this.isKnownInUse(held)) return held;
    for (const address of [this.table.lastAddressOf(clientId), requested]) {
      if (address !== undefined && !avoid.includes(address) && this.isFreshCandidate(address, clientId, mac, now, false)) return address;
    }
    return this.probe(clientId, mac, now, avoid);
  }

  /**
   * Addresses in the dynamic range nobody holds, is offered, reserved or quarantined at `now`. Read-only: a lease,
   * offer or quarantine that ended but is not swept yet counts as ended. The count is cached until the table or the
   * pool changes or one of the things it counted ends.
   */
  freeCount(now: number): number {
    const stamp = `${this.table.generation}:${this.localChanges}`;
    const memo = this.freeMemo;
    if (memo?.stamp === stamp && now >= memo.from && now < memo.until) return memo.count;
    let count = 0;
    let until = Infinity;
    for (let address = this.start; address <= this.end; address++) {
      const takenUntil = this.takenUntil(address, now);
      if (takenUntil === 0) count++;
      else if (takenUntil < until) until = takenUntil;
    }
    this.freeMemo = { stamp, from: now, until, count };
    return count;
  }

  /**
   * For counting free addresses: 0 when the address is free at `now`, else when it frees by itself (a lease, an
   * offer or a quarantine ending; the latest of them), Infinity when never (reserved, excluded).
   */
  private takenUntil(address: number, now: number): number {
    if (!this.isAssignable(address) || this.reservationsByAddress.has(address)) return Infinity;
    const holder = this.holdsByAddress.get(address);
    const offerEnd = holder === undefined ? undefined : this.holds.get(holder)?.until;
    return Math.max(endAfter(this.table.getByAddress(address)?.expiresAt, now), endAfter(offerEnd, now), endAfter(this.table.quarantineEnd(address), now));
  }

  private isFreshCandidate(address: number, clientId: string, mac: string, now: number, spareOthersPast: boolean): boolean {
    if (!this.isOfferable(address, clientId, mac, now)) return false;
    if (spareOthersPast) {
      const past = this.table.lastClientOf(address);
      if (past !== undefined && past !== clientId) return false;
    }
    return !this.isKnownInUse(address);
  }

  /**
   * Hash of the client id into the range, then a linear probe: first sparing addresses other clients held
   * recently (so they get them back), then taking any free one. A failed probe is remembered until an address is
   * freed, so a DISCOVER flood on a full pool costs O(1) per packet, not O(range).
   */
  private probe(clientId: string, mac: string, now: number, avoid: readonly number[]): number | undefined {
    const size = this.rangeSize;
    if (size === 0) return undefined;
    const stamp = `${this.table.freedGeneration}:${this.holdsFreed}`;
    const memo = this.exhaustedMemo;
    if (memo && memo.stamp === stamp && now >= memo.at && now - memo.at < EXHAUSTION_MEMO_MS) return undefined;
    const first = fnv1a(clientId) % size;
    for (const spareOthersPast of [true, false]) {
      for (let i = 0; i < size; i++) {
        const address = this.start + ((first + i) % size);
        if (!avoid.includes(address) && this.isFreshCandidate(address, clientId, mac, now, spareOthersPast)) return address;
      }
    }
    // an avoided address may be the only free one: that is no exhaustion for everyone else
    if (avoid.some((address) => this.isFreshCandidate(address, NOBODY, NOBODY, now, false))) return undefined;
    this.exhaustedMemo = { stamp, at: now };
    return undefined;
  }
}

/** `end` when it is still ahead of `now`, else 0 (over or absent). */
function endAfter(end: number | undefined, now: number): number {
  return end !== undefined && end > now ? end : 0;
}

/** 32-bit FNV-1a over the UTF-16 code units of a string (client ids are hex, so bytes). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
