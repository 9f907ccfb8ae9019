/**
 * What natd answers from its own data (issue 15): the operator's records (record-zone.ts) together with the names of
 * the gateway, hosts files, reservations and leases (local-names.ts). Pure: (question, zone, names) → answer.
 *
 * Precedence for one name, most specific first, as dnsmasq does it:
 *   1. an operator record of that exact name (host-record, cname, srv-host, txt-record, mx-host, ptr-record);
 *      a type the records do not hold falls back to the hosts-file / reservation name of the same owner, else NODATA;
 *   2. the gateway, hosts files, reservations, leases (LocalNames, with its own precedence);
 *   3. an `address=/d/` rule covering the name ("/etc/hosts and DHCP leases override this for individual names",
 *      dnsmasq(8)); unlike dnsmasq, a guest's lease never claims a name an operator record or address rule covers
 *      (LeaseNames refuses it), so only the operator's own names override a rule;
 *   4. nothing: the caller's policy (domain-needed, bogus-priv, forward).
 *
 * CNAME: the chain is followed while its targets are local, and the answer carries every CNAME and the final
 * records (RFC 1034 §4.3.2). A target natd does not know ends the answer at the CNAME: the client's resolver follows
 * it, as with dnsmasq, whose cname targets are meant to be local and which never forwards on a client's behalf to
 * complete a chain. Negative answers carry the SOA of the zone the name lies in (RFC 2308).
 */
import type { LocalRecord, LocalSoa } from './answers.js';
import type { LocalNames } from './local-names.js';
import type { RecordZone } from './record-zone.js';
import { DNS_CLASS_IN, DnsRcode, DnsType, type DnsQuestion } from './types.js';

export interface ResolvedAnswer {
  rcode: number;
  records: LocalRecord[];
  authoritative: true;
  /** RFC 2308: in the authority section of a negative answer */
  soa?: LocalSoa;
}

/** RFC 1034 allows any length; 8 links is what resolvers follow in practice (BIND's limit is 16, Unbound's 11). */
const MAX_CHAIN = 8;

type Step = { kind: 'answer'; answer: ResolvedAnswer } | { kind: 'cname'; target: string; ttl: number } | { kind: 'none' };

const NONE: Step = { kind: 'none' };

/** The local answer to `question`, or undefined when natd has nothing to say about the name (the policy decides). */
export function resolveLocally(question: DnsQuestion, zone: RecordZone, names: LocalNames): ResolvedAnswer | undefined {
  if (question.class !== DNS_CLASS_IN) return undefined;
  if (zone.empty) return withNegativeSoa(names.lookup(question), question.name, zone);
  const first = resolveOne(question, zone, names);
  if (first.kind === 'answer') return first.answer;
  if (first.kind === 'none') return undefined;

  const chain: LocalRecord[] = [{ type: DnsType.CNAME, ttl: first.ttl, data: first.target }];
  let current = first.target;
  for (let hop = 1; hop < MAX_CHAIN; hop++) {
    const step = resolveOne({ name: current, type: question.type, class: DNS_CLASS_IN }, zone, names);
    if (step.kind === 'none') break; // not ours: the client's resolver follows the CNAME
    if (step.kind === 'answer') {
      const { rcode, records, soa } = step.answer;
      const owned = records.map((r) => ({ ...r, name: current }));
      return { rcode, records: [...chain, ...owned], authoritative: true, ...(soa && owned.length === 0 ? { soa } : {}) };
    }
    chain.push({ type: DnsType.CNAME, ttl: step.ttl, data: step.target, name: current });
    current = step.target;
  }
  return { rcode: DnsRcode.NOERROR, records: chain, authoritative: true };
}

function resolveOne(question: DnsQuestion, zone: RecordZone, names: LocalNames): Step {
  const { name, type } = question;
  const node = zone.node(name);
  if (node) {
    if (node.cname) {
      if (type === DnsType.CNAME || type === DnsType.ANY) return answer(DnsRcode.NOERROR, [{ type: DnsType.CNAME, ttl: node.cname.ttl, data: node.cname.target }]);
      return { kind: 'cname', target: node.cname.target, ttl: node.cname.ttl };
    }
    const records = type === DnsType.ANY ? [...node.rrsets.values()].flat() : node.rrsets.get(type);
    if (records && records.length > 0) return answer(DnsRcode.NOERROR, records);
    const fromNames = names.lookup(question);
    if (fromNames && fromNames.records.length > 0) return { kind: 'answer', answer: fromNames };
    return answer(DnsRcode.NOERROR, [], zone.soaFor(zone.zoneOf(name) ?? name));
  }
  const fromNames = names.lookup(question);
  if (fromNames && fromNames.rcode === DnsRcode.NOERROR) return { kind: 'answer', answer: withNegativeSoa(fromNames, name, zone)! };
  const rule = zone.wildcardFor(name);
  if (rule) {
    const soa = zone.soaFor(rule.domain);
    if (rule.nxdomain) return answer(DnsRcode.NXDOMAIN, [], soa);
    const records = type === DnsType.A ? rule.a : type === DnsType.AAAA ? rule.aaaa : type === DnsType.ANY ? [...rule.a, ...rule.aaaa] : [];
    return answer(DnsRcode.NOERROR, records, records.length ? undefined : soa);
  }
  if (fromNames) return { kind: 'answer', answer: withNegativeSoa(fromNames, name, zone)! };
  return NONE;
}

function answer(rcode: number, records: LocalRecord[], soa?: LocalSoa): Step {
  return { kind: 'answer', answer: { rcode, records, authoritative: true, ...(soa ? { soa } : {}) } };
}

/** A LocalNames answer with the SOA of its zone added when it is negative (NXDOMAIN or NODATA). */
function withNegativeSoa(found: { rcode: number; records: LocalRecord[]; authoritative: true } | undefined, name: string, zone: RecordZone): ResolvedAnswer | undefined {
  if (!found || found.records.length > 0) return found;
  const apex = zone.zoneOf(name);
  return apex === undefined ? found : { ...found, soa: zone.soaFor(apex) };
}
