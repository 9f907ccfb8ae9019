/**
 * `natd import-dnsmasq`: turns the dnsmasq instance of the classic recipe (dnsmasq.conf + dhcp-hostsfile +
 * dhcp-leasefile) into natd's config, reservations file and lease journal, so VMs keep their addresses across the
 * switch.
 *
 * Nothing is dropped silently: every option is either applied, known to need nothing in natd (listed as ignored,
 * with the reason), reported as a problem (known but not importable), or listed as unknown. The file parsers never
 * throw; importDnsmasq validates the result with natd's own config validation before it writes anything.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { isKnownSetting, resolveConfig, type RawSettings } from '../config.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseIpv4, makeSubnet, subnetContains, type Subnet } from '../net/ipv4.js';
import { formatHostsfile, parseHostsfile, type FileProblem } from '../dhcp/hostsfile.js';
import { formatHostsfile6, parseHostsfile6 } from '../dhcp6/hostsfile6.js'; // issue 14
import type { Dhcp6HostSpec } from '../dhcp6/settings.js';
import { parseClassRule, parseDhcpBoot, parseDhcpMatch } from '../dhcp/boot.js';
import { parseDnsmasqLeases } from '../dhcp/dnsmasq-leases.js';
import { JOURNAL_FILE } from '../dhcp/lease-store.js';
import type { Lease, Reservation } from '../dhcp/types.js';
import { reservedAddressProblem } from '../dhcp/reservation-rules.js';
import { checkTargets, mergeReservations, readOptional, RESERVATIONS_FILE, settingsSubnet, writeImportedConfig, writeLeases } from './import-writer.js';
import { writeFileAtomic } from '../state/atomic-file.js';
// issue 15: custom DNS records carry over
import { formatRecordSpec, OPTION_OF, parseRecordSpec, RECORD_KINDS, type RecordKind } from '../dns/record-specs.js';
import { OptionSpecError, parseOptionSpec } from '../dhcp/option-spec.js';
import { parseServerSpec, type ServerSpec } from '../dns/domain-routes.js';
// issue 14: the IPv6 lines (dhcp-range, enable-ra, ra-param, dhcp-host [v6], an IPv6 listen-address)
import { dropUnknownV6Fields, importDhcpRange6, importListenAddress6, importRaParam, isIpv6Range, splitDhcpHost6, type V6Sink } from './import-dnsmasq-v6.js';

export { RESERVATIONS_FILE } from './import-writer.js';

export interface ConfLine {
  line: number;
  option: string;
}

export interface IgnoredOption extends ConfLine {
  /** why natd needs nothing for it */
  reason: string;
}

export interface ParsedDnsmasqConf {
  /** natd settings, in the config file's camelCase field names */
  settings: RawSettings;
  /** dhcp-hostsfile path as written in the conf */
  hostsfile?: string;
  /** dhcp-leasefile path as written in the conf */
  leasefile?: string;
  /** reservations from `dhcp-host=` lines in the conf itself */
  hosts: Reservation[];
  /** options natd does not know */
  unknown: ConfLine[];
  /** options natd knows and needs nothing for */
  ignored: IgnoredOption[];
  /** options natd knows but cannot import as written */
  problems: { line: number; message: string }[];
}

// ---- small value parsers ----------------------------------------------------------------------------------------

/** dnsmasq lease time (`3600`, `45m`, `12h`, `1d`, `2w`) in seconds; 'infinite' and junk give undefined. */
function parseLeaseTime(text: string): number | undefined {
  const m = /^(\d{1,9})([smhdw]?)$/i.exec(text);
  if (!m) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]!.toLowerCase() as '' | 's' | 'm' | 'h' | 'd' | 'w'];
  const seconds = Number(m[1]) * unit;
  return seconds > 0 ? seconds : undefined;
}

/** Netmask (255.255.255.0) to prefix length; undefined when not a contiguous mask (e.g. a broadcast address). */
function maskToPrefix(text: string): number | undefined {
  const mask = parseIpv4(text);
  if (mask === undefined) return undefined;
  const hostBits = ~mask >>> 0;
  if ((hostBits & (hostBits + 1)) !== 0) return undefined; // host bits must be all ones at the low end
  const prefix = Math.clz32(hostBits);
  return prefix >= 1 ? prefix : undefined;
}

/** Removes a comment ('#' at the start or after whitespace) and surrounding quotes of the value. */
function splitOption(raw: string): { name: string; value: string | undefined } | undefined {
  const hash = /(?:^|\s)#/.exec(raw);
  const text = (hash ? raw.slice(0, hash.index) : raw).trim();
  if (text === '') return undefined;
  const eq = text.indexOf('=');
  const name = (eq === -1 ? text : text.slice(0, eq)).trim().replace(/^--/, '').toLowerCase();
  if (eq === -1) return { name, value: undefined };
  let value = text.slice(eq + 1).trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return { name, value };
}

// ---- the option table -------------------------------------------------------------------------------------------

/** What parsing collects before the settings are assembled. */
interface Collected {
  interfaces: { name: string; line: number }[];
  listenAddresses: { address: number; line: number }[];
  range?: { start: number; end: number; prefix?: number; leaseSeconds?: number | 'infinite'; line: number };
  servers: string[];
  /** issue 15: server=/domain/... and local=/domain/ entries, as natd's server/local settings take them */
  routes: string[];
  locals: { value: string; line: number }[];
  domain?: string;
  noResolv?: number;
  out: ParsedDnsmasqConf;
}

type Handler = (value: string | undefined, line: number, c: Collected) => void;

/** Options natd needs nothing for, with the reason given to the operator. */
const NO_EFFECT: Record<string, string> = {
  'bind-interfaces': 'natd always binds its sockets to the bridge device',
  'bind-dynamic': 'natd always binds its sockets to the bridge device',
  'except-interface': 'natd serves only its bridge',
  'no-dhcp-interface': 'natd serves only its bridge',
  'domain-needed': 'natd always applies it (bare names are answered locally, never forwarded)',
  'bogus-priv': 'natd always applies it (private reverse lookups are answered locally)',
  'expand-hosts': 'natd answers VM names both bare and qualified with the domain',
  'no-hosts': 'natd does not read /etc/hosts',
  'dhcp-no-override': 'natd never overloads the file/sname fields',
  'dhcp-authoritative': 'natd NAKs requests for addresses it knows are wrong, as an authoritative server does',
  'all-servers': 'natd asks one server at a time: the fastest first, or in order with strict-order',
  'dhcp-lease-max': 'the DHCP range bounds the number of leases',
  'user': 'natd runs under its systemd unit',
  'group': 'natd runs under its systemd unit',
  'pid-file': 'natd runs under its systemd unit',
  'keep-in-foreground': 'natd runs under its systemd unit',
  'no-daemon': 'natd runs under its systemd unit',
  'log-dhcp': 'natd logs to the journal; use --log-level debug',
  'log-facility': 'natd logs to the journal',
  'log-async': 'natd logs to the journal',
  'local-service': 'natd answers only its bridge subnet',
  'dhcp-rapid-commit': "natd answers Rapid Commit by default (issue 16)",
  'quiet-dhcp': 'natd logs to the journal; use --log-level',
};

const HANDLERS: Record<string, Handler> = {
  interface(value, line, c) {
    for (const name of splitList(value)) c.interfaces.push({ name, line });
    if (!value) problem(c, line, 'interface= without a name');
  },
  'listen-address'(value, line, c) {
    for (const text of splitList(value)) {
      const address = parseIpv4(text);
      if (address === undefined && importListenAddress6(text, v6Sink(c, line))) continue; // issue 14
      if (address === undefined) problem(c, line, `listen-address ${text}: not an IP address; ignored`);
      // issue 15: natd serves the host itself on a loopback listen-address too, as dnsmasq did
      else if (address >>> 24 === 127) ((c.out.settings.listenAddress ??= []) as string[]).push(formatIpv4(address));
      else c.listenAddresses.push({ address, line });
    }
  },
  'dhcp-range'(value, line, c) {
    parseDhcpRange(value ?? '', line, c);
  },
  // issue 16: natd takes dnsmasq's option specs as they are
  'dhcp-option'(value, line, c) {
    importOptionSpec(value ?? '', line, c, false);
  },
  'dhcp-option-force'(value, line, c) {
    importOptionSpec(value ?? '', line, c, true);
  },
  'dhcp-hostsfile'(value, line, c) {
    if (!value) return problem(c, line, 'dhcp-hostsfile= without a path');
    if (c.out.hostsfile !== undefined) return problem(c, line, `second dhcp-hostsfile ${value} not imported (natd reads one)`);
    c.out.hostsfile = value;
  },
  'dhcp-leasefile'(value, line, c) {
    if (!value) return problem(c, line, 'dhcp-leasefile= without a path');
    c.out.leasefile = value;
  },
  'dhcp-host'(value, line, c) {
    if (value?.includes('[')) value = splitDhcpHost6(value, v6Sink(c, line)); // issue 14
    if (!value || !value.split(',').some((f) => parseIpv4(f.trim()) !== undefined)) return; // IPv6 only: kept in dhcpHost
    const parsed = parseHostsfile(value ?? '', '');
    for (const p of parsed.problems) problem(c, line, `dhcp-host: ${p.message}`);
    c.out.hosts.push(...parsed.reservations);
  },
  server(value, line, c) {
    parseServer(value ?? '', line, c);
  },
  domain(value, line, c) {
    const [name, ...rest] = splitList(value);
    if (!name) return problem(c, line, 'domain= without a name');
    if (c.domain !== undefined && c.domain !== name) return problem(c, line, `second domain ${name} not imported (natd has one domain)`);
    c.domain = name.replace(/\.$/, '');
    if (rest.length) ignore(c, line, 'domain', `the address range '${rest.join(',')}' after the name is not needed: natd serves one subnet`);
  },
  local(value, line, c) {
    // decided in assemble(): local=/DOMAIN/ for natd's own domain needs nothing (natd answers it itself)
    c.locals.push({ value: value ?? '', line });
  },
  // issue 15: dnsmasq's DNS knobs, carried over as natd's options of the same names
  'strict-order'(_value, _line, c) {
    c.out.settings.strictOrder = true;
  },
  'no-negcache'(_value, _line, c) {
    c.out.settings.noNegcache = true;
  },
  'min-cache-ttl'(value, line, c) {
    const seconds = value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : undefined;
    if (seconds === undefined) return problem(c, line, `min-cache-ttl ${value ?? ''}: not a number`);
    // dnsmasq silently caps it at one hour; natd refuses more, so the cap is made visible here
    if (seconds > 3600) problem(c, line, `min-cache-ttl ${seconds}: capped at 3600, as dnsmasq does`);
    c.out.settings.minCacheTtl = Math.min(seconds, 3600);
  },
  'log-queries'(value, line, c) {
    c.out.settings.logQueries = value === 'extra' ? 'extra' : true;
    if (value !== undefined && value !== 'extra') problem(c, line, `log-queries=${value}: natd has no such mode; imported as log-queries`);
  },
  'no-resolv'(_value, line, c) {
    c.noResolv = line;
  },
  'resolv-file'(value, line, c) {
    if (!value) return problem(c, line, 'resolv-file= without a path');
    c.out.settings.resolvConf = value;
  },
  'cache-size'(value, line, c) {
    const size = value !== undefined && /^\d{1,7}$/.test(value) ? Number(value) : undefined;
    if (size === undefined) return problem(c, line, `cache-size ${value ?? ''}: not a number`);
    c.out.settings.cacheSize = size;
  },
  port(value, line, c) {
    if (value === '0') c.out.settings.dns = false;
    else if (value === '53') ignore(c, line, 'port', 'natd serves DNS on port 53');
    else problem(c, line, `port=${value ?? ''}: natd serves DNS on port 53 only`);
  },
  'conf-file'(value, line, c) {
    if (!value) ignore(c, line, 'conf-file', 'empty: stops dnsmasq reading its default config file, which natd never reads');
    else problem(c, line, `conf-file=${value} not followed: import the options in that file separately`);
  },
  // issue 16: PXE boot and TFTP carry over with the same syntax (checked here so a bad line is reported, not imported)
  'dhcp-boot'(value, line, c) {
    addChecked(c, line, 'dhcp-boot', 'dhcpBoot', value, parseDhcpBoot);
  },
  'dhcp-match'(value, line, c) {
    addChecked(c, line, 'dhcp-match', 'dhcpMatch', value, parseDhcpMatch);
  },
  'dhcp-userclass'(value, line, c) {
    addChecked(c, line, 'dhcp-userclass', 'dhcpUserclass', value, parseClassRule);
  },
  'dhcp-vendorclass'(value, line, c) {
    addChecked(c, line, 'dhcp-vendorclass', 'dhcpVendorclass', value, parseClassRule);
  },
  'enable-tftp'(value, line, c) {
    c.out.settings.enableTftp = true;
    if (value) ignore(c, line, 'enable-tftp', `the interface '${value}' is not needed: natd serves TFTP on its bridge only`);
  },
  'tftp-root'(value, line, c) {
    const [dir, ...rest] = splitList(value);
    if (!dir) return problem(c, line, 'tftp-root= without a directory');
    c.out.settings.tftpRoot = dir;
    if (rest.length) ignore(c, line, 'tftp-root', `the interface '${rest.join(',')}' is not needed: natd serves TFTP on its bridge only`);
  },
  'tftp-max'(value, line, c) {
    const max = value !== undefined && /^\d{1,4}$/.test(value) ? Number(value) : undefined;
    if (max === undefined) return problem(c, line, `tftp-max ${value ?? ''}: not a number`);
    c.out.settings.tftpMax = max;
  },
  'dhcp-script'(value, line, c) {
    // natd calls it the way dnsmasq does (arguments and DNSMASQ_* environment); it must be runnable on this host
    if (!value || !value.startsWith('/')) return problem(c, line, `dhcp-script=${value ?? ''}: natd needs an absolute path; not imported`);
    try {
      accessSync(value, fsConstants.X_OK);
      c.out.settings.dhcpScript = value;
    } catch {
      problem(c, line, `dhcp-script=${value}: not an executable file on this host; not imported`);
    }
  },
  'conf-dir'(value, line, c) {
    problem(c, line, `conf-dir=${value ?? ''} not followed: import the options in those files separately`);
  },
};

// ---- issue 15: custom DNS records, addn-hosts and local-ttl ------------------------------------------------------

/** host-record, cname, srv-host, txt-record, mx-host, ptr-record, address: the same syntax in natd's config. */
function recordHandler(kind: RecordKind): Handler {
  return (value, line, c) => {
    const parsed = parseRecordSpec(kind, value ?? '');
    if (!parsed.ok) return problem(c, line, `${OPTION_OF[kind]}=${value ?? ''}: ${parsed.error}; not imported`);
    const settings = c.out.settings as Record<string, unknown>;
    settings[kind] = [...((settings[kind] as string[] | undefined) ?? []), formatRecordSpec(parsed.spec)];
  };
}

const RECORD_HANDLERS: Record<string, Handler> = {
  ...Object.fromEntries(RECORD_KINDS.map((kind) => [OPTION_OF[kind], recordHandler(kind)])),
  'addn-hosts'(value, line, c) {
    if (!value) return problem(c, line, 'addn-hosts= without a path');
    // paths are made absolute against the conf's directory in importDnsmasq
    c.out.settings.addnHosts = [...((c.out.settings.addnHosts as string[] | undefined) ?? []), value];
  },
  // issue 14
  'enable-ra'(_value, line, c) {
    ignore(c, line, 'enable-ra', 'natd sends router advertisements whenever it serves IPv6 (--subnet6 / --ipv6 auto)');
  },
  'ra-param'(value, line, c) {
    importRaParam(value, v6Sink(c, line));
  },
  'local-ttl'(value, line, c) {
    if (value === undefined || !/^\d{1,10}$/.test(value) || Number(value) > 2_147_483_647) return problem(c, line, `local-ttl=${value ?? ''}: not a number of seconds`);
    c.out.settings.localTtl = Number(value);
  },
};

/** Known options natd has no equivalent for (the operator must decide). */
const UNSUPPORTED: Record<string, string> = {
  'dhcp-hostsdir': 'natd reads one hostsfile; concatenate the directory into it',
  'dhcp-ignore': 'natd has no tags',
};

/** issue 14: where the IPv6 lines report (import-dnsmasq-v6.ts) */
function v6Sink(c: Collected, line: number): V6Sink {
  return { settings: c.out.settings as Record<string, unknown>, problem: (m) => problem(c, line, m), ignore: (o, r) => ignore(c, line, o, r) };
}

/** One dhcp-option line into the config's dhcpOptions (or dhcpOptionsForce), when natd can send it. */
function importOptionSpec(value: string, line: number, c: Collected, force: boolean): void {
  try {
    parseOptionSpec(value, force);
  } catch (err) {
    if (!(err instanceof OptionSpecError)) throw err;
    return problem(c, line, `dhcp-option${force ? '-force' : ''}=${value}: ${err.message}; not imported`);
  }
  const key = force ? 'dhcpOptionsForce' : 'dhcpOptions';
  c.out.settings[key] = [...((c.out.settings[key] as string[] | undefined) ?? []), value];
}

/** issue 16: a repeatable option natd takes with dnsmasq's syntax, appended when it parses. */
function addChecked(c: Collected, line: number, option: string, key: 'dhcpBoot' | 'dhcpMatch' | 'dhcpUserclass' | 'dhcpVendorclass', value: string | undefined, parse: (text: string) => unknown): void {
  try {
    parse(value ?? '');
  } catch (err) {
    return problem(c, line, `${option}: ${(err as Error).message}; not imported`);
  }
  const list = (c.out.settings[key] as string[] | undefined) ?? [];
  list.push(value!);
  c.out.settings[key] = list;
}

function splitList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function problem(c: Collected, line: number, message: string): void {
  c.out.problems.push({ line, message });
}

function ignore(c: Collected, line: number, option: string, reason: string): void {
  c.out.ignored.push({ line, option, reason });
}

/** `[set:T,][tag:T,]START,END[,MODE][,MASK][,BROADCAST][,LEASE]` (IPv4 forms). */
function parseDhcpRange(value: string, line: number, c: Collected): void {
  const fields = splitList(value);
  const tags = fields.filter((f) => /^(?:set|tag|interface):/i.test(f));
  const rest = fields.filter((f) => !tags.includes(f));
  if (tags.some((t) => /^(?:tag|interface):/i.test(t))) {
    return problem(c, line, `dhcp-range ${value}: conditional ranges (tag:/interface:) are not supported; range skipped`);
  }
  if (tags.length) problem(c, line, `dhcp-range: '${tags.join(',')}' ignored (natd has no tags); range imported`);
  if (isIpv6Range(rest)) return importDhcpRange6(value, rest, v6Sink(c, line)); // issue 14

  const start = parseIpv4(rest[0] ?? '');
  const end = parseIpv4(rest[1] ?? '');
  if (start === undefined || end === undefined) {
    const mode = rest[1];
    if (start !== undefined && mode && /^(?:static|proxy)$/i.test(mode)) {
      return problem(c, line, `dhcp-range ${value}: '${mode}' mode is not supported (natd serves a dynamic range); range skipped`);
    }
    return problem(c, line, `dhcp-range ${value}: expected START,END[,MASK][,LEASE]; range skipped`);
  }
  if (start > end) return problem(c, line, `dhcp-range ${value}: start is after end; range skipped`);
  if (c.range) return problem(c, line, `second dhcp-range ${value} skipped (natd serves one range, from line ${c.range.line})`);

  const range: NonNullable<Collected['range']> = { start, end, line };
  for (const field of rest.slice(2)) {
    const asAddress = parseIpv4(field);
    if (asAddress !== undefined) {
      const prefix = maskToPrefix(field);
      if (prefix !== undefined && range.prefix === undefined) range.prefix = prefix;
      else if (prefix === undefined) ignore(c, line, 'dhcp-range', `broadcast address ${field}: natd derives it from the subnet`);
      continue;
    }
    if (/^infinite$/i.test(field)) {
      range.leaseSeconds = 'infinite'; // issue 16
      continue;
    }
    const seconds = parseLeaseTime(field);
    if (seconds !== undefined) range.leaseSeconds = seconds;
    else problem(c, line, `dhcp-range: field '${field}' not understood; ignored`);
  }
  c.range = range;
}

/**
 * `server=ADDR[#PORT]` becomes an upstream, `server=/domain/.../ADDR` (and `/domain/`, `/domain/#`) a natd `server`
 * route (issue 15, dns/domain-routes.ts reads it); a source address/interface (`@...`) is dropped and reported.
 */
function parseServer(value: string, line: number, c: Collected): void {
  const at = value.indexOf('@', value.lastIndexOf('/') + 1);
  const spec = at < 0 ? value : value.slice(0, at);
  let parsed: ServerSpec;
  try {
    parsed = parseServerSpec(spec);
  } catch (err) {
    return problem(c, line, `server=${value}: ${(err as Error).message}; not imported`);
  }
  if (at >= 0) problem(c, line, `server=${value}: source address/interface '${value.slice(at)}' ignored; server imported`);
  if (parsed.kind !== 'upstream') {
    if (!c.routes.includes(spec)) c.routes.push(spec);
    return;
  }
  const { address, port } = parsed.server;
  const text = port === 53 && !address.includes(':') ? address : `${address}#${port}`;
  if (!c.servers.includes(text)) c.servers.push(text);
}

// ---- assembly ---------------------------------------------------------------------------------------------------

/** The listen address (gateway) that lies in the range's subnet, or the first one. */
function gatewayFor(c: Collected, prefix: number | undefined): number | undefined {
  if (!c.listenAddresses.length) return undefined;
  if (c.range && prefix !== undefined) {
    const subnet = makeSubnet(c.range.start, prefix);
    const inside = c.listenAddresses.find((l) => subnetContains(subnet, l.address));
    if (inside) return inside.address;
  }
  return c.listenAddresses[0]!.address;
}

function assemble(c: Collected): void {
  const { settings } = c.out;
  const [first, ...others] = c.interfaces;
  if (first) settings.bridge = first.name;
  for (const other of others) {
    c.out.problems.push({ line: other.line, message: `interface ${other.name} not imported: natd serves one bridge (${first!.name})` });
  }
  if (c.range) {
    settings.dhcpRange = `${formatIpv4(c.range.start)}-${formatIpv4(c.range.end)}`;
    if (c.range.leaseSeconds !== undefined) settings.leaseTime = c.range.leaseSeconds;
  }
  // natd wants the gateway address with its prefix; the prefix comes from the range mask, else /24 like dnsmasq.
  const prefix = c.range?.prefix ?? (c.range ? 24 : undefined);
  const gateway = gatewayFor(c, prefix);
  if (gateway !== undefined && prefix !== undefined) {
    if (c.range && !subnetContains(makeSubnet(gateway, prefix), c.range.start)) {
      c.out.problems.push({
        line: c.range.line,
        message: `listen-address ${formatIpv4(gateway)} is not in the range's /${prefix}; subnet left to the bridge's address`,
      });
    } else settings.subnet = `${formatIpv4(gateway)}/${prefix}`;
  }
  if (c.domain !== undefined) settings.domain = c.domain;
  const locals: string[] = [];
  for (const { value, line } of c.locals) {
    let spec: ServerSpec;
    try {
      spec = parseServerSpec(value, 'local');
    } catch (err) {
      problem(c, line, `local=${value}: ${(err as Error).message}; not imported`);
      continue;
    }
    const domains = spec.kind === 'upstream' ? [] : spec.domains;
    if (spec.kind === 'local' && c.domain !== undefined && domains.length === 1 && domains[0] === c.domain.toLowerCase()) {
      ignore(c, line, 'local', `natd answers its own domain ${c.domain} locally`);
    } else if (spec.kind === 'local') locals.push(value);
    else c.routes.push(value); // local=/d/ADDR is dnsmasq's synonym of server=/d/ADDR
  }
  if (c.routes.length) settings.server = [...c.routes];
  if (locals.length) settings.local = locals;
  if (c.servers.length) settings.upstreams = [...c.servers];
  else if (c.noResolv !== undefined) {
    c.out.problems.push({ line: c.noResolv, message: 'no-resolv without server= lines: natd will use the upstreams in resolv.conf' });
  }
  if (c.noResolv !== undefined && c.servers.length) ignore(c, c.noResolv, 'no-resolv', 'natd uses the server= upstreams instead of resolv.conf');
}

/** Parses a dnsmasq.conf. Never throws; `file` names the source in messages. */
export function parseDnsmasqConf(text: string, file: string): ParsedDnsmasqConf {
  void file; // line numbers are relative to it; callers attach the name (kept for a uniform parser signature)
  const out: ParsedDnsmasqConf = { settings: {}, hosts: [], unknown: [], ignored: [], problems: [] };
  const c: Collected = { interfaces: [], listenAddresses: [], servers: [], routes: [], locals: [], out };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i]!.length > 4096) {
      problem(c, line, 'line too long; skipped');
      continue;
    }
    const option = splitOption(lines[i]!);
    if (!option) continue;
    const handler = Object.hasOwn(HANDLERS, option.name) ? HANDLERS[option.name] : Object.hasOwn(RECORD_HANDLERS, option.name) ? RECORD_HANDLERS[option.name] : undefined;
    if (handler) handler(option.value, line, c);
    else if (Object.hasOwn(NO_EFFECT, option.name)) ignore(c, line, option.name, NO_EFFECT[option.name]!);
    else if (Object.hasOwn(UNSUPPORTED, option.name)) problem(c, line, `${option.name}: not supported (${UNSUPPORTED[option.name]})`);
    else out.unknown.push({ line, option: option.name.slice(0, 80) });
  }
  assemble(c);
  return out;
}

// ---- the import -------------------------------------------------------------------------------------------------

export interface ImportOptions {
  /** the dnsmasq.conf to read */
  confFile: string;
  /** natd's state dir for the bridge: reservations and the lease journal go here */
  outDir: string;
  /** where natd's JSON config is written */
  configOut: string;
  /** overwrite an existing config, reservations file or non-empty lease journal (default false) */
  force?: boolean;
  /** ms epoch used to drop expired leases (tests) */
  now?: number;
}

export interface ImportReport {
  configFile: string;
  reservationsFile: string;
  leaseJournal: string;
  /** the settings written to configFile */
  settings: RawSettings;
  hostsfile?: string;
  leasefile?: string;
  reservations: Reservation[];
  leases: Lease[];
  /** leases in the dnsmasq file that had already expired */
  expiredLeases: number;
  /** every line of any of the files that was not imported (or imported with a change), with file and line */
  skipped: FileProblem[];
  unknown: (ConfLine & { file: string })[];
  ignored: (IgnoredOption & { file: string })[];
}

/** The conf's dhcp-host lines, then its dhcp-hostsfile: the first definition of a MAC or address wins. */
async function importReservations(conf: ReturnType<typeof parseDnsmasqConf>, confFile: string, baseDir: string, subnet: Subnet | undefined, skipped: FileProblem[]) {
  const inSubnet = conf.hosts.filter((r) => {
    if (!subnet || reservedAddressProblem(r.address, subnet) !== 'outside') return true; // network, broadcast: skipped when natd loads the written hostsfile
    skipped.push({ file: confFile, line: 0, message: `dhcp-host ${r.mac} ${formatIpv4(r.address)} is outside the subnet; skipped` });
    return false;
  });
  let reservations = mergeReservations([], inSubnet, confFile, skipped);
  const hostsfile = conf.hostsfile === undefined ? undefined : resolve(baseDir, conf.hostsfile);
  const hostsText = hostsfile === undefined ? undefined : await readOptional(hostsfile, skipped, 'dhcp-hostsfile');
  let reservations6: Dhcp6HostSpec[] = [];
  if (hostsfile !== undefined && hostsText !== undefined) {
    const parsed = parseHostsfile(hostsText, hostsfile, subnet);
    skipped.push(...parsed.problems);
    reservations = mergeReservations(reservations, parsed.reservations, hostsfile, skipped);
    // issue 14: the hostsfile's IPv6 lines (dhcp-host syntax) go into natd's hostsfile as they are
    const parsed6 = parseHostsfile6(hostsText, hostsfile);
    skipped.push(...parsed6.problems);
    reservations6 = parsed6.reservations;
  }
  return { hostsfile, reservations, reservations6 };
}

/** The dhcp-leasefile's unexpired IPv4 leases. */
async function importLeases(file: string | undefined, baseDir: string, now: number, subnet: Subnet | undefined, skipped: FileProblem[]) {
  const leasefile = file === undefined ? undefined : resolve(baseDir, file);
  const leasesText = leasefile === undefined ? undefined : await readOptional(leasefile, skipped, 'dhcp-leasefile');
  let leases: Lease[] = [];
  let expiredLeases = 0;
  if (leasefile !== undefined && leasesText !== undefined) {
    const parsed = parseDnsmasqLeases(leasesText, leasefile, { now, ...(subnet ? { subnet } : {}) });
    skipped.push(...parsed.problems);
    leases = parsed.leases.filter((l) => l.expiresAt > now);
    expiredLeases = parsed.leases.length - leases.length;
  }
  return { leasefile, leases, expiredLeases };
}

/**
 * Reads the dnsmasq.conf and the hostsfile and leases file it names (paths relative to the conf's directory),
 * writes natd's config, `<outDir>/reservations` and the lease journal in `<outDir>`, and reports what was imported
 * and what was skipped. Validates the settings before writing anything; the config is written last.
 */
export async function importDnsmasq(opts: ImportOptions): Promise<ImportReport> {
  const now = opts.now ?? Date.now();
  const confText = await readFile(opts.confFile, 'utf8').catch((err: Error) => {
    throw new NatdError(ErrorCodes.CONFIG, `cannot read dnsmasq config ${opts.confFile}: ${err.message}`, { cause: err });
  });
  const conf = parseDnsmasqConf(confText, opts.confFile);
  const skipped: FileProblem[] = conf.problems.map((p) => ({ file: opts.confFile, ...p }));
  const baseDir = dirname(resolve(opts.confFile));
  const outDir = resolve(opts.outDir); // the config must name it absolutely
  const reservationsFile = join(outDir, RESERVATIONS_FILE);
  const journal = join(outDir, JOURNAL_FILE);

  if (conf.settings.bridge === undefined) {
    throw new NatdError(ErrorCodes.CONFIG, `${opts.confFile} has no interface= line; natd needs the bridge name`);
  }
  const subnet = settingsSubnet(conf.settings);

  const { hostsfile, reservations, reservations6 } = await importReservations(conf, opts.confFile, baseDir, subnet, skipped);
  const { leasefile, leases, expiredLeases } = await importLeases(conf.leasefile, baseDir, now, subnet, skipped);

  const settings: RawSettings = { ...conf.settings, stateDir: outDir, hostsfile: reservationsFile };
  if (Array.isArray(settings.addnHosts)) settings.addnHosts = (settings.addnHosts as string[]).map((p) => resolve(baseDir, p)); // issue 15
  dropUnknownV6Fields(settings as Record<string, unknown>, isKnownSetting, (field, message) => skipped.push({ file: opts.confFile, line: 0, message: `${field}: ${message}` })); // issue 14
  try {
    resolveConfig({}, settings);
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, `the settings imported from ${opts.confFile} are not valid for natd (nothing written): ${(err as Error).message}`, { cause: err });
  }

  await checkTargets(opts.force, opts.configOut, reservationsFile, journal);
  await writeLeases(outDir, leases, opts.force === true, now);
  await writeFileAtomic(reservationsFile, formatHostsfile(reservations) + formatHostsfile6(reservations6)); // issue 14: + IPv6 lines
  await writeImportedConfig(opts.configOut, settings);

  return {
    configFile: opts.configOut,
    reservationsFile,
    leaseJournal: journal,
    settings,
    ...(hostsfile !== undefined ? { hostsfile } : {}),
    ...(leasefile !== undefined ? { leasefile } : {}),
    reservations,
    leases,
    expiredLeases,
    skipped,
    unknown: conf.unknown.map((u) => ({ file: opts.confFile, ...u })),
    ignored: conf.ignored.map((u) => ({ file: opts.confFile, ...u })),
  };
}
