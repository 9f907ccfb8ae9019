/**
 * issue 14: the IPv6 part of a dnsmasq dhcp-hostsfile (and of natd's runtime reservations file). dnsmasq's
 * `--dhcp-hostsfile` takes the syntax of `--dhcp-host`, so a line with an `[IPv6]` field is an IPv6 reservation:
 *
 *   id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc,[fd00::5],db     by DUID
 *   52:54:00:aa:bb:cc,10.10.0.5,[::5],web                        by MAC (DUID-LL/LLT or link-layer source), both families
 *
 * The line is read with the --dhcp-host parser (settings.ts parseDhcpHostLine); `set:`/`tag:` fields belong to the
 * IPv4 side (dhcp/hostsfile.ts) and are left out here. Lines without an `[IPv6]` field are IPv4 only (hostsfile.ts
 * reads them). Like hostsfile.ts this never throws: a line that cannot be used is reported with its file and line and
 * the rest loads. Where a reservation lands in the served /64 is decided at start (placeHostReservations6).
 */
import type { FileProblem } from '../dhcp/hostsfile.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Ipv6Served } from '../ipv6/settings.js';
import { sanitizeHostname } from '../net/hostname.js';
import { dhcp6CoreSettings, parseDhcpHostLine, type Dhcp6HostSpec } from './settings.js';
import type { Dhcp6Reservation } from './types.js';

const MAX_LINE_LENGTH = 4096;

export interface Hostsfile6Result {
  /** `field` is "FILE:LINE" */
  reservations: Dhcp6HostSpec[];
  problems: FileProblem[];
}

function stripComment(line: string): string {
  const m = /(?:^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

/** The IPv6 reservations of a hostsfile-format text. */
export function parseHostsfile6(text: string, file: string): Hostsfile6Result {
  const reservations: Dhcp6HostSpec[] = [];
  const problems: FileProblem[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = stripComment(raw).trim().replace(/^dhcp-host\s*=\s*/, '');
    if (content === '' || content.length > MAX_LINE_LENGTH) return; // too long: hostsfile.ts reports it
    const fields = content.split(',').map((f) => f.trim());
    if (!fields.some((f) => f.startsWith('['))) return;
    const kept = fields.filter((f) => !/^(?:set|tag):/i.test(f) && !/^id:\*$/i.test(f));
    const found: string[] = [];
    const parsed = parseDhcpHostLine(kept.join(','), `${file}:${line}`, found);
    if (!parsed?.ipv6) {
      for (const message of found) problems.push({ file, line, message: `${message.replace(/^[^:]*:\d+: /, '')}; IPv6 reservation skipped`, skipped: true });
      return;
    }
    const spec: { -readonly [K in keyof Dhcp6HostSpec]: Dhcp6HostSpec[K] } = { address: parsed.ipv6, field: `${file}:${line}` };
    if (parsed.duid !== undefined) spec.duid = parsed.duid;
    if (parsed.mac !== undefined) spec.mac = parsed.mac;
    if (parsed.hostname !== undefined) spec.hostname = parsed.hostname;
    reservations.push(spec);
  });
  return { reservations, problems };
}

/** Lines readable back by parseHostsfile6 (and by dnsmasq): `id:DUID|MAC,[address][,name]`. */
export function formatHostsfile6(reservations: readonly Dhcp6HostSpec[]): string {
  return reservations.map((r) => {
    const fields = [...(r.duid !== undefined ? [`id:${r.duid}`] : []), ...(r.mac !== undefined ? [r.mac] : []), `[${r.address.address}]`];
    const name = r.hostname === undefined ? undefined : sanitizeHostname(r.hostname);
    if (name !== undefined) fields.push(name);
    return fields.join(',') + '\n';
  }).join('');
}

/** What makes two IPv6 reservations clash: the same DUID, MAC, address or name. undefined: none. */
export function reservation6Clash(a: Pick<Dhcp6Reservation, 'duid' | 'mac' | 'address' | 'hostname'>, b: Pick<Dhcp6Reservation, 'duid' | 'mac' | 'address' | 'hostname'>): string | undefined {
  if (a.duid !== undefined && a.duid === b.duid) return `DUID ${a.duid}`;
  if (a.mac !== undefined && a.mac === b.mac) return `MAC ${a.mac}`;
  if (a.address === b.address) return `address ${a.address}`;
  if (a.hostname !== undefined && a.hostname === b.hostname) return `name ${a.hostname}`;
  return undefined;
}

/** One spec in the served /64; NatdError(CONFIG) naming its field when it does not fit (outside, the gateway, ...). */
export function placeHostReservation6(spec: Dhcp6HostSpec, served: Pick<Ipv6Served, 'gateway' | 'network'>): Dhcp6Reservation {
  try {
    return dhcp6CoreSettings({ range: undefined, leaseSeconds: 0, reservations: [spec], rapidCommit: false }, served).reservations[0]!;
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, (err as Error).message);
  }
}

/**
 * The hostsfile's and the runtime file's reservations after the config's (`earlier`, which win): each placed in the
 * served /64; one that does not fit or clashes with an earlier one is skipped (`skip` says why), as dnsmasq skips
 * a bad hostsfile line.
 */
export function placeHostReservations6(specs: readonly Dhcp6HostSpec[], served: Pick<Ipv6Served, 'gateway' | 'network'>, earlier: readonly Dhcp6Reservation[], skip: (field: string, why: string) => void): Dhcp6Reservation[] {
  const out: Dhcp6Reservation[] = [...earlier];
  for (const spec of specs) {
    let placed: Dhcp6Reservation;
    try {
      placed = placeHostReservation6(spec, served);
    } catch (err) {
      const field = spec.field ?? '?';
      skip(field, (err as Error).message.replace(`${field}: `, '')); // the message names the field already
      continue;
    }
    const clash = out.map((r) => reservation6Clash(placed, r)).find((c) => c !== undefined);
    if (clash) skip(spec.field ?? '?', `${clash} is already reserved by an earlier reservation`);
    else out.push(placed);
  }
  return out.slice(earlier.length);
}

/** The text of a spec's address in the served /64 (rows, messages). */
export function placedAddressText(spec: Dhcp6HostSpec, served: Pick<Ipv6Served, 'gateway' | 'network'> | undefined): string {
  if (!served || spec.address.kind === 'full') return spec.address.address;
  try {
    return placeHostReservation6(spec, served).address;
  } catch {
    return spec.address.address;
  }
}

/**
 * check-config: the hostsfile's IPv6 lines the daemon would skip once placed in the served /64 (after the config's
 * reservations), as `hostsfile: FILE:LINE: why` problems. Parse problems are hostsfileProblems' (served-subnet.ts).
 */
export function hostsfile6PlacementProblems(text: string, file: string, served: Pick<Ipv6Served, 'gateway' | 'network'>, fromConfig: readonly Dhcp6Reservation[]): string[] {
  const problems: string[] = [];
  placeHostReservations6(parseHostsfile6(text, file).reservations, served, fromConfig, (field, why) => problems.push(`hostsfile: ${field}: ${why}`));
  return problems;
}
