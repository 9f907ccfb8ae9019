/**
 * The DHCP data model shared by codec, request parser, pure core, lease store and transport.
 * Addresses are unsigned 32-bit numbers (see net/ipv4.ts); MACs are lower-case "aa:bb:cc:dd:ee:ff" strings;
 * client ids are lower-case hex strings; times are milliseconds since the epoch.
 */

export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpMessageTypeCode = (typeof DhcpMessageType)[keyof typeof DhcpMessageType];

/** A decoded BOOTP/DHCP packet (RFC 2131 §2), options still raw by code (overload already merged). */
export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** 16 raw bytes */
  chaddr: Uint8Array;
  sname: string;
  file: string;
  /** option code -> concatenated value (RFC 3396 concatenation of repeated options) */
  options: Map<number, Uint8Array>;
}

/** A validated client message: what the core decides on. */
export interface DhcpRequest {
  type: DhcpMessageTypeCode;
  xid: number;
  flags: number;
  /** broadcast bit (0x8000) set */
  broadcast: boolean;
  ciaddr: number;
  giaddr: number;
  hops: number;
  htype: number;
  /** chaddr as MAC string (first hlen bytes when htype 1 / hlen 6) */
  mac: string;
  /** raw chaddr bytes, echoed in replies */
  chaddr: Uint8Array;
  /** option 61 when present (hex), else `${htype hex}` + chaddr hex — the lease key */
  clientId: string;
  /** option 50 */
  requestedAddress?: number;
  /** option 54 */
  serverId?: number;
  /** option 55, in client order */
  parameterRequestList: number[];
  /** option 57, clamped to [576, 1500] */
  maxMessageSize: number;
  /** option 12, sanitised to a DNS label; undefined when absent or nothing usable */
  hostname?: string;
  /** option 81 name (first label, sanitised) when present */
  fqdnHostname?: string;
  /** option 81 flags, echoed back when the client sent it */
  fqdnFlags?: number;
  /** option 51 */
  requestedLeaseSeconds?: number;
  /** option 60 (vendor class), text */
  vendorClass?: string;
  /** option 80 present (RFC 4039 Rapid Commit): a DISCOVER may be answered with an ACK */
  rapidCommit?: boolean;
  /** every option as received (issue 16: tag rules such as --dhcp-match read them); never used to decide leases */
  rawOptions?: ReadonlyMap<number, Uint8Array>;
}

/** A lease as stored and served. */
export interface Lease {
  clientId: string;
  mac: string;
  address: number;
  /** sanitised DNS label, when the client gave one or a reservation names it */
  hostname?: string;
  /** ms epoch; an infinite lease has INFINITE_EXPIRES_AT (finite, so JSON and Date keep it) */
  expiresAt: number;
}

/** Option 51's "infinite" (RFC 2131 §3.3): 0xffffffff seconds. */
export const INFINITE_LEASE_SECONDS = 0xffffffff;
/** expiresAt of an infinite lease: the latest time a JS Date can hold, which no clock reaches. */
export const INFINITE_EXPIRES_AT = 8.64e15;

/** A static MAC -> address reservation, optionally named. */
export interface Reservation {
  mac: string;
  address: number;
  hostname?: string;
  /** dnsmasq dhcp-host `set:TAG`: tags the host's requests carry, for tagged --dhcp-option specs */
  tags?: readonly string[];
  /** options for this host alone, over every other setting (parsed --dhcp-option specs without tags) */
  options?: readonly import('./option-spec.js').OptionSpec[];
  /** this host's lease time in seconds (INFINITE_LEASE_SECONDS: infinite), instead of the range's */
  leaseSeconds?: number;
}

/** What the core wants persisted before the reply leaves. */
export type LeaseChange =
  | { kind: 'bind'; lease: Lease }
  | { kind: 'release'; clientId: string; address: number }
  | { kind: 'decline'; address: number; until: number };

/** Where a reply goes (RFC 2131 §4.1). The transport turns this into a socket send. */
export type ReplyDestination =
  | { kind: 'broadcast'; port: 68 }
  /** unicast to an address the client does not own yet: seed the neighbour entry with mac first */
  | { kind: 'unicast-new'; address: number; mac: string; port: 68 }
  /** unicast to a configured client (ciaddr, always inside the bridge's subnet) */
  | { kind: 'unicast'; address: number; port: 68 };

export interface DhcpReply {
  packet: DhcpPacket;
  destination: ReplyDestination;
}

/** The core's answer to one request: an optional reply, the changes to persist first, and a note for counters/logs. */
export interface CoreResult {
  reply?: DhcpReply;
  changes: LeaseChange[];
  /** short machine-readable outcome, e.g. 'offer', 'ack', 'nak:wrong-subnet', 'ignore:other-server', 'ignore:pool-exhausted' */
  outcome: string;
  /**
   * Set with outcome 'probe:offer' or 'probe:decline': the core decides only once a conflict probe of `address` (for
   * the requesting client's MAC) has given a verdict. Nothing is sent meanwhile; the caller probes and hands the
   * verdict back with the request through DhcpServerCore.probeDone.
   */
  probe?: { address: number };
}

/**
 * What a conflict probe found at an address (probe.ts): 'in-use' another host answered; 'free' nobody (or only the
 * client itself) did; 'skipped' the probe cannot run at all (nothing can be learned); 'busy' no verdict now (probe
 * queue full, request not sent), so an address must not be offered on it.
 */
export type ProbeVerdict = 'in-use' | 'free' | 'skipped' | 'busy';

/** Option codes natd reads or writes (RFC 2132 unless noted). */
export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS_SERVERS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  BROADCAST_ADDRESS: 28,
  NTP_SERVERS: 42,
  REQUESTED_ADDRESS: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  /** RFC 4039 */
  RAPID_COMMIT: 80,
  /** RFC 4702 */
  CLIENT_FQDN: 81,
  /** RFC 3397 */
  DOMAIN_SEARCH: 119,
  /** RFC 3442 */
  CLASSLESS_ROUTES: 121,
  END: 255,
} as const;

export const DHCP_MAGIC_COOKIE = 0x63825363;
/** chaddr is 16 bytes (RFC 2131 figure 1) */
export const MAX_HLEN = 16;
/** the BROADCAST bit of the flags field (RFC 2131 §2) */
export const BROADCAST_FLAG = 0x8000;
/** RFC 2131: every client accepts 576-byte IP datagrams; option 57 counts the same way */
export const MIN_MAX_MESSAGE_SIZE = 576;
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
