/**
 * Types for the part of the nftables JSON schema (libnftables-json(5), nft 1.0.6) that natd emits, so the ruleset
 * builder is type-checked: a chain priority can only be a number (a string such as "dstnat" is accepted by nft
 * 1.0.6 and silently yields a chain without a hook), a map's data type is a single type (nft 1.0.6 cannot create a
 * concatenated data map from JSON), and every command names its family and table.
 */

export type NftFamily = 'ip' | 'ip6' | 'inet';

/** The data types natd's maps are keyed or valued by. */
export type NftDataType = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';

export interface NftTable {
  family: NftFamily;
  name: string;
}

export type NftChainType = 'filter' | 'nat';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type NftPolicy = 'accept' | 'drop';

/** A base chain: natd creates no regular chains. */
export interface NftChain {
  family: NftFamily;
  table: string;
  name: string;
  type: NftChainType;
  hook: NftHook;
  /** Always an integer: see the module comment. */
  prio: number;
  policy: NftPolicy;
}

/** A key or value inside a set/map element: a literal, or a concatenation of literals. */
export type NftLiteral = string | number;
export type NftElementKey = NftLiteral | { concat: NftLiteral[] };
/** One map element as [key, value]. */
export type NftMapElement = [NftElementKey, NftLiteral];

export interface NftMap {
  family: NftFamily;
  table: string;
  name: string;
  /** One type, or the parts of a concatenated key. */
  type: NftDataType | NftDataType[];
  /** The data type (never a concatenation: nft 1.0.6 JSON cannot create one). */
  map: NftDataType;
  elem?: NftMapElement[];
}

/** issue 17: a named set (the routed ports), so its elements change at runtime without a rebuild. */
export interface NftSet {
  family: NftFamily;
  table: string;
  name: string;
  type: NftDataType;
  elem?: NftLiteral[];
}

/** Element add: [key, value] pairs for a map, keys for a set (issue 17); element delete: keys only. */
export interface NftElementAdd {
  family: NftFamily;
  table: string;
  name: string;
  elem: NftMapElement[] | NftLiteral[];
}
export interface NftElementDelete {
  family: NftFamily;
  table: string;
  name: string;
  elem: NftElementKey[];
}

// ---- expressions (the right-hand and left-hand sides of matches, and statement arguments)

export type NftPayloadProtocol = 'ip' | 'th' | 'tcp' | 'udp' | 'icmp' | 'ip6' | 'icmpv6'; // ip6, icmpv6: issue 14
export interface NftPayload {
  payload: { protocol: NftPayloadProtocol; field: 'saddr' | 'daddr' | 'sport' | 'dport' | 'type' };
}
export interface NftMeta {
  meta: { key: 'iifname' | 'oifname' | 'l4proto' | 'nfproto' };
}
export interface NftCt {
  ct: { key: 'state' | 'status' };
}
export interface NftFib {
  fib: { result: 'type'; flags: ['daddr'] };
}
export interface NftPrefix {
  prefix: { addr: string; len: number };
}
/** An anonymous set, e.g. `{ tcp, udp }`. */
export interface NftAnonSet {
  set: NftLiteral[];
}
export interface NftConcat {
  concat: NftExpression[];
}
/** A map lookup: `key map @name`. */
export interface NftMapLookup {
  map: { key: NftExpression; data: `@${string}` };
}
export interface NftRange {
  range: [number, number];
}

export type NftExpression =
  | NftLiteral
  | NftLiteral[]
  | NftPayload
  | NftMeta
  | NftCt
  | NftFib
  | NftPrefix
  | NftAnonSet
  | NftConcat
  | NftMapLookup
  | NftRange;

// ---- statements (the items of a rule's expr list)

export type NftMatchOp = '==' | '!=' | 'in';
export interface NftMatch {
  match: { op: NftMatchOp; left: NftExpression; right: NftExpression };
}
export interface NftAccept {
  accept: null;
}
export interface NftReject {
  reject: { type: 'icmpx'; expr: 'port-unreachable' };
}
export interface NftMasquerade {
  masquerade: null | { port: NftRange };
}
export interface NftDnat {
  dnat: { family: 'ip' | 'ip6'; addr: NftExpression; port?: NftExpression };
}
/** issue 14: spoofed IPv6 sources from the bridge are dropped (no reject: its ICMPv6 error would go to the victim) */
export interface NftDrop {
  drop: null;
}

/** DNS to and from the gateway skips connection tracking (raw_prerouting / raw_output in ruleset.ts) */
export interface NftNotrack {
  notrack: null;
}

export type NftStatement = NftMatch | NftAccept | NftReject | NftMasquerade | NftDnat | NftDrop | NftNotrack;

export interface NftRule {
  family: NftFamily;
  table: string;
  chain: string;
  expr: NftStatement[];
  comment?: string;
}

// ---- commands and the batch

export type NftCommand =
  | { add: { table: NftTable } }
  | { delete: { table: NftTable } }
  | { add: { chain: NftChain } }
  | { add: { map: NftMap } }
  | { add: { set: NftSet } }
  | { add: { rule: NftRule } }
  | { add: { element: NftElementAdd } }
  | { delete: { element: NftElementDelete } };

/** What `nft -j -f` reads: all commands apply atomically or not at all. */
export interface NftBatch {
  nftables: NftCommand[];
}
