/**
 * issue 14: the guests' SLAAC addresses, learnt from the kernel's neighbour table on the bridge (`ip -6 neigh show
 * dev <bridge>`, read every POLL_MS) and handed to GuestAddresses as source 'slaac', grouped by MAC.
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
 * and unreadable line is counted.
 */
import type { Logger } from '../log.js';
import { formatIpv6, isLinkLocal, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from './address.js';
import type { GuestAddresses } from './guest-addresses.js';

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
}

export interface NeighbourLearnerOptions {
  bridge: string;
  /** the served /64 */
  network: Ipv6Bytes;
  table: GuestAddresses;
  /** the names lease and reservations give MACs (LocalNames.namesByMac), read once per poll */
  namesByMac: () => ReadonlyMap<string, string>;
  /** the neighbour table as text; default `ip -6 neigh show dev <bridge>` */
  read: () => Promise<string>;
  logger: Logger;
  now?: () => number;
  pollMs?: number;
  graceMs?: number;
  /** default FRESH_MS */
  freshMs?: number;
  maxTracked?: number;
}

interface Pair {
  address: string;
  mac: string;
  firstSeen: number;
  lastSeen: number;
  /** the last poll that saw it confirmed (REACHABLE, PERMANENT): the guest answered for it lately (DELAY and PROBE
   *  are the kernel checking a STALE entry, not an answer) */
  lastConfirmed: number;
}

/** issue 14: how long a confirmation keeps an address "in use" for the ordering below */
export const FRESH_MS = 60_000;
const CONFIRMED = ['REACHABLE', 'PERMANENT'];

export class NeighbourLearner {
  private readonly pairs = new Map<string, Pair>();
  private readonly macs = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly counts = { polls: 0, pollFailures: 0, linesInvalid: 0, trackedRefused: 0 };

  constructor(private readonly opts: NeighbourLearnerOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.opts.table.clearSource('slaac');
  }

  stats(): NeighbourStats {
    return { ...this.counts, tracked: this.pairs.size };
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
    const maxTracked = this.opts.maxTracked ?? MAX_TRACKED;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const entry = parseNeighbourLine(line);
      if (!entry) {
        this.counts.linesInvalid++;
        continue;
      }
      if (entry.dev !== undefined && entry.dev !== this.opts.bridge) continue;
      if (!isUsable(entry)) {
        // issue 14: the host tried the address and nobody answered: it is gone now (a guest that changed its SLAAC
        // address), so forwards and AAAA stop pointing at it without waiting out the grace time
        if (entry.states.includes('FAILED')) for (const [key, pair] of this.pairs) if (pair.address === entry.address) this.pairs.delete(key);
        continue;
      }
      const bytes = parseIpv6(entry.address)!;
      if (isLinkLocal(bytes) || !sameBytes(networkOf(bytes, 64), this.opts.network)) continue;
      const key = `${entry.address}|${entry.mac!}`;
      const pair = this.pairs.get(key);
      const confirmed = entry.states.some((st) => CONFIRMED.includes(st)) ? now : -Infinity;
      if (pair) {
        pair.lastSeen = now;
        pair.lastConfirmed = Math.max(pair.lastConfirmed, confirmed);
      }
      else if (this.pairs.size >= maxTracked) this.counts.trackedRefused++;
      else this.pairs.set(key, { address: entry.address, mac: entry.mac!, firstSeen: now, lastSeen: now, lastConfirmed: confirmed });
    }
    const grace = this.opts.graceMs ?? GRACE_MS;
    const byMac = new Map<string, Pair[]>();
    for (const [key, pair] of this.pairs) {
      if (now - pair.lastSeen > grace) this.pairs.delete(key);
      else byMac.set(pair.mac, [...(byMac.get(pair.mac) ?? []), pair]);
    }
    const names = this.opts.namesByMac();
    // guests that are gone first, so their addresses are free for the rest
    for (const mac of this.macs) if (!byMac.has(mac)) this.opts.table.set('slaac', mac, undefined, []);
    // the addresses in use (confirmed within FRESH_MS) first, then those seen in this dump, the oldest first within
    // each: a guest's long-standing addresses keep their place under the per-guest cap while it uses them, and the
    // first address (the one IPv6 forwards by name take, issue 14) moves to a guest's new address within about a
    // minute once the old one is no longer used (a STALE entry can outlive the address by far: GRACE_MS and beyond)
    const freshMs = this.opts.freshMs ?? FRESH_MS;
    const fresh = (p: Pair): number => (now - p.lastConfirmed <= freshMs ? 1 : 0);
    for (const [mac, list] of byMac) {
      list.sort((a, b) => fresh(b) - fresh(a) || b.lastSeen - a.lastSeen || a.firstSeen - b.firstSeen);
      this.opts.table.set('slaac', mac, names.get(mac), list.map((p) => p.address));
    }
    this.macs.clear();
    for (const mac of byMac.keys()) this.macs.add(mac);
  }
}
