/**
 * The control socket's commands in one typed table: each command's name, what its arguments are and what it
 * answers. The daemon's handlers (daemon/control-handlers.ts) are typed by it, the server validates incoming
 * arguments against the schemas that match it (control/validate.ts), and the CLI's `call()` (control/client.ts) is
 * typed by it, so handler and client cannot disagree.
 *
 * Wire format (unchanged since the first control socket): one JSON line `{"command": NAME, "args": {...}}` in, one
 * JSON line out: `{"ok": true, "result": ...}` or `{"ok": false, "error": TEXT, "code": NATD_ERR_...}`.
 * This module holds types only: the CLI loads it without zod.
 */
import type { ForwardRow } from '../nft/forward-set.js';
import type { StatusReport } from '../daemon/status.js';
import type { ControlStream } from './stream.js';

export type { ForwardRow } from '../nft/forward-set.js';
export type { StatusReport } from '../daemon/status.js';
// issue 17
import type { ExposeRow } from '../daemon/expose.js';
export type { ExposeRow } from '../daemon/expose.js';

/** A command that takes no arguments. */
export type NoArgs = Record<string, never>;

export interface LeaseRow {
  address: string;
  /** '' for a quarantined address */
  mac: string;
  hostname: string | undefined;
  /** ms since the epoch: when the lease, or the quarantine, ends */
  expiresAt: number;
  clientId: string;
  /** 'declined': a quarantined address (a probe confirmed the conflict) */
  state?: 'declined';
  /** issue 14: a DHCPv6 lease (address is IPv6, clientId the DUID): its IA_NA's IAID */
  iaid?: number;
}

export type ReservationSource = 'config' | 'hostsfile' | 'runtime';

export interface ReservationRow {
  mac: string;
  address: string;
  hostname: string | undefined;
  source: ReservationSource;
}

export interface AddReservationArgs {
  /** required for an IPv4 reservation; an IPv6 one needs a MAC or a DUID */
  mac?: string | undefined;
  /** IPv4 */
  address?: string | undefined;
  /** null is taken as no name (older clients sent it) */
  hostname?: string | null | undefined;
  /** issue 14: an IPv6 reservation (`fd00::5`, `[::5]`) and the client's DUID (hex bytes) */
  ipv6?: string | undefined;
  duid?: string | undefined;
}

export interface ForwardArgs {
  /** [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT */
  spec: string;
}

/** Every command: its arguments and its result. */
export interface ControlCommands {
  status: { args: NoArgs; result: StatusReport };
  leases: { args: NoArgs; result: LeaseRow[] };
  'reservations.list': { args: NoArgs; result: ReservationRow[] };
  'reservations.add': { args: AddReservationArgs; result: { mac: string; address: string; hostname: string | undefined; ipv6?: string } };
  'reservations.remove': { args: { key: string }; result: { mac: string; address: string } };
  'forwards.list': { args: NoArgs; result: ForwardRow[] };
  'forwards.add': { args: ForwardArgs; result: void };
  'forwards.remove': { args: ForwardArgs; result: void };
  reload: { args: NoArgs; result: void };
  /** Prometheus text */
  metrics: { args: NoArgs; result: string };
  /** lease events: the live leases as 'old', then add/old/del/renew as journaled, until either side closes */
  'leases.watch': { args: NoArgs; result: ControlStream };
  // issue 15: custom DNS records at runtime
  'records.list': { args: NoArgs; result: RecordRow[] };
  'records.add': { args: RecordArgs; result: RecordArgs };
  'records.remove': { args: RecordArgs; result: RecordArgs };
  // issue 17: name routes at runtime; add/remove answer the rows they changed
  'expose.list': { args: NoArgs; result: ExposeRow[] };
  'expose.add': { args: { spec: string }; result: ExposeRow[] };
  /** spec: a spec, or a name (every runtime route of it) */
  'expose.remove': { args: { spec: string }; result: ExposeRow[] };
}

export interface RecordArgs {
  /** host-record, cname, srv-host, txt-record, mx-host, ptr-record, address */
  kind: string;
  /** the value in dnsmasq's syntax */
  spec: string;
}

export interface RecordRow extends RecordArgs {
  /** config or runtime */
  source: string;
}

export type CommandName = keyof ControlCommands;
export type ArgsOf<K extends CommandName> = ControlCommands[K]['args'];
export type ResultOf<K extends CommandName> = ControlCommands[K]['result'];

/** The daemon's side: one handler per command, typed by the table. */
export type ControlHandlers = { [K in CommandName]: (args: ArgsOf<K>) => ResultOf<K> | Promise<ResultOf<K>> };

export interface ControlRequest {
  command: string;
  args?: unknown;
}

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; code?: string };
