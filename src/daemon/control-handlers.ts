/**
 * The control socket's command table: each command names the component that serves it. The handlers only translate
 * arguments and rows; the work is the components'. Typed by control/protocol.ts (what each command takes and
 * answers); the arguments arrive validated (control/validate.ts).
 */
import type { ControlHandlers, LeaseRow } from '../control/protocol.js';
import type { DhcpServerCore } from '../dhcp/server-core.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4 } from '../net/ipv4.js';
import type { Firewall } from '../nft/firewall.js';
import type { ReservationBook } from './reservations.js';
import type { LeaseEvents } from './lease-events.js';
import { ControlStream } from '../control/stream.js';
import type { RecordBook } from './record-book.js';
import type { StatusReport } from './status.js';
import type { ExposeService } from './expose.js'; // issue 17

export interface ControlTargets {
  core: DhcpServerCore;
  reservations: ReservationBook;
  /** issue 15: custom DNS records; undefined with --no-dns */
  records: RecordBook | undefined;
  /** undefined with --no-firewall */
  firewall: Firewall | undefined;
  /** issue 17: the name router */
  expose: ExposeService;
  now: () => number;
  /** lease events for `leases --watch` */
  events: LeaseEvents;
  status(): StatusReport;
  reload(): Promise<void>;
  metrics(): string;
  /** issue 14: DHCPv6 leases (after the v4 ones in `natd leases`) */
  dhcp6?: { rows(now: number): LeaseRow[] } | undefined;
}

/** Live leases by address, then the quarantined (declined) addresses. */
function leaseRows(core: DhcpServerCore, now: number): LeaseRow[] {
  const live = core.leases.all().filter((l) => l.expiresAt > now).sort((a, b) => a.address - b.address)
    .map((l) => ({ address: formatIpv4(l.address), mac: l.mac, hostname: l.hostname, expiresAt: l.expiresAt, clientId: l.clientId }));
  const declined = core.declined(now)
    .map((q): LeaseRow => ({ address: formatIpv4(q.address), mac: '', hostname: undefined, expiresAt: q.until, clientId: '', state: 'declined' }));
  return [...live, ...declined];
}

export function controlHandlers(t: ControlTargets): ControlHandlers {
  const needFirewall = (): Firewall => {
    if (!t.firewall) throw new NatdError(ErrorCodes.CONFIG, 'the firewall is disabled (--no-firewall)');
    return t.firewall;
  };
  const needRecords = (): RecordBook => {
    if (!t.records) throw new NatdError(ErrorCodes.CONFIG, 'the DNS server is disabled (--no-dns)');
    return t.records;
  };
  return {
    status: () => t.status(),
    leases: () => [...leaseRows(t.core, t.now()), ...(t.dhcp6?.rows(t.now()) ?? [])], // issue 14: v6 after v4
    // the live leases as 'old', then add/old/del/renew as they are journaled
    'leases.watch': () => new ControlStream((send) => t.events.watch(send)),
    'reservations.list': () => t.reservations.rows(),
    'reservations.add': (args) => t.reservations.add(args),
    'reservations.remove': (args) => t.reservations.remove(args.key, t.firewall?.guestNames() ?? new Set()),
    'forwards.list': () => needFirewall().listForwards(),
    'forwards.add': async (args) => needFirewall().addForward(args.spec),
    'forwards.remove': async (args) => needFirewall().removeForward(args.spec),
    // issue 15: custom DNS records
    'records.list': () => needRecords().rows(),
    'records.add': (args) => needRecords().add(args),
    'records.remove': (args) => needRecords().remove(args),
    // issue 17: name routes
    'expose.list': () => t.expose.rows(),
    'expose.add': (args) => t.expose.add(args.spec),
    'expose.remove': (args) => t.expose.remove(args.spec),
    reload: () => t.reload(),
    metrics: () => t.metrics(),
  };
}
