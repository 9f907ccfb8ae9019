/**
 * The daemon's reservations: loaded from the config, the hostsfile and the runtime file (in that precedence), changed
 * at runtime by `natd reservations add|remove`, persisted to the runtime file, and handed to whoever follows them
 * (the DHCP core and the DNS names) after every change. What makes one acceptable is reservation-rules.ts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import { formatHostsfile, parseHostsfile } from '../dhcp/hostsfile.js';
import { describeAddressProblem, reservationClash, reservedAddressProblem, reservedNameProblem } from '../dhcp/reservation-rules.js';
import type { Lease, Reservation } from '../dhcp/types.js';
import { STATE_FILES } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import { sanitizeHostname } from '../net/hostname.js';
import { formatIpv4, formatSubnet, normalizeMac, parseIpv4 } from '../net/ipv4.js';
import { writeFileAtomic } from '../state/atomic-file.js';
// issue 14: IPv6 reservations in the hostsfile format and at runtime
import { formatHostsfile6 } from '../dhcp6/hostsfile6.js';
import { addressSpec, type Dhcp6HostSpec } from '../dhcp6/settings.js';
import { formatDuid, parseDuidText } from '../dhcp6/duid.js';
import type { SourcedReservation6 } from './reservations6.js';

// not 'reservations': import-dnsmasq writes the imported hostsfile under that name
export const RUNTIME_RESERVATIONS_FILE = STATE_FILES.runtimeReservations;

export type ReservationSource = 'config' | 'hostsfile' | 'runtime';
export interface SourcedReservation extends Reservation {
  source: ReservationSource;
}

/** Reads a hostsfile-format file; problems are logged with file:line and the rest loads. Missing file: none. */
async function readHostsfile(file: string, bridge: BridgeInfo, domain: string | undefined, logger: Logger, optional: boolean): Promise<Reservation[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (!optional) logger.warn('cannot read hostsfile; no reservations from it', { file, error: (err as Error).message });
    return [];
  }
  const parsed = parseHostsfile(text, file, bridge.subnet, domain, bridge.gateway);
  for (const p of parsed.problems) logger.warn('hostsfile problem', { file: p.file, line: p.line, problem: p.message });
  return parsed.reservations;
}

/**
 * Reservations from the config, the hostsfile and the runtime file, in that order of precedence: a MAC or address
 * already reserved by an earlier source is skipped with a warning, and so is an address that is not a guest's.
 */
export async function loadReservations(config: Config, bridge: BridgeInfo, logger: Logger): Promise<SourcedReservation[]> {
  const loaded: SourcedReservation[] = [];
  const add = (r: Reservation, source: ReservationSource): void => {
    const clash = reservationClash(loaded, r);
    if (clash) {
      logger.warn('reservation skipped: conflicts with an earlier one', { mac: r.mac, address: formatIpv4(r.address), source, earlier: clash.source });
      return;
    }
    loaded.push({ ...r, source });
  };
  for (const r of config.reservations) add(r, 'config');
  if (config.hostsfile) for (const r of await readHostsfile(config.hostsfile, bridge, config.domain, logger, false)) add(r, 'hostsfile');
  for (const r of await readHostsfile(path.join(config.stateDir, RUNTIME_RESERVATIONS_FILE), bridge, config.domain, logger, true)) add(r, 'runtime');
  // after the precedence pass, as natd always did: a skipped address still takes its MAC and address from later sources
  return loaded.filter((r) => {
    const problem = reservedAddressProblem(r.address, bridge.subnet, bridge.gateway);
    if (problem) logger.warn('reservation skipped: not a guest address', { mac: r.mac, address: formatIpv4(r.address), source: r.source, problem: describeAddressProblem(problem, r.address, bridge.subnet) });
    return problem === undefined;
  });
}

export interface ReservationBookOptions {
  bridge: BridgeInfo;
  logger: Logger;
  now: () => number;
  /** the live lease on an address: a runtime reservation may not take an address another MAC holds */
  leaseAt(address: number): Lease | undefined;
  /** told every new list (the DHCP core and the DNS names follow the reservations) */
  onChange(reservations: readonly SourcedReservation[]): void;
  /** issue 15: whether a name belongs to an operator DNS record (a runtime reservation may not take it) */
  recordName?: (name: string) => boolean;
}

/**
 * issue 14: what the book needs for IPv6 reservations, set once DHCPv6 runs (absent: IPv6 ones are refused).
 * `check`: the spec placed in the served /64 among the config's and the other IPv6 reservations (throws a config
 * error naming the field); `changed`: the hostsfile and runtime IPv6 reservations, after every change.
 */
export interface ReservationBook6Hooks {
  check(spec: Dhcp6HostSpec, others: readonly SourcedReservation6[]): string;
  changed(list: readonly SourcedReservation6[]): void;
}

/** Arguments of `reservations.add` as they arrive over the control socket. */
export interface AddReservationArgs {
  mac?: unknown;
  address?: unknown;
  hostname?: unknown;
  /** issue 14: an IPv6 reservation: `ipv6` (full or ::suffix, brackets optional), by `duid` and/or `mac` */
  ipv6?: unknown;
  duid?: unknown;
}

export class ReservationBook {
  private list: readonly SourcedReservation[];
  private config: Config;
  /** issue 14: the hostsfile's and runtime IPv6 reservations */
  private list6: readonly SourcedReservation6[];
  ipv6: ReservationBook6Hooks | undefined;

  constructor(config: Config, initial: readonly SourcedReservation[], private readonly opts: ReservationBookOptions, initial6: readonly SourcedReservation6[] = []) {
    this.config = config;
    this.list = initial;
    this.list6 = initial6;
  }

  all6(): readonly SourcedReservation6[] {
    return this.list6;
  }

  all(): readonly SourcedReservation[] {
    return this.list;
  }

  /** The address reserved under a host name (port forwards name guests this way). */
  resolveName = (name: string): number | undefined => this.list.find((r) => r.hostname === name)?.address;

  /**
   * A reload: `reservations` become current (resolveName sees them) while `check` runs, e.g. the firewall re-resolving
   * its forwards; they stay, and the followers are told, only if it succeeds. On failure the old list is back.
   */
  async replace(config: Config, reservations: readonly SourcedReservation[], check: () => Promise<void>, reservations6?: readonly SourcedReservation6[]): Promise<void> {
    const previous = { config: this.config, list: this.list };
    this.config = config;
    this.list = reservations;
    try {
      await check();
    } catch (err) {
      this.config = previous.config;
      this.list = previous.list;
      throw err;
    }
    if (reservations6) this.list6 = reservations6;
    this.opts.onChange(this.list);
  }

  rows(): { mac: string; address: string; hostname: string | undefined; source: ReservationSource }[] {
    return [
      ...this.list.map((r) => ({ mac: r.mac, address: formatIpv4(r.address), hostname: r.hostname, source: r.source })),
      ...this.list6.map((r) => ({ mac: r.mac ?? `id:${r.duid}`, address: `[${r.address.address}]`, hostname: r.hostname, source: r.source })), // issue 14
    ];
  }

  /** Validates like every other source, plus the runtime-only rules (no clash at all, no other MAC's live lease). */
  async add(args: AddReservationArgs): Promise<{ mac: string; address: string; hostname: string | undefined; ipv6?: string }> {
    if (args.ipv6 !== undefined || args.duid !== undefined) return this.add6(args); // issue 14
    const wanted = this.parseAdd(args);
    const { mac, address, hostname } = wanted;
    const clash = reservationClash(this.list, wanted, { byName: true });
    if (clash) throw configError(`conflicts with the ${clash.source} reservation ${clash.mac},${formatIpv4(clash.address)}${clash.hostname ? ',' + clash.hostname : ''}`);
    const holder = this.opts.leaseAt(address);
    if (holder && holder.mac !== mac && holder.expiresAt > this.opts.now())
      throw configError(`address: ${formatIpv4(address)} is leased to ${holder.mac} until ${new Date(holder.expiresAt).toISOString()}`);
    await this.commit([...this.list, { ...wanted, source: 'runtime' }]);
    this.opts.logger.info('reservation added', { mac, address: formatIpv4(address), hostname });
    return { mac, address: formatIpv4(address), hostname };
  }

  /** `forwardedNames`: names port forwards refer to; such a reservation stays until its forwards are gone. */
  async remove(keyText: unknown, forwardedNames: ReadonlySet<string>): Promise<{ mac: string; address: string }> {
    const key = String(keyText ?? '').toLowerCase();
    const match = this.list.find((r) => r.mac === normalizeMac(key) || formatIpv4(r.address) === key || r.hostname === key);
    if (!match) return this.remove6(key, forwardedNames); // issue 14
    if (match.source !== 'runtime') throw configError(`the reservation for ${match.mac} comes from the ${match.source}; remove it there and reload`);
    if (match.hostname && forwardedNames.has(match.hostname)) throw configError(`port forwards name "${match.hostname}"; remove them first (natd forwards list)`);
    // `reservations add MAC IPV4 [IPV6] NAME` made one reservation for both families: it goes as one
    const with6 = this.list6.filter((r) => r.source === 'runtime' && (r.mac === match.mac || (match.hostname !== undefined && r.hostname === match.hostname)));
    await this.commit(this.list.filter((r) => r !== match), with6.length ? this.list6.filter((r) => !with6.includes(r)) : this.list6);
    this.opts.logger.info('reservation removed', { mac: match.mac, address: formatIpv4(match.address), ...(with6.length ? { ipv6: with6.map((r) => r.address.address) } : {}) });
    return { mac: match.mac, address: formatIpv4(match.address) };
  }

  private parseAdd(args: AddReservationArgs): Reservation {
    const { bridge } = this.opts;
    const mac = normalizeMac(String(args.mac ?? ''));
    const address = parseIpv4(String(args.address ?? ''));
    const rawName = args.hostname === undefined || args.hostname === null ? undefined : String(args.hostname);
    const hostname = rawName === undefined ? undefined : sanitizeHostname(rawName);
    if (!mac) throw configError(`mac: not a MAC address (got "${String(args.mac)}")`);
    if (address === undefined) throw configError(`address: not an IPv4 address (got "${String(args.address)}")`);
    if (reservedAddressProblem(address, bridge.subnet, bridge.gateway)) throw configError(`address: ${formatIpv4(address)} is not a guest address of ${formatSubnet(bridge.subnet)}`);
    if (rawName !== undefined && hostname !== rawName.toLowerCase()) throw configError(`hostname: "${rawName}" is not a DNS label (letters, digits, '-')`);
    const denied = hostname === undefined ? undefined : reservedNameProblem(hostname, this.config.domain);
    if (denied) throw configError(`hostname: "${hostname}" is ${denied}; natd never publishes it`);
    if (hostname !== undefined && this.opts.recordName?.(hostname)) throw configError(`hostname: "${hostname}" is a DNS record name (natd records list); records win over reservations`);
    return { mac, address, ...(hostname ? { hostname } : {}) };
  }

  /** Persist first, then switch: a failed write leaves the running list and the file as they were. */
  private async commit(next: readonly SourcedReservation[], next6: readonly SourcedReservation6[] = this.list6): Promise<void> {
    const runtime = next.filter((r) => r.source === 'runtime');
    const runtime6 = next6.filter((r) => r.source === 'runtime').map(({ source: _source, field: _field, ...spec }) => spec);
    await writeFileAtomic(path.join(this.config.stateDir, RUNTIME_RESERVATIONS_FILE), formatHostsfile(runtime) + formatHostsfile6(runtime6));
    const changed6 = next6 !== this.list6;
    this.list = next;
    this.list6 = next6;
    this.opts.onChange(this.list);
    if (changed6) this.ipv6?.changed(this.list6);
  }

  // ---- issue 14: IPv6 reservations at runtime (dnsmasq dhcp-host syntax: id:DUID and/or MAC, [IPv6], name)
  private async add6(args: AddReservationArgs): Promise<{ mac: string; address: string; hostname: string | undefined; ipv6: string }> {
    if (!this.ipv6) throw configError('ipv6: natd serves no DHCPv6 on the bridge (give --subnet6 or --ipv6 auto)');
    const text = String(args.ipv6 ?? '');
    const address = addressSpec(text.replace(/^\[|\]$/g, ''));
    if (!address) throw configError(`ipv6: not an IPv6 address (got "${text}")`);
    const duidBytes = args.duid === undefined || args.duid === null ? undefined : parseDuidText(String(args.duid).replace(/^id:/i, ''));
    if (args.duid !== undefined && args.duid !== null && !duidBytes) throw configError(`duid: not a DUID in hex bytes, e.g. 00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc (got "${String(args.duid)}")`);
    const mac = args.mac === undefined || args.mac === null || args.mac === '' ? undefined : normalizeMac(String(args.mac));
    if (args.mac !== undefined && args.mac !== null && args.mac !== '' && !mac) throw configError(`mac: not a MAC address (got "${String(args.mac)}")`);
    if (!duidBytes && !mac) throw configError('duid: an IPv6 reservation needs a DUID (id:...) or a MAC address');
    const hostname = this.checkedName(args.hostname);
    const spec: { -readonly [K in keyof Dhcp6HostSpec]: Dhcp6HostSpec[K] } = { address, field: 'ipv6' };
    if (duidBytes) spec.duid = formatDuid(duidBytes);
    if (mac) spec.mac = mac;
    if (hostname) spec.hostname = hostname;
    const v4Name = hostname === undefined ? undefined : this.list.find((r) => r.hostname === hostname && r.mac !== mac);
    if (v4Name) throw configError(`hostname: "${hostname}" is the name of the ${v4Name.source} reservation ${v4Name.mac}`);
    const placed = this.ipv6.check(spec, this.list6);
    // with an IPv4 address too (and a MAC): both families in one change
    let next = this.list;
    if (args.address !== undefined && args.address !== null && args.address !== '') {
      const v4 = this.parseAdd({ mac: args.mac, address: args.address, hostname: args.hostname });
      const clash = reservationClash(this.list, v4, { byName: true });
      if (clash) throw configError(`conflicts with the ${clash.source} reservation ${clash.mac},${formatIpv4(clash.address)}${clash.hostname ? ',' + clash.hostname : ''}`);
      next = [...this.list, { ...v4, source: 'runtime' }];
    }
    await this.commit(next, [...this.list6, { ...spec, source: 'runtime' }]);
    this.opts.logger.info('IPv6 reservation added', { duid: spec.duid, mac, address: placed, hostname });
    return { mac: mac ?? `id:${spec.duid}`, address: args.address !== undefined && args.address !== null && args.address !== '' ? String(args.address) : `[${placed}]`, hostname, ipv6: placed };
  }

  private async remove6(key: string, forwardedNames: ReadonlySet<string>): Promise<{ mac: string; address: string }> {
    const bare = key.replace(/^\[|\]$/g, '').replace(/^id:/, '');
    const mac = normalizeMac(bare);
    const duid = parseDuidText(bare);
    const spec6 = addressSpec(bare);
    const match = this.list6.find((r) => (mac !== undefined && r.mac === mac) || (duid !== undefined && r.duid === formatDuid(duid)) || (spec6 !== undefined && r.address.address === spec6.address) || r.hostname === key);
    if (!match) throw configError(`no reservation matches "${key}"`);
    if (match.source !== 'runtime') throw configError(`the IPv6 reservation ${match.field ?? ''} comes from the ${match.source}; remove it there and reload`);
    if (match.hostname && forwardedNames.has(match.hostname)) throw configError(`port forwards name "${match.hostname}"; remove them first (natd forwards list)`);
    await this.commit(this.list, this.list6.filter((r) => r !== match));
    this.opts.logger.info('IPv6 reservation removed', { duid: match.duid, mac: match.mac, address: match.address.address });
    return { mac: match.mac ?? `id:${match.duid}`, address: `[${match.address.address}]` };
  }

  private checkedName(raw: unknown): string | undefined {
    const rawName = raw === undefined || raw === null ? undefined : String(raw);
    const hostname = rawName === undefined ? undefined : sanitizeHostname(rawName);
    if (rawName !== undefined && hostname !== rawName.toLowerCase()) throw configError(`hostname: "${rawName}" is not a DNS label (letters, digits, '-')`);
    const denied = hostname === undefined ? undefined : reservedNameProblem(hostname, this.config.domain);
    if (denied) throw configError(`hostname: "${hostname}" is ${denied}; natd never publishes it`);
    if (hostname !== undefined && this.opts.recordName?.(hostname)) throw configError(`hostname: "${hostname}" is a DNS record name (natd records list); records win over reservations`);
    return hostname;
  }
}

function configError(message: string): NatdError {
  return new NatdError(ErrorCodes.CONFIG, message);
}
