/**
 * issue 14: the IPv6 lines of a dnsmasq.conf for `natd import-dnsmasq` (import-dnsmasq.ts calls these): IPv6
 * `dhcp-range`, `enable-ra`, `ra-param`, and `dhcp-host` lines that carry an [IPv6] address. Pure; each line ends
 * as a setting, an "ignored" note (natd needs nothing for it) or a problem (natd cannot carry it as written).
 *
 *   dhcp-range=fd00::100,fd00::1ff,64,12h   → dhcp6Range "fd00::100-fd00::1ff,12h" (stateful DHCPv6)
 *   dhcp-range=::100,::1ff,constructor:br0  → a problem: natd needs the full addresses (the prefix is the bridge's)
 *   dhcp-range=fd00::,ra-only|slaac|ra-stateless|ra-names → ignored: natd advertises the prefix for SLAAC whenever
 *                                             it serves IPv6 (and answers stateless DHCPv6)
 *   enable-ra                               → ignored: natd sends RAs whenever it serves IPv6
 *   ra-param=br0,mtu:1400,high,60,1800      → not carried: natd advertises the bridge's MTU (--mtu sets the bridge)
 *                                             and uses the RFC 4861 timers, with no interval or lifetime setting
 *   dhcp-host=MAC,10.0.0.5,[fd00::5],web    → the IPv4 part as a reservation, as before; the whole line kept as
 *                                             written in `dhcpHost` for the DHCPv6 side to parse
 * natd serves one /64: a prefix length other than 64 is a problem. The gateway (subnet6) is not in dnsmasq.conf
 * (dnsmasq takes it from the interface), unless a listen-address is IPv6.
 */
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';

export interface V6Sink {
  settings: Record<string, unknown>;
  problem(message: string): void;
  ignore(option: string, reason: string): void;
}

const RA_MODES = ['ra-only', 'slaac', 'ra-stateless', 'ra-names', 'ra-advrouter', 'off-link'];
const LEASE_RE = /^(?:\d+[smhdw]?|infinite)$/i;

/** True when a dhcp-range value is an IPv6 one (its first address field has a colon). */
export function isIpv6Range(fields: readonly string[]): boolean {
  return fields.some((f) => f.includes(':') && !/^(?:set|tag|interface|constructor):/i.test(f));
}

/** One IPv6 dhcp-range (fields without set:/tag: prefixes, already split on commas). */
export function importDhcpRange6(value: string, fields: readonly string[], sink: V6Sink): void {
  const addresses = fields.filter((f) => f.includes(':') && !/^constructor:/i.test(f));
  const constructor = fields.find((f) => /^constructor:/i.test(f));
  const modes = fields.filter((f) => RA_MODES.includes(f.toLowerCase()));
  // after the addresses: [PREFIXLEN (a number up to 128)][,LEASE]
  const rest = fields.filter((f) => !addresses.includes(f) && f !== constructor && !modes.includes(f));
  const prefixLength = rest[0] !== undefined && /^\d{1,3}$/.test(rest[0]) && Number(rest[0]) <= 128 ? Number(rest.shift()) : undefined;
  const lease = rest.find((f) => LEASE_RE.test(f));
  for (const f of rest) if (f !== lease) sink.problem(`dhcp-range ${value}: field '${f}' not understood; ignored`);
  if (prefixLength !== undefined && prefixLength !== 64) return sink.problem(`dhcp-range ${value}: prefix length ${prefixLength}; natd serves one /64 (SLAAC needs 64); range skipped`);
  if (modes.length && addresses.length < 2) {
    return sink.ignore('dhcp-range', `${modes.join(',')}: natd advertises the prefix for SLAAC whenever it serves IPv6 (--subnet6 / --ipv6 auto)`);
  }
  if (constructor) return sink.problem(`dhcp-range ${value}: ${constructor} ranges are relative to the interface's prefix; give the full addresses with --dhcp6-range START-END; range skipped`);
  const [start, end] = addresses.map((a) => parseIpv6(a));
  if (!start || !end || addresses.length !== 2) return sink.problem(`dhcp-range ${value}: expected START,END[,PREFIXLEN][,LEASE] with IPv6 addresses; range skipped`);
  if (sink.settings.dhcp6Range !== undefined) return sink.problem(`second IPv6 dhcp-range ${value} skipped (natd serves one IPv6 range)`);
  sink.settings.dhcp6Range = `${formatIpv6(start)}-${formatIpv6(end)}${lease ? `,${lease}` : ''}`;
  if (modes.length) sink.ignore('dhcp-range', `${modes.join(',')}: natd advertises the prefix for SLAAC and serves the range by DHCPv6`);
}

/** ra-param=INTERFACE,[mtu:N|mtu:IF|mtu:off,][high|low,]INTERVAL[,LIFETIME]: natd has no setting for any of it. */
export function importRaParam(value: string | undefined, sink: V6Sink): void {
  const fields = (value ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  const parts: string[] = [];
  const mtu = fields.find((f) => /^mtu:/i.test(f));
  if (mtu) parts.push(`${mtu}: natd advertises the bridge's MTU (set it with --mtu, which also sets the DHCPv4 MTU option)`);
  if (fields.some((f) => /^(?:high|low)$/i.test(f))) parts.push('router priority: natd advertises medium');
  if (fields.slice(1).some((f) => /^\d+$/.test(f))) parts.push('interval/router lifetime: natd uses the RFC 4861 timers (200-600 s, lifetime 1800 s)');
  sink.problem(`ra-param=${value ?? ''}: not carried (${parts.length ? parts.join('; ') : 'nothing natd can set'})`);
}

/** A dhcp-host value with an [IPv6] field: the value without it (for the IPv4 reservation), and the line kept. */
export function splitDhcpHost6(value: string, sink: V6Sink): string {
  const list = ((sink.settings.dhcpHost as string[] | undefined) ??= []);
  list.push(value);
  return value.split(',').filter((f) => !/^\[.*\]$/.test(f.trim())).join(',');
}

/** A listen-address that is IPv6 and global/unique-local: the gateway natd serves, as subnet6. */
export function importListenAddress6(text: string, sink: V6Sink): boolean {
  const address = parseIpv6(text);
  if (!address) return false;
  if (address[0] === 0xfe && (address[1]! & 0xc0) === 0x80) return true; // link-local: nothing to carry
  if (address.every((b, i) => (i < 15 ? b === 0 : b <= 1))) return true; // ::1, ::
  if (sink.settings.subnet6 === undefined) sink.settings.subnet6 = `${formatIpv6(address)}/64`;
  return true;
}

/** The IPv6 fields the importers carry that other parts of issue 14 add to the config (DHCPv6). */
export const DHCP6_FIELDS = ['dhcp6Range', 'dhcpHost'] as const;

/**
 * Removes the DHCPv6 fields this build's config does not take (isKnownSetting), each with a problem line, so the
 * imported config stays one natd accepts; once the DHCPv6 settings exist they are carried as they are.
 */
export function dropUnknownV6Fields(settings: Record<string, unknown>, known: (field: string) => boolean, problem: (field: string, message: string) => void): void {
  for (const field of DHCP6_FIELDS) {
    if (settings[field] === undefined || known(field)) continue;
    problem(field, `${JSON.stringify(settings[field])}: this natd has no ${field} setting (DHCPv6); not carried`);
    delete settings[field];
  }
}
