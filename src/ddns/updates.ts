/**
 * The UPDATEs natd sends for one DNS name, and what the server's answer means. Pure: no sockets, no clock.
 *
 * Ownership: natd marks every name it publishes with a TXT record at the same name, `heritage=natd,owner=OWNER`
 * (OWNER = host/bridge; external-dns marks its records the same way), and only ever changes or deletes a name
 * whose TXT says it is natd's (an RFC 2136 prerequisite, checked by the server atomically with the change):
 *   publish, step 1: the name is free (no RR at all)  → add the record and the owner TXT
 *   publish, step 2: it is not free, but ours          → replace the record (the TXT stays)
 *            neither: somebody else's name: a conflict, left alone (counted, logged)
 *   remove:  it is ours                                → delete the record and the TXT (already gone or not ours:
 *            nothing to do)
 * This is RFC 4703's conflict resolution with a TXT instead of a per-client DHCID: within one natd the lease
 * names are already unique (lease-names.ts), so what must be protected are names natd did not create — an
 * administrator's records, another DHCP server's. (A DHCID would make natd's own name moving from one client to
 * another a conflict.)
 */
import { formatIpv4 } from '../net/ipv4.js';
import {
  addRecord, aRdata, deleteRecord, deleteRRset, encodeUpdate, nameRdata, Rcode, requireNameFree, requireRecord, txtRdata, TYPE_A, TYPE_PTR, TYPE_TXT,
  type UpdateRecord,
} from './message.js';

export type RecordKind = 'A' | 'PTR';

/** One DNS name natd manages: a forward A or a reverse PTR, in a zone. */
export interface ManagedName {
  kind: RecordKind;
  /** fully qualified, lower case, no trailing dot */
  name: string;
  zone: string;
}

/** The value a name should have: an IPv4 address (A) or a fully qualified name (PTR). */
export type RecordValue = number | string;

export function ownerText(owner: string): string {
  return `heritage=natd,owner=${owner}`;
}

function recordFor(target: ManagedName, value: RecordValue): { type: number; rdata: Uint8Array } {
  return target.kind === 'A' ? { type: TYPE_A, rdata: aRdata(value as number) } : { type: TYPE_PTR, rdata: nameRdata(value as string) };
}

export function describeValue(target: ManagedName, value: RecordValue | null): string {
  if (value === null) return 'absent';
  return target.kind === 'A' ? formatIpv4(value as number) : String(value);
}

/** The reverse name of an address: 10.10.0.5 → 5.0.10.10.in-addr.arpa. */
export function reverseName(address: number): string {
  return `${address & 0xff}.${(address >>> 8) & 0xff}.${(address >>> 16) & 0xff}.${address >>> 24}.in-addr.arpa`;
}

/** The in-addr.arpa zone holding a subnet: whole octets of the prefix (a /24 → 0.10.10.in-addr.arpa, a /20 → 10.10…). */
export function reverseZoneOf(network: number, prefix: number): string {
  const octets = Math.floor(prefix / 8);
  const labels: number[] = [];
  for (let i = 0; i < octets; i++) labels.unshift((network >>> (24 - 8 * i)) & 0xff);
  return [...labels, 'in-addr', 'arpa'].join('.');
}

export type Step = 'add-if-free' | 'replace-if-ours' | 'remove-if-ours';

/** The message for one step (unsigned; the client signs it). */
export function buildStep(id: number, step: Step, target: ManagedName, value: RecordValue | null, owner: string, ttl: number): Buffer {
  const txt = txtRdata(ownerText(owner));
  let prerequisites: UpdateRecord[];
  let updates: UpdateRecord[];
  if (step === 'remove-if-ours') {
    const type = target.kind === 'A' ? TYPE_A : TYPE_PTR;
    prerequisites = [requireRecord(target.name, TYPE_TXT, txt)];
    updates = [deleteRRset(target.name, type), deleteRecord(target.name, TYPE_TXT, txt)];
  } else {
    const { type, rdata } = recordFor(target, value!);
    if (step === 'add-if-free') {
      prerequisites = [requireNameFree(target.name)];
      updates = [addRecord(target.name, type, ttl, rdata), addRecord(target.name, TYPE_TXT, ttl, txt)];
    } else {
      prerequisites = [requireRecord(target.name, TYPE_TXT, txt)];
      updates = [deleteRRset(target.name, type), addRecord(target.name, type, ttl, rdata)];
    }
  }
  return encodeUpdate(id, target.zone, prerequisites, updates);
}

/** What an answer to a step means for the name. */
export type StepOutcome =
  | { kind: 'done' }
  | { kind: 'next'; step: Step }
  /** the name is somebody else's: not retried until its value changes */
  | { kind: 'conflict' }
  /** the server refused this name (REFUSED, NOTZONE, FORMERR…): retried later, other names go on */
  | { kind: 'name-failed'; rcode: number }
  /** the server cannot or will not update now (SERVFAIL, NOTAUTH): every name waits */
  | { kind: 'server-failed'; rcode: number };

export function interpret(step: Step, rcode: number): StepOutcome {
  if (rcode === Rcode.NOERROR) return { kind: 'done' };
  if (step === 'add-if-free' && rcode === Rcode.YXDOMAIN) return { kind: 'next', step: 'replace-if-ours' };
  if (step === 'replace-if-ours' && (rcode === Rcode.NXRRSET || rcode === Rcode.NXDOMAIN)) return { kind: 'conflict' };
  if (step === 'remove-if-ours' && (rcode === Rcode.NXRRSET || rcode === Rcode.NXDOMAIN)) return { kind: 'done' };
  if (rcode === Rcode.SERVFAIL || rcode === Rcode.NOTAUTH) return { kind: 'server-failed', rcode };
  return { kind: 'name-failed', rcode };
}
