/**
 * issue 14: the DHCPv6 records of the lease journal (src/dhcp/lease-store.ts): their JSON form, their parser and
 * their replay. Kept here so the journal module only dispatches on the record's `op`.
 *
 *   {"op":"bind6","duid":"00:03:00:01:52:54:00:aa:bb:cc","iaid":1,"address":"fd00::5","expiresAt":...}
 *   {"op":"release6","duid":"...","iaid":1,"address":"fd00::5"}
 *   {"op":"decline6","address":"fd00::5","until":...}
 *
 * Addresses are stored in RFC 5952 form; a line whose address is not canonical, or whose fields are not what natd
 * writes, does not parse (and counts as damage, as for v4 lines).
 */
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';
import type { Lease6, Lease6Change, Loaded6State } from './types.js';

export type Journal6Record =
  | { op: 'bind6'; duid: string; iaid: number; address: string; mac?: string; hostname?: string; expiresAt: number }
  | { op: 'release6'; duid: string; iaid: number; address: string }
  | { op: 'decline6'; address: string; until: number };

export const V6_OPS: ReadonlySet<string> = new Set(['bind6', 'release6', 'decline6']);

const DUID_TEXT = /^[0-9a-f]{2}(?::[0-9a-f]{2}){2,129}$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

export function isLease6Change(change: { kind: string }): change is Lease6Change {
  return change.kind === 'bind6' || change.kind === 'release6' || change.kind === 'decline6';
}

export function toRecord6(change: Lease6Change): Journal6Record {
  switch (change.kind) {
    case 'bind6': {
      const l = change.lease;
      const rec: Journal6Record = { op: 'bind6', duid: l.duid, iaid: l.iaid, address: l.address, expiresAt: l.expiresAt };
      if (l.mac !== undefined) rec.mac = l.mac;
      if (l.hostname !== undefined) rec.hostname = l.hostname;
      return rec;
    }
    case 'release6':
      return { op: 'release6', duid: change.duid, iaid: change.iaid, address: change.address };
    case 'decline6':
      return { op: 'decline6', address: change.address, until: change.until };
  }
}

function canonicalAddress(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const bytes = parseIpv6(v);
  return bytes && formatIpv6(bytes) === v ? v : undefined;
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isIaid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** A parsed v6 record as a change; undefined when it is not one natd wrote. */
export function parseRecord6(r: Record<string, unknown>): Lease6Change | undefined {
  const address = canonicalAddress(r.address);
  if (address === undefined) return undefined;
  switch (r.op) {
    case 'bind6': {
      if (typeof r.duid !== 'string' || !DUID_TEXT.test(r.duid) || !isIaid(r.iaid) || !isTime(r.expiresAt)) return undefined;
      if (r.mac !== undefined && (typeof r.mac !== 'string' || !MAC.test(r.mac))) return undefined;
      if (r.hostname !== undefined && (typeof r.hostname !== 'string' || r.hostname.length > 255)) return undefined;
      const lease: Lease6 = { duid: r.duid, iaid: r.iaid, address, expiresAt: r.expiresAt };
      if (typeof r.mac === 'string') lease.mac = r.mac;
      if (typeof r.hostname === 'string') lease.hostname = r.hostname;
      return { kind: 'bind6', lease };
    }
    case 'release6':
      if (typeof r.duid !== 'string' || !DUID_TEXT.test(r.duid) || !isIaid(r.iaid)) return undefined;
      return { kind: 'release6', duid: r.duid, iaid: r.iaid, address };
    case 'decline6':
      return isTime(r.until) ? { kind: 'decline6', address, until: r.until } : undefined;
    default:
      return undefined;
  }
}

/** The v6 state the journal describes: one lease per DUID+IAID, one binding per address, quarantined addresses. */
export class Replay6State {
  private readonly byKey = new Map<string, Lease6>();
  private readonly byAddress = new Map<string, string>();
  private readonly declined = new Map<string, number>();

  get size(): number {
    return this.byKey.size + this.declined.size;
  }

  apply(change: Lease6Change): void {
    switch (change.kind) {
      case 'bind6': {
        const { lease } = change;
        const key = `${lease.duid}|${lease.iaid}`;
        this.remove(key);
        const holder = this.byAddress.get(lease.address);
        if (holder !== undefined) this.remove(holder);
        this.declined.delete(lease.address);
        this.byKey.set(key, Object.freeze({ ...lease }));
        this.byAddress.set(lease.address, key);
        break;
      }
      case 'release6': {
        const key = `${change.duid}|${change.iaid}`;
        if (this.byKey.get(key)?.address === change.address) this.remove(key);
        break;
      }
      case 'decline6': {
        const holder = this.byAddress.get(change.address);
        if (holder !== undefined) this.remove(holder);
        this.declined.set(change.address, change.until);
        break;
      }
    }
  }

  private remove(key: string): void {
    const old = this.byKey.get(key);
    if (!old) return;
    this.byKey.delete(key);
    if (this.byAddress.get(old.address) === key) this.byAddress.delete(old.address);
  }

  live(now: number): Loaded6State {
    return {
      leases: [...this.byKey.values()].filter((l) => l.expiresAt > now),
      declined: [...this.declined].filter(([, until]) => until > now).map(([address, until]) => ({ address, until })),
    };
  }

  prune(now: number): void {
    for (const [key, lease] of this.byKey) if (lease.expiresAt <= now) this.remove(key);
    for (const [address, until] of this.declined) if (until <= now) this.declined.delete(address);
  }

  /** The live state as changes, for compaction. */
  snapshot(now: number): Lease6Change[] {
    const { leases, declined } = this.live(now);
    return [...leases.map((lease) => ({ kind: 'bind6' as const, lease })), ...declined.map((d) => ({ kind: 'decline6' as const, ...d }))];
  }
}
