/**
 * issue 14: the guests' SLAAC addresses, learnt from the kernel's neighbour table on the bridge and handed to
 * GuestAddresses as source 'slaac', grouped by MAC: its changes as they happen (`ip -6 monitor neigh` lines through
 * observeLine, neigh-monitor.ts; applied in batches at most every FLUSH_MS), and a full read (`ip -6 neigh show dev
 * <bridge>`, learn) every RESYNC_MS beside the monitor, every POLL_MS without it.
 *
 * Why the neighbour table and not EUI-64: a SLAAC address is computed from the MAC (EUI-64) only when the guest
 * uses that scheme; most current systems use stable-privacy (RFC 7217) or temporary (RFC 8981) interface ids,
 * which natd cannot compute, and an EUI-64 guess would publish an address the guest does not have. The neighbour
 * table holds what guests really use: a guest that talks to or through the host over IPv6 (its DNS queries to the
 * gateway, its traffic through NAT66) appears there with its MAC. A guest that has never sent anything over IPv6
 * has no AAAA until it does.
 *
 * What counts: an entry with a link-layer address, not FAILED or INCOMPLETE, whose address is in the served /64
 * (never link-local). An (address, MAC) pair not seen usable for GRACE_MS is dropped (at once when the kernel marks
 * the address FAILED: the host tried it and nobody answered), so a guest that is gone
 * loses its addresses after the grace time, and another guest cannot take an address over while its holder is
 * still there (GuestAddresses keeps the first holder). The pairs tracked are capped (MAX_TRACKED); every refusal
 * and unreadable line is counted. One MAC tracks at most MAX_PER_MAC pairs (a guest spraying addresses evicts its own
 * least-used ones), so the work per event stays small.
 *
 * When a guest shows a new address while others are published for it, or its first address goes STALE while another
 * is in use, the older one is probed (options.probe, neigh-prober.ts): the kernel marks it FAILED in seconds when the
 * guest left it, instead of the address lingering "in use" for up to FRESH_MS.
 */
import type { Logger } from '../log.js';
import { formatIpv6, isLinkLocal, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from './address.js';
import type { GuestAddresses } from './guest-addresses.js';
import { parseMonitorLine, type NeighbourEvent } from './neigh-monitor-line.js';

export const POLL_MS = 5_000;
export const GRACE_MS = 120_000;
export const MAX_TRACKED = 16_384;

export interface NeighbourEntry {
  /** canonical text */
  address: string;
  dev?: string;
  /** lower case, colon form; absent for INCOMPLETE/FAILED entries */
  mac?: string;
  /** NUD states and flags as printed (REACHABLE, STALE, router, ...) */
  states: string[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** keywords of `ip neigh` followed by a value */
const VALUED = new Set(['dev', 'lladdr', 'proto', 'vrf']);

/**
 * One line of `ip -6 neigh show` ("fd00::5 dev br0 lladdr 52:54:00:12:34:56 router REACHABLE"); undefined when the
 * line does not start with an IPv6 address. A link-layer address that is not a MAC is left out (no mac).
 */
export function parseNeighbourLine(line: string): NeighbourEntry | undefined {
  const fields = line.trim().split(/\s+/);
  const bytes = fields[0] ? parseIpv6(fields[0]) : undefined;
  if (!bytes) return undefined;
  const entry: NeighbourEntry = { address: formatIpv6(bytes), states: [] };
  for (let i = 1; i < fields.length; i++) {
    const field = fields[i]!;
    if (VALUED.has(field)) {
      const value = fields[++i];
      if (value === undefined) break;
      if (field === 'dev') entry.dev = value;
      if (field === 'lladdr' && MAC.test(value.toLowerCase())) entry.mac = value.toLowerCase();
    } else entry.states.push(field);
  }
  return entry;
}

/** An entry that says "this address is at this MAC" now. */
export function isUsable(entry: NeighbourEntry): boolean {
  return entry.mac !== undefined && !entry.states.includes('FAILED') && !entry.states.includes('INCOMPLETE');
}

export interface NeighbourStats {
  polls: number;
  pollFailures: number;
  linesInvalid: number;
  /** (address, MAC) pairs being tracked */
  tracked: number;
  /** pairs not tracked: MAX_TRACKED reached */
  trackedRefused: number;
  /** pairs dropped to make room for a newer one of the same MAC (MAX_PER_MAC) */
  trackedEvicted: number;
  /** neighbour monitor events, by kind: new (a new entry or a change), deleted, miss, failed (an address dropped at
   *  once), ignored (not usable, outside the /64, another device), invalid (not a neighbour line) */
  events: Record<'new' | 'deleted' | 'miss' | 'failed' | 'ignored' | 'invalid', number>;
  /** event batches applied to the address table (at most one per FLUSH_MS) */
  flushes: number;
  /** probes asked of the kernel (NeighbourProber) */
  probes: number;
}

export interface NeighbourLearnerOptions {
  bridge: string;
  /** the served /64 */
  network: Ipv6Bytes;
  table: GuestAddresses;
  /** the names lease and reservations give MACs (LocalNames.namesByMac), read once per poll or event batch */
  namesByMac: () => ReadonlyMap<string, string>;
  /** the neighbour table as text; default `ip -6 neigh show dev <bridge>` */
  read: () => Promise<string>;
  /** asks the kernel to check an address now (NeighbourProber.request); none: no probes */
  probe?: (address: string, mac: string) => void;
  logger: Logger;
  now?: () => number;
  /** the full read's interval: POLL_MS alone, RESYNC_MS beside the monitor */
  pollMs?: number;
  graceMs?: number;
  /** default FRESH_MS */
  freshMs?: number;
  maxTracked?: number;
  maxPerMac?: number;
  /** events are applied in batches, at most one per flushMs (default FLUSH_MS) */
  flushMs?: number;
}

interface Pair {
  address: string;
  mac: string;
  firstSeen: number;
  lastSeen: number;
  /** the last poll or event that saw it confirmed (REACHABLE, PERMANENT): the guest answered for it lately (DELAY
   *  and PROBE are the kernel checking a STALE entry, not an answer) */
  lastConfirmed: number;
  /** the last probe asked for it */
  lastProbed: number;
}

/** issue 14: how long a confirmation keeps an address "in use" for the ordering below */
export const FRESH_MS = 60_000;
/** the full read beside the monitor: catches what the events missed, and keeps present entries' lastSeen fresh
 *  (well within GRACE_MS) */
export const RESYNC_MS = 30_000;
/** pairs tracked per MAC (a guest with ever new addresses churns its own pairs, not everybody's) */
export const MAX_PER_MAC = 32;
/** event batches: at most one table update per this */
export const FLUSH_MS = 100;
/** one probe per (address, MAC) per this at most */
export const PROBE_EVERY_MS = 30_000;
const CONFIRMED = ['REACHABLE', 'PERMANENT'];

export class NeighbourLearner {
  private readonly pairs = new Map<string, Pair>();
  /** mac → address → pair */
  private readonly byMac = new Map<string, Map<string, Pair>>();
  /** address → the pairs holding it (usually one) */
  private readonly byAddress = new Map<string, Pair[]>();
  /** MACs published to the table */
  private readonly macs = new Set<string>();
  /** MACs whose pairs changed since the last flush */
  private readonly dirty = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private pollMs = POLL_MS;
  private closed = false;
  /** when the last full dump was read: pairs seen since are "present" */
  private lastDump = -Infinity;
  private readonly now: () => number;
  private readonly counts = { polls: 0, pollFailures: 0, linesInvalid: 0, trackedRefused: 0, trackedEvicted: 0, flushes: 0, probes: 0 };
  private readonly events = { new: 0, deleted: 0, miss: 0, failed: 0, ignored: 0, invalid: 0 };

  constructor(private readonly opts: NeighbourLearnerOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    void this.poll();
    this.pollMs = this.opts.pollMs ?? POLL_MS;
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  /** The full read's interval from now on (RESYNC_MS while the monitor runs, POLL_MS while it is down). */
  setPollMs(ms: number): void {
    if (this.closed || this.pollMs === ms) return;
    this.pollMs = ms;
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.poll(), ms);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.flushTimer);
    this.opts.table.clearSource('slaac');
  }

  stats(): NeighbourStats {
    return { ...this.counts, tracked: this.pairs.size, events: { ...this.events } };
  }

  /** One read of the table (a poll already running is joined). */
  poll(): Promise<void> {
    this.polling ??= this.readOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async readOnce(): Promise<void> {
    let text: string;
    try {
      text = await this.opts.read();
    } catch (err) {
      this.counts.pollFailures++;
      this.opts.logger.warnLimited('ipv6-neigh', 'cannot read the IPv6 neighbour table; guest AAAA names are not updated', { error: String(err) });
      return;
    }
    if (this.closed) return;
    this.counts.polls++;
    this.learn(text);
  }

  /** Updates the pairs from one table dump and hands every guest's addresses to the table. */
  learn(text: string): void {
    const now = this.now();
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const entry = parseNeighbourLine(line);
      if (!entry) {
        this.counts.linesInvalid++;
        continue;
      }
      this.apply(entry, now);
    }
    this.lastDump = now;
    const grace = this.opts.graceMs ?? GRACE_MS;
    for (const pair of [...this.pairs.values()]) if (now - pair.lastSeen > grace) this.remove(pair);
    for (const mac of this.byMac.keys()) this.dirty.add(mac);
    this.flush();
  }

  /**
   * One line of `ip -6 monitor neigh` (neigh-monitor-line.ts); applied to the address table in a batch at most
   * FLUSH_MS later, so a burst of events costs one table update per guest concerned.
   */
  observeLine(line: string): void {
    if (line.trim() === '') return;
    const event = parseMonitorLine(line);
    if (!event) {
      this.events.invalid++;
      return;
    }
    this.observe(event);
  }

  observe(event: NeighbourEvent): void {
    if (this.closed) return;
    // a deleted entry that was usable is gone from the table the way a vanished line is in a dump: it ages out over
    // GRACE_MS (the kernel's garbage collector removes unused STALE entries of guests still there); a FAILED one is
    // dropped now
    if (event.kind === 'miss' || (event.kind === 'deleted' && !event.entry.states.includes('FAILED'))) {
      this.events[event.kind]++;
      return;
    }
    this.events[event.kind]++;
    this.apply(event.entry, this.now());
    if (this.dirty.size > 0 && !this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, this.opts.flushMs ?? FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** One entry (from a dump or an event) into the pairs; the MACs concerned are marked for the next flush. */
  private apply(entry: NeighbourEntry, now: number): void {
    if (entry.dev !== undefined && entry.dev !== this.opts.bridge) {
      this.events.ignored++;
      return;
    }
    if (!isUsable(entry)) {
      // issue 14: the host tried the address and nobody answered: it is gone now (a guest that changed its SLAAC
      // address), so forwards and AAAA stop pointing at it without waiting out the grace time
      if (entry.states.includes('FAILED')) {
        const held = this.byAddress.get(entry.address);
        if (held) {
          this.events.failed++;
          for (const pair of [...held]) this.remove(pair);
          return;
        }
      }
      this.events.ignored++;
      return;
    }
    const bytes = parseIpv6(entry.address)!;
    if (isLinkLocal(bytes) || !sameBytes(networkOf(bytes, 64), this.opts.network)) {
      this.events.ignored++;
      return;
    }
    const mac = entry.mac!;
    const confirmed = entry.states.some((st) => CONFIRMED.includes(st)) ? now : -Infinity;
    const ofMac = this.byMac.get(mac);
    const pair = ofMac?.get(entry.address);
    if (pair) {
      pair.lastSeen = now;
      if (confirmed > pair.lastConfirmed) {
        pair.lastConfirmed = confirmed;
        this.dirty.add(mac);
      } else if (entry.states.includes('STALE')) this.checkFirstWentStale(pair, now);
      // a present pair unchanged: its place only moves with time (the next flush of a dump sorts it again)
      return;
    }
    if (ofMac && ofMac.size >= (this.opts.maxPerMac ?? MAX_PER_MAC)) {
      this.counts.trackedEvicted++;
      this.remove(this.sorted([...ofMac.values()], now).at(-1)!);
    } else if (this.pairs.size >= (this.opts.maxTracked ?? MAX_TRACKED)) {
      this.counts.trackedRefused++;
      return;
    }
    // a guest showing a new address: are the ones published for it still its own? (a SLAAC guest that moved on)
    for (const address of this.opts.table.addressesOfMac(mac)) {
      const old = this.byMac.get(mac)?.get(address);
      if (old) this.probe(old, now);
    }
    this.add({ address: entry.address, mac, firstSeen: now, lastSeen: now, lastConfirmed: confirmed, lastProbed: -Infinity });
  }

  /** A guest's first (published) address went STALE while another of its addresses is in use: still there? */
  private checkFirstWentStale(pair: Pair, now: number): void {
    if (this.opts.table.addressesOfMac(pair.mac)[0] !== pair.address) return;
    const freshMs = this.opts.freshMs ?? FRESH_MS;
    for (const other of this.byMac.get(pair.mac)?.values() ?? []) {
      if (other !== pair && now - other.lastConfirmed <= freshMs) {
        this.probe(pair, now);
        return;
      }
    }
  }

  private probe(pair: Pair, now: number): void {
    if (!this.opts.probe || now - pair.lastProbed < PROBE_EVERY_MS) return;
    pair.lastProbed = now;
    this.counts.probes++;
    this.opts.probe(pair.address, pair.mac);
  }

  private add(pair: Pair): void {
    this.pairs.set(`${pair.address}|${pair.mac}`, pair);
    let ofMac = this.byMac.get(pair.mac);
    if (!ofMac) this.byMac.set(pair.mac, (ofMac = new Map()));
    ofMac.set(pair.address, pair);
    this.byAddress.set(pair.address, [...(this.byAddress.get(pair.address) ?? []), pair]);
    this.dirty.add(pair.mac);
  }

  private remove(pair: Pair): void {
    this.pairs.delete(`${pair.address}|${pair.mac}`);
    const ofMac = this.byMac.get(pair.mac);
    ofMac?.delete(pair.address);
    if (ofMac?.size === 0) this.byMac.delete(pair.mac);
    const rest = (this.byAddress.get(pair.address) ?? []).filter((p) => p !== pair);
    if (rest.length) this.byAddress.set(pair.address, rest);
    else this.byAddress.delete(pair.address);
    this.dirty.add(pair.mac);
  }

  /**
   * The addresses in use (confirmed within FRESH_MS) first, then those present (seen in the last dump or an event
   * since), the oldest first within each: a guest's long-standing addresses keep their place under the per-guest cap
   * while it uses them, and the first address (the one IPv6 forwards by name take, issue 14) moves to a guest's new
   * address once the old one is gone (FAILED: at once; the learner probes the old one when the new one shows up, so
   * that takes seconds) or no longer used (FRESH_MS).
   */
  private sorted(list: Pair[], now: number): Pair[] {
    const freshMs = this.opts.freshMs ?? FRESH_MS;
    const fresh = (p: Pair): number => (now - p.lastConfirmed <= freshMs ? 1 : 0);
    const present = (p: Pair): number => (p.lastSeen >= this.lastDump ? 1 : 0);
    return list.sort((a, b) => fresh(b) - fresh(a) || present(b) - present(a) || a.firstSeen - b.firstSeen);
  }

  /** Hands the addresses of every MAC marked since the last flush to the table. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.dirty.size === 0 || this.closed) return;
    this.counts.flushes++;
    const now = this.now();
    const names = this.opts.namesByMac();
    const dirty = [...this.dirty];
    this.dirty.clear();
    // guests that are gone first, so their addresses are free for the rest
    for (const mac of dirty) {
      if (this.byMac.has(mac) || !this.macs.has(mac)) continue;
      this.opts.table.set('slaac', mac, undefined, []);
      this.macs.delete(mac);
    }
    for (const mac of dirty) {
      const ofMac = this.byMac.get(mac);
      if (!ofMac) continue;
      this.opts.table.set('slaac', mac, names.get(mac), this.sorted([...ofMac.values()], now).map((p) => p.address));
      this.macs.add(mac);
    }
  }
}
