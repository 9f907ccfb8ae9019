/**
 * issue 14: the DHCPv6 data model shared by the core, the lease journal and the transport.
 * Addresses are RFC 5952 text ("fd00:10:10::5") so leases read the same in memory, in the journal, in `natd leases`;
 * DUIDs are formatDuid text ("00:03:00:01:52:54:00:aa:bb:cc"); times are ms since the epoch.
 */

/** One address bound to one IA_NA of one client (DUID + IAID). */
export interface Lease6 {
  duid: string;
  iaid: number;
  address: string;
  /** the client's MAC when known (from its DUID, else the link-layer source the transport saw) */
  mac?: string;
  /** a reservation's name */
  hostname?: string;
  /** end of the valid lifetime; INFINITE_EXPIRES_AT (dhcp/types.ts) for an infinite one */
  expiresAt: number;
}

/** What the core wants persisted before the reply leaves (journal records bind6/release6/decline6). */
export type Lease6Change =
  | { kind: 'bind6'; lease: Lease6 }
  | { kind: 'release6'; duid: string; iaid: number; address: string }
  | { kind: 'decline6'; address: string; until: number };

/** The v6 state a journal replays to. */
export interface Loaded6State {
  leases: Lease6[];
  declined: { address: string; until: number }[];
}

/** What the core needs from the lease journal (src/dhcp/lease-store.ts's LeaseStore is one). */
export interface Lease6Journal {
  /** resolves once the changes are durable (write + fdatasync); the value (issue 18: the v4 journal's reply outcome) is not used */
  commit(changes: readonly Lease6Change[]): Promise<unknown>;
  /** the unexpired v6 leases and quarantined addresses at `now` */
  load6(now: number): Loaded6State;
}

/** A fixed address for one client: by DUID (exact) or by MAC. */
export interface Dhcp6Reservation {
  /** formatDuid text; matched exactly */
  duid?: string;
  /** lower-case aa:bb:cc:dd:ee:ff; matched against the DUID's MAC, else the link-layer source */
  mac?: string;
  /** RFC 5952 text, inside the served /64 */
  address: string;
  hostname?: string;
}
