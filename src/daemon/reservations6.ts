/**
 * issue 14: IPv6 reservations from the hostsfile and the runtime reservations file (dnsmasq's --dhcp-hostsfile takes
 * --dhcp-host's syntax, `[IPv6]` and `id:DUID` included; dhcp6/hostsfile6.ts). The config's own (--dhcp-host) come
 * first and win; these are placed in the served /64 at start and on every reload, one that does not fit is skipped
 * with a warning naming its file and line. `natd reservations add` writes IPv6 ones to the runtime file
 * (ReservationBook), so they survive a restart and are re-read on SIGHUP/reload as the IPv4 ones.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import { parseHostsfile6, placeHostReservation6, placeHostReservations6, reservation6Clash } from '../dhcp6/hostsfile6.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Dhcp6HostSpec } from '../dhcp6/settings.js';
import type { Dhcp6Reservation } from '../dhcp6/types.js';
import type { Ipv6Served } from '../ipv6/settings.js';
import type { Logger } from '../log.js';
import { STATE_FILES } from '../defaults.js';

export type SourcedReservation6 = Dhcp6HostSpec & { source: 'hostsfile' | 'runtime' };

async function read6(file: string, source: SourcedReservation6['source'], logger: Logger): Promise<SourcedReservation6[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return []; // a missing or unreadable hostsfile is reported by the IPv4 side (reservations.ts)
  }
  const parsed = parseHostsfile6(text, file);
  for (const p of parsed.problems) logger.warn('hostsfile problem', { file: p.file, line: p.line, problem: p.message });
  return parsed.reservations.map((r) => ({ ...r, source }));
}

/** The hostsfile's IPv6 reservations, then the runtime file's. */
export async function loadReservations6(config: Config, logger: Logger): Promise<SourcedReservation6[]> {
  return [
    ...(config.hostsfile ? await read6(config.hostsfile, 'hostsfile', logger) : []),
    ...(await read6(path.join(config.stateDir, STATE_FILES.runtimeReservations), 'runtime', logger)),
  ];
}

/** The config's reservations (`fromConfig`, placed already) followed by these, placed; skipped ones are logged. */
export function withHostReservations6(fromConfig: readonly Dhcp6Reservation[], extra: readonly SourcedReservation6[], served: Pick<Ipv6Served, 'gateway' | 'network'>, logger: Logger): Dhcp6Reservation[] {
  const placed = placeHostReservations6(extra, served, fromConfig, (field, why) => logger.warn('IPv6 reservation skipped', { field, problem: why }));
  return [...fromConfig, ...placed];
}

/**
 * A runtime IPv6 reservation's check (`natd reservations add`): placed in the served /64, clashing with none of the
 * config's, the hostsfile's and the other runtime ones (DUID, MAC, address or name), and its address not leased to
 * another client. Returns the placed address; throws NatdError(CONFIG) naming the field.
 */
export function checkNewReservation6(
  spec: Dhcp6HostSpec, fromConfig: readonly Dhcp6Reservation[], others: readonly SourcedReservation6[], served: Pick<Ipv6Served, 'gateway' | 'network'>,
  leaseHolder?: (address: string) => { duid: string; mac?: string | undefined } | undefined,
): string {
  let placed: Dhcp6Reservation;
  try {
    placed = placeHostReservation6(spec, served);
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, (err as Error).message);
  }
  const existing = [...fromConfig, ...placeHostReservations6(others, served, fromConfig, () => {})];
  for (const r of existing) {
    const clash = reservation6Clash(placed, r);
    if (clash) throw new NatdError(ErrorCodes.CONFIG, `ipv6: ${clash} is already reserved (${r.duid ? `id:${r.duid}` : r.mac},[${r.address}]${r.hostname ? ',' + r.hostname : ''})`);
  }
  const holder = leaseHolder?.(placed.address);
  if (holder && holder.duid !== placed.duid && (placed.mac === undefined || holder.mac !== placed.mac))
    throw new NatdError(ErrorCodes.CONFIG, `ipv6: ${placed.address} is leased to another client (DUID ${holder.duid})`);
  return placed.address;
}
