/**
 * Issue 16's configuration inputs, checked for config.ts: `--dhcp-option`, `--dhcp-option-force`, `--dhcp-dns`,
 * dnsmasq's `--dhcp-range=START,END[,NETMASK][,LEASETIME]`, lease times (`infinite`) and per-reservation options.
 * Each function pushes problems naming the field and returns what it could use, so every problem is reported at once.
 */
import { OptionSpecError, parseOptionSpec, type OptionSpec } from './option-spec.js';
import { INFINITE_LEASE_SECONDS } from './types.js';
import { parseIpv4 } from '../net/ipv4.js';

const DNS_SERVERS = 6;
export const LEASE_TIME_HINT = 'expected seconds, a duration like 3600, 90s, 30m, 1h, 1d or 1w, or infinite';

/** dnsmasq's lease time: seconds, a number with s/m/h/d/w, or `infinite`; undefined when not one. */
export function parseLeaseTime(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 && value <= INFINITE_LEASE_SECONDS ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim().toLowerCase();
  if (text === 'infinite') return INFINITE_LEASE_SECONDS;
  const m = /^(\d{1,10})\s*([smhdw]?)$/.exec(text);
  if (!m) return undefined;
  const seconds = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as '' | 's' | 'm' | 'h' | 'd' | 'w'];
  return seconds > 0 && seconds < INFINITE_LEASE_SECONDS ? seconds : undefined;
}

/** Parses spec strings; a problem names `field.i`. */
export function parseOptionSpecs(list: readonly string[], field: string, force: boolean, problems: string[]): OptionSpec[] {
  const specs: OptionSpec[] = [];
  list.forEach((text, i) => {
    try {
      specs.push(parseOptionSpec(text, force));
    } catch (err) {
      if (!(err instanceof OptionSpecError)) throw err;
      problems.push(`${field}.${i}: ${err.message}, in ${JSON.stringify(text.length > 80 ? text.slice(0, 77) + '...' : text)}`);
    }
  });
  return specs;
}

/**
 * The option specs the core gets: `--dhcp-dns` first (it is `option:dns-server,…` under another name: `none` is the
 * option without a value), then --dhcp-option and --dhcp-option-force in the order given.
 */
export function dhcpOptionSpecs(
  input: { dhcpOptions: readonly string[]; dhcpOptionsForce: readonly string[]; dhcpDns: readonly string[] | undefined },
  problems: string[],
): OptionSpec[] {
  const specs: OptionSpec[] = [];
  if (input.dhcpDns !== undefined) {
    const none = input.dhcpDns.length === 1 && input.dhcpDns[0]!.toLowerCase() === 'none';
    const bad = none ? [] : input.dhcpDns.filter((a) => parseIpv4(a) === undefined);
    if (input.dhcpDns.length === 0 || bad.length > 0) problems.push(`dhcpDns: expected IPv4 addresses or none (got ${JSON.stringify(input.dhcpDns)})`);
    else specs.push(parseOptionSpec(none ? 'option:dns-server' : `option:dns-server,${input.dhcpDns.join(',')}`));
  }
  const given = [
    ...parseOptionSpecs(input.dhcpOptions, 'dhcpOptions', false, problems),
    ...parseOptionSpecs(input.dhcpOptionsForce, 'dhcpOptionsForce', true, problems),
  ];
  if (input.dhcpDns !== undefined && given.some((s) => s.code === DNS_SERVERS && s.when.length === 0)) {
    problems.push('dhcpDns: give the DNS servers once, with dhcpDns or with dhcpOptions option:dns-server (6), not both');
  }
  return [...specs, ...given];
}

/** A reservation's own options: no tags (they are the host's already). */
export function reservationOptionSpecs(list: readonly string[], field: string, problems: string[]): OptionSpec[] {
  const specs = parseOptionSpecs(list, field, false, problems);
  specs.forEach((s, i) => {
    if (s.when.length > 0) problems.push(`${field}.${i}: tag: conditions have no meaning in a reservation's options (got "${s.text}")`);
  });
  return specs;
}

export interface ParsedRange {
  start: number;
  end: number;
  /** the NETMASK field, when given */
  mask?: number;
  leaseSeconds?: number;
}

/**
 * `START-END` (natd's form) or dnsmasq's `START,END[,NETMASK][,LEASETIME]`; undefined with a problem pushed when
 * neither. dnsmasq's mode keywords (static, proxy, …) are not natd's and are refused.
 */
export function parseDhcpRange(text: string, problems: string[]): ParsedRange | undefined {
  const fail = (why: string): undefined => {
    problems.push(`dhcpRange: ${why} (got "${text}")`);
    return undefined;
  };
  const dash = /^([\d.]+)-([\d.]+)$/.exec(text.trim());
  const fields = dash ? [dash[1]!, dash[2]!] : text.split(',').map((f) => f.trim());
  if (fields.length < 2 || fields.length > 4) return fail('expected START-END or START,END[,NETMASK][,LEASETIME], e.g. 10.10.0.10,10.10.0.200,12h');
  const start = parseIpv4(fields[0]!);
  const end = parseIpv4(fields[1]!);
  if (start === undefined || end === undefined) return fail('not two IPv4 addresses');
  const range: ParsedRange = { start, end };
  for (const field of fields.slice(2)) {
    const mask = parseIpv4(field);
    const lease = mask === undefined ? parseLeaseTime(field) : undefined;
    if (mask !== undefined && range.mask === undefined && range.leaseSeconds === undefined) range.mask = mask;
    else if (lease !== undefined && range.leaseSeconds === undefined) range.leaseSeconds = lease;
    else return fail(`"${field}" is neither a netmask nor a lease time; ${LEASE_TIME_HINT}`);
  }
  return range;
}
