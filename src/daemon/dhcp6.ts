/**
 * issue 14: DHCPv6 on the bridge, as the daemon runs it: the server DUID (kept in the state dir), the pure core
 * (dhcp6/core.ts) on the lease journal the DHCPv4 side uses, the socket and transport (dhcp6/transport.ts), and the
 * expiry sweep. Started after the lease journal and the IPv6 step, closed before the journal (the transport's
 * close waits for the Replies whose journal writes are still under way).
 *
 * The mode decides the RA flags (ipv6/service.ts): 'stateful' with --dhcp6-range (IA_NA addresses), else
 * 'stateless' (Information-request: DNS server and search list; Solicits are told NoAddrsAvail).
 * The DNS server given is natd's own on the IPv6 gateway, with DNS on (the daemon's DNS listens there, issue 14).
 */
import type dgram from 'node:dgram';
import type { Config } from '../config.js';
import type { LeaseRow } from '../control/protocol.js';
import { Dhcp6Core, type Dhcp6CoreOptions, type Dhcp6Reservation, type Lease6, type Lease6Change, type Lease6Journal } from '../dhcp6/core.js';
import { loadOrCreateServerDuid } from '../dhcp6/duid.js';
import { dhcp6CoreOptions, dhcp6CoreSettings, type Dhcp6Resolved, type Dhcp6Setting } from '../dhcp6/settings.js';
import { configError } from '../config/served-subnet.js';
import { Dhcp6Transport, type Dhcp6Port, type Dhcp6Stats } from '../dhcp6/transport.js';
import { formatIpv6 } from '../ipv6/address.js';
import type { Dhcp6Mode } from '../ipv6/service.js';
import type { Ipv6Served } from '../ipv6/settings.js';
import type { Logger } from '../log.js';

const SWEEP_MS = 30_000;

/** What the daemon serves over DHCPv6 (config.dhcp6, placed in the served /64 by dhcp6/settings.ts at start). */
export interface Dhcp6Plan {
  mode: Dhcp6Mode;
  setting: Dhcp6Setting;
}

export interface Dhcp6Deps {
  logger: Logger;
  now: () => number;
  store: Lease6Journal;
  bridgeMac: string;
  openSocket(bridge: string): Promise<dgram.Socket | Dhcp6Port>;
  /** the lease changes of a handled request, once durable */
  onChanges?(changes: readonly Lease6Change[]): void;
  /** whether a client may have the name of its Client FQDN option (daemon/dhcp6-names.ts) */
  nameAllowed?: Dhcp6CoreOptions['nameAllowed'];
}

export interface Dhcp6Status extends Dhcp6Stats {
  mode: Dhcp6Mode;
  serverDuid: string;
  range: string | undefined;
  leases: number;
  offers: number;
  declined: number;
  reservations: number;
}

export interface Dhcp6Service {
  mode: Dhcp6Mode;
  status(): Dhcp6Status;
  leases(): Lease6[];
  rows(now: number): LeaseRow[];
  setReservations(list: readonly Dhcp6Reservation[]): void;
  close(): Promise<void>;
}

/** config.dhcp6 → the plan; undefined when DHCPv6 is off (IPv6 off). Stateless unless a range is given. */
export function dhcp6Plan(config: Config): Dhcp6Plan | undefined {
  if (!config.ipv6 || !config.dhcp6) return undefined;
  return { mode: config.dhcp6.range ? 'stateful' : 'stateless', setting: config.dhcp6 };
}

/** The reservations of a config for the served prefix (reload); throws a config error naming the field. */
export function dhcp6Reservations(config: Config, served: Ipv6Served): Dhcp6Reservation[] {
  return config.dhcp6 ? placed(config.dhcp6, served).reservations : [];
}

function placed(setting: Dhcp6Setting, served: Ipv6Served): Dhcp6Resolved {
  try {
    return dhcp6CoreSettings(setting, served);
  } catch (err) {
    throw configError([(err as Error).message]);
  }
}

export async function startDhcp6(config: Config, plan: Dhcp6Plan, served: Ipv6Served, deps: Dhcp6Deps): Promise<Dhcp6Service> {
  const { logger, now } = deps;
  const resolved = placed(plan.setting, served);
  const range = resolved.range;
  const serverDuid = await loadOrCreateServerDuid(config.stateDir, deps.bridgeMac, now(), (why) => logger.warn('new DHCPv6 server DUID', { why }));
  const gateway = formatIpv6(served.gateway);
  let reservations: readonly Dhcp6Reservation[] = resolved.reservations;
  // the one place the core's options are built (dhcp6/settings.ts); DNS: natd's own on the IPv6 gateway, with DNS on
  const core = new Dhcp6Core(dhcp6CoreOptions({ dhcp6: plan.setting, searchDomains: config.searchDomains }, served, {
    serverDuid, store: deps.store, now, logger, dnsServers: config.dns ? [gateway] : [],
    fqdn: { publish: config.dns, domain: config.domain }, // RFC 4704 reply: natd's DNS answers the leases' names
  }, deps.nameAllowed));
  const transport = new Dhcp6Transport({
    socket: await deps.openSocket(config.bridge),
    bridge: config.bridge,
    core,
    logger,
    now,
    onChanges: (changes) => deps.onChanges?.(changes as readonly Lease6Change[]),
  });
  transport.start();
  const sweep = setInterval(() => {
    const ended = core.sweep(now());
    if (ended.length) deps.onChanges?.(ended);
  }, SWEEP_MS);
  sweep.unref();
  logger.info('serving DHCPv6', { bridge: config.bridge, mode: plan.mode, ...(range ? { range: `${range.start}-${range.end}` } : {}), leases: core.leases().length });
  return {
    mode: plan.mode,
    status: () => {
      const s = core.stats(now());
      return {
        ...transport.stats(), mode: plan.mode, serverDuid: core.duid, range: range ? `${range.start}-${range.end}` : undefined,
        leases: s.leases, offers: s.offers, declined: s.declined, reservations: reservations.length,
      };
    },
    leases: () => core.leases(now()),
    rows: (at) => [
      ...core.leases(at).sort((a, b) => compareIpv6(a.address, b.address)).map((l): LeaseRow => ({
        address: l.address, mac: l.mac ?? '', hostname: l.hostname, expiresAt: l.expiresAt, clientId: l.duid, iaid: l.iaid,
      })),
      ...core.declined(at).map((d): LeaseRow => ({ address: d.address, mac: '', hostname: undefined, expiresAt: d.until, clientId: '', state: 'declined' })),
    ],
    setReservations: (list) => {
      core.setReservations(list);
      reservations = list;
    },
    close: async () => {
      clearInterval(sweep);
      await transport.close();
    },
  };
}

/** numeric order of two RFC 5952 addresses (for the lease table) */
function compareIpv6(a: string, b: string): number {
  const key = (s: string) => {
    const [head = '', tail] = s.split('::');
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
    return [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].map((g) => g.padStart(4, '0')).join('');
  };
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}
