/**
 * The port forwards natd serves, as data. Each spec text is parsed once into an entry (canonical text, parsed spec,
 * host side, where it came from); entries are resolved against the reservations into the forwards the table holds;
 * listing rows are plain data for the control layer to render. Pure: no nft, no files, no logging.
 *
 * Rules kept here: a host side (protocol, host address, port) is forwarded at most once; a configured forward that
 * cannot be resolved is an error (the operator wrote it), a runtime one is left out of the table with a reason
 * (a reservation that went away must not stop the NAT for every guest).
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4 } from '../net/ipv4.js';
import { formatForwardSpec, parseForwardSpec, type PortForwardSpec } from './forward-spec.js';
import { forwardKey } from './ruleset.js';
import { serviceCaptureProblem, type ServiceAddresses } from './forward-services.js';
// issue 14: a forward's rules per address family
import { resolveFamilies, type GuestResolvers, type ResolvedFamilies } from './forward6.js';

export type ForwardSource = 'config' | 'runtime';

export interface ForwardEntry {
  /** canonical text (formatForwardSpec): what is stored, listed and matched by `forwards remove` */
  readonly text: string;
  readonly spec: PortForwardSpec;
  /** forwardKey of the host side; the guest takes no part in it */
  readonly hostKey: string;
  readonly source: ForwardSource;
}

/** An entry as it is in the table: its guest resolved to an address in each family it serves (forward6.ts). */
export interface ActiveForward {
  readonly entry: ForwardEntry;
  readonly forward: ResolvedFamilies;
}

export interface ResolvedForwards {
  active: ActiveForward[];
  /** runtime entries not in the table, each with the reason */
  leftOut: { entry: ForwardEntry; reason: string }[];
}

/** One `natd forwards list` row; `problem` says why a forward is not in the table when natd knows. */
export interface ForwardRow {
  spec: string;
  protocol: string;
  /** HOSTADDR:PORT, `*` for every local address */
  host: string;
  /** ADDRESS:PORT when the guest resolves, NAME:PORT when it does not */
  guest: string;
  source: ForwardSource;
  inTable: boolean;
  problem?: string;
}

/** An any-address forward takes its protocol and port in both families (`tcp . 2222`); a bound IPv6 one its address. */
function hostKeyOf(spec: PortForwardSpec): string {
  if (spec.hostAddress6 !== undefined) return `[${spec.hostAddress6}] . ${spec.protocol} . ${spec.hostPort}`;
  return forwardKey({ protocol: spec.protocol, hostPort: spec.hostPort, guestAddress: 0, guestPort: spec.guestPort, ...(spec.hostAddress !== undefined ? { hostAddress: spec.hostAddress } : {}) });
}

/**
 * Parses and checks one spec (syntax, no capture of the guests' DNS/DHCP at `at`: forward-services.ts);
 * NatdError(CONFIG) naming the spec.
 */
export function parseForwardEntry(text: string, source: ForwardSource, at: ServiceAddresses = {}): ForwardEntry {
  const spec = parseForwardSpec(text);
  const problem = serviceCaptureProblem(spec, at);
  if (problem !== undefined) throw new NatdError(ErrorCodes.CONFIG, `forward "${text.trim()}": ${problem}`);
  return { text: formatForwardSpec(spec), spec, hostKey: hostKeyOf(spec), source };
}

export function alreadyForwarded(text: string, hostKey: string): NatdError {
  return new NatdError(ErrorCodes.CONFIG, `forward "${text}": host side ${hostKey} is already forwarded`);
}

/** Configured specs: every problem (syntax, service port, a host side given twice) reported in one error. */
export function parseConfiguredForwards(texts: readonly string[], at: ServiceAddresses = {}): ForwardEntry[] {
  const problems: string[] = [];
  const entries: ForwardEntry[] = [];
  for (const text of texts) {
    try {
      const entry = parseForwardEntry(text, 'config', at);
      if (entries.some((e) => e.hostKey === entry.hostKey)) throw alreadyForwarded(text.trim(), entry.hostKey);
      entries.push(entry);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new NatdError(ErrorCodes.CONFIG, problems.join('; '));
  return entries;
}

/** Stored runtime specs: one that no longer parses is reported and dropped, the rest kept. */
export function parseStoredForwards(texts: readonly string[], at: ServiceAddresses = {}): { entries: ForwardEntry[]; rejected: { text: string; reason: string }[] } {
  const entries: ForwardEntry[] = [];
  const rejected: { text: string; reason: string }[] = [];
  for (const text of texts) {
    try {
      entries.push(parseForwardEntry(text, 'runtime', at));
    } catch (err) {
      rejected.push({ text, reason: (err as Error).message });
    }
  }
  return { entries, rejected };
}

/**
 * The forwards the table should hold. A configured entry that does not resolve throws (all such problems together);
 * a runtime entry that does not resolve, or whose host side a configured one already takes, is left out.
 */
export function resolveForwards(
  configured: readonly ForwardEntry[],
  runtime: readonly ForwardEntry[],
  resolvers: GuestResolvers,
): ResolvedForwards {
  const problems: string[] = [];
  const active: ActiveForward[] = [];
  const leftOut: ResolvedForwards['leftOut'] = [];
  const taken = new Set<string>();
  for (const entry of [...configured, ...runtime]) {
    try {
      if (taken.has(entry.hostKey)) throw alreadyForwarded(entry.text, entry.hostKey);
      active.push({ entry, forward: resolveFamilies(entry.spec, resolvers) });
      taken.add(entry.hostKey);
    } catch (err) {
      if (entry.source === 'config') problems.push((err as Error).message);
      else leftOut.push({ entry, reason: (err as Error).message });
    }
  }
  if (problems.length) throw new NatdError(ErrorCodes.CONFIG, problems.join('; '));
  return { active, leftOut };
}

/** Reservation names the entries forward to: removing such a reservation would orphan a forward. */
export function guestNames(entries: readonly ForwardEntry[]): Set<string> {
  return new Set(entries.flatMap((e) => ('name' in e.spec.guest ? [e.spec.guest.name] : [])));
}

/** Listing rows, in entry order; the guest is resolved now, so a row shows where a forward would go today. */
export function forwardRows(
  entries: readonly ForwardEntry[],
  inTable: ReadonlySet<ForwardEntry>,
  resolvers: GuestResolvers,
): ForwardRow[] {
  return entries.map((entry) => {
    const { spec } = entry;
    let resolved: ResolvedFamilies | undefined;
    let problem: string | undefined;
    try {
      resolved = resolveFamilies(spec, resolvers);
    } catch (err) {
      problem = /no reservation named/.test((err as Error).message) ? 'no such reservation' : (err as Error).message.replace(/^port forward "[^"]*": /, '');
    }
    // issue 14: the guest in each family it is forwarded to, e.g. "10.77.0.5:22, [fd00::5]:22"
    const guests = [
      ...(resolved?.v4 ? [`${formatIpv4(resolved.v4.guestAddress)}:${spec.guestPort}`] : []),
      ...(resolved?.v6 ? [`[${resolved.v6.guestAddress}]:${spec.guestPort}`] : []),
    ];
    const guestText = 'name' in spec.guest ? spec.guest.name : 'address6' in spec.guest ? `[${spec.guest.address6}]` : formatIpv4(spec.guest.address);
    const hostText = spec.hostAddress6 !== undefined ? `[${spec.hostAddress6}]` : spec.hostAddress === undefined ? '*' : formatIpv4(spec.hostAddress);
    const row: ForwardRow = {
      spec: entry.text,
      protocol: spec.protocol,
      host: `${hostText}:${spec.hostPort}`,
      guest: guests.length ? guests.join(', ') : `${guestText}:${spec.guestPort}`,
      source: entry.source,
      inTable: inTable.has(entry),
    };
    if (problem !== undefined) row.problem = problem;
    return row;
  });
}
