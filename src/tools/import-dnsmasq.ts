/**
 * `natd import-dnsmasq`: turns the dnsmasq instance of the classic recipe (dnsmasq.conf + dhcp-hostsfile +
 * dhcp-leasefile) into natd's config, reservations file and lease journal, so VMs keep their addresses across the
 * switch.
 *
 * Nothing is dropped silently: every option is either applied, known to need nothing in natd (listed as ignored,
 * with the reason), reported as a problem (known but not importable), or listed as unknown. The file parsers never
 * throw; importDnsmasq validates the result with natd's own config validation before it writes anything.
 */
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { resolveConfig, type RawSettings } from '../config.js';
import { STATE_FILES } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { silentLogger } from '../log.js';
import { formatIpv4, parseIpv4, makeSubnet, subnetContains, type Subnet } from '../net/ipv4.js';
import { formatHostsfile, parseHostsfile, type FileProblem } from '../dhcp/hostsfile.js';
import { parseDnsmasqLeases } from '../dhcp/dnsmasq-leases.js';
import { JOURNAL_FILE, LeaseStore } from '../dhcp/lease-store.js';
import type { Lease, Reservation } from '../dhcp/types.js';
import { reservationClash, reservedAddressProblem } from '../dhcp/reservation-rules.js';
import { writeFileAtomic } from '../state/atomic-file.js';

/** natd's reservations file in the state dir (dnsmasq hostsfile format). */
export const RESERVATIONS_FILE = STATE_FILES.importedReservations;

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
  range?: { start: number; end: number; prefix?: number; leaseSeconds?: number; line: number };
  servers: string[];
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
  'strict-order': 'natd tries upstreams in order and backs off from failing ones',
  'all-servers': 'natd tries upstreams in order and backs off from failing ones',
  'dhcp-lease-max': 'the DHCP range bounds the number of leases',
  'user': 'natd runs under its systemd unit',
  'group': 'natd runs under its systemd unit',
  'pid-file': 'natd runs under its systemd unit',
  'keep-in-foreground': 'natd runs under its systemd unit',
  'no-daemon': 'natd runs under its systemd unit',
  'log-queries': 'natd logs to the journal; use --log-level debug',
  'log-dhcp': 'natd logs to the journal; use --log-level debug',
  'log-facility': 'natd logs to the journal',
  'log-async': 'natd logs to the journal',
  'local-service': 'natd answers only its bridge subnet',
  'dhcp-rapid-commit': 'not needed by the VM clients natd serves',
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
      if (address === undefined) problem(c, line, `listen-address ${text}: not an IPv4 address; ignored (natd serves IPv4 only)`);
      else if (address >>> 24 === 127) ignore(c, line, 'listen-address', `${text} is loopback; natd listens only on the bridge`);
      else c.listenAddresses.push({ address, line });
    }
  },
  'dhcp-range'(value, line, c) {
    parseDhcpRange(value ?? '', line, c);
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
    // `local=/vm/` keeps the VM domain from leaking upstream; natd answers its own domain itself.
    ignore(c, line, 'local', `natd answers its own domain locally (${value ?? ''})`);
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
  'conf-dir'(value, line, c) {
    problem(c, line, `conf-dir=${value ?? ''} not followed: import the options in those files separately`);
  },
};

/** Known options natd has no equivalent for (the operator must decide). */
const UNSUPPORTED: Record<string, string> = {
  'dhcp-option': 'natd sends router, DNS server, domain and routes from its own config',
  'dhcp-option-force': 'natd sends router, DNS server, domain and routes from its own config',
  'dhcp-hostsdir': 'natd reads one hostsfile; concatenate the directory into it',
  'addn-hosts': 'natd answers names of leases and reservations only',
  address: 'natd has no fixed DNS answers',
  'host-record': 'natd has no fixed DNS answers; use a reservation with a name',
  cname: 'natd has no CNAME records',
  'dhcp-boot': 'natd does not serve PXE boot',
  'enable-tftp': 'natd does not serve TFTP',
  'dhcp-match': 'natd has no tags',
  'dhcp-vendorclass': 'natd has no tags',
  'dhcp-userclass': 'natd has no tags',
  'dhcp-ignore': 'natd has no tags',
  'enable-ra': 'natd serves DHCPv4 only',
  'dhcp-script': 'natd has no lease script; watch `natd leases --json` or its journal',
};

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
  if (rest.some((f) => f.includes(':'))) return problem(c, line, `dhcp-range ${value}: IPv6 range skipped (natd serves DHCPv4 only)`);

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
      problem(c, line, 'dhcp-range: infinite leases are not supported; natd keeps its default lease time');
      continue;
    }
    const seconds = parseLeaseTime(field);
    if (seconds !== undefined) range.leaseSeconds = seconds;
    else problem(c, line, `dhcp-range: field '${field}' not understood; ignored`);
  }
  c.range = range;
}

/** `server=ADDR`; `server=/domain/ADDR`, ports, source interfaces and IPv6 are reported. */
function parseServer(value: string, line: number, c: Collected): void {
  if (value.startsWith('/')) {
    return problem(c, line, `server=${value}: per-domain upstreams are not supported; not imported`);
  }
  const m = /^([^#@]+)(#\d+)?(@.*)?$/.exec(value);
  const address = m ? parseIpv4(m[1]!.trim()) : undefined;
  if (!m || address === undefined) {
    return problem(c, line, `server=${value}: not an IPv4 address (natd's upstreams are IPv4); not imported`);
  }
  if (m[2] && m[2] !== '#53') return problem(c, line, `server=${value}: upstream ports other than 53 are not supported; not imported`);
  if (m[3]) problem(c, line, `server=${value}: source address/interface '${m[3]}' ignored; upstream imported`);
  const text = formatIpv4(address);
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
  const c: Collected = { interfaces: [], listenAddresses: [], servers: [], out };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i]!.length > 4096) {
      problem(c, line, 'line too long; skipped');
      continue;
    }
    const option = splitOption(lines[i]!);
    if (!option) continue;
    const handler = Object.hasOwn(HANDLERS, option.name) ? HANDLERS[option.name] : undefined;
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

async function readOptional(path: string, skipped: FileProblem[], what: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    skipped.push({ file: path, line: 0, message: `cannot read the ${what}: ${(err as Error).message}; nothing imported from it` });
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Refuses to overwrite what an operator (or a running natd) already has, unless forced. */
async function checkTargets(opts: ImportOptions, reservationsFile: string, journal: string): Promise<void> {
  if (opts.force) return;
  const taken: string[] = [];
  if (await exists(opts.configOut)) taken.push(opts.configOut);
  if (await exists(reservationsFile)) taken.push(reservationsFile);
  const journalText = await readFile(journal, 'utf8').catch(() => '');
  if (journalText.trim() !== '') taken.push(journal);
  if (taken.length) {
    throw new NatdError(ErrorCodes.STATE, `import would overwrite ${taken.join(', ')}; move them away or pass --force`);
  }
}

/** The subnet the settings describe, to check reservations and leases against. */
function settingsSubnet(settings: RawSettings): Subnet | undefined {
  if (typeof settings.subnet !== 'string') return undefined;
  const [address, prefix] = settings.subnet.split('/');
  const parsed = parseIpv4(address ?? '');
  return parsed === undefined ? undefined : makeSubnet(parsed, Number(prefix));
}

/** Adds `second` to `first`; an entry whose MAC or address is already taken is skipped (first definition wins). */
function mergeReservations(first: Reservation[], second: Reservation[], file: string, skipped: FileProblem[]): Reservation[] {
  const merged = [...first];
  for (const r of second) {
    const clash = reservationClash(merged, r);
    if (clash) skipped.push({ file, line: 0, message: `reservation ${r.mac} ${formatIpv4(r.address)} clashes with ${clash.mac} ${formatIpv4(clash.address)}; skipped` });
    else merged.push(r);
  }
  return merged;
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
  if (hostsfile !== undefined && hostsText !== undefined) {
    const parsed = parseHostsfile(hostsText, hostsfile, subnet);
    skipped.push(...parsed.problems);
    reservations = mergeReservations(reservations, parsed.reservations, hostsfile, skipped);
  }
  return { hostsfile, reservations };
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

  const { hostsfile, reservations } = await importReservations(conf, opts.confFile, baseDir, subnet, skipped);
  const { leasefile, leases, expiredLeases } = await importLeases(conf.leasefile, baseDir, now, subnet, skipped);

  const settings: RawSettings = { ...conf.settings, stateDir: outDir, hostsfile: reservationsFile };
  try {
    resolveConfig({}, settings);
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, `the settings imported from ${opts.confFile} are not valid for natd (nothing written): ${(err as Error).message}`, { cause: err });
  }

  await checkTargets(opts, reservationsFile, journal);
  await writeLeases(outDir, leases, opts.force === true, now);
  await writeFileAtomic(reservationsFile, formatHostsfile(reservations));
  await writeFileAtomic(opts.configOut, JSON.stringify(settings, null, 2) + '\n');

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

/** Writes the leases through LeaseStore, so the journal is exactly what the daemon reads (and its lock is honoured). */
async function writeLeases(dir: string, leases: Lease[], replace: boolean, now: number): Promise<void> {
  const store = await LeaseStore.open(dir, { logger: silentLogger, now: () => now });
  try {
    if (replace) {
      // --force: the imported leases replace whatever the journal held.
      const old = store.load(0).leases;
      await store.commit(old.map((l) => ({ kind: 'release', clientId: l.clientId, address: l.address })));
    }
    await store.commit(leases.map((lease) => ({ kind: 'bind', lease })));
    await store.compact();
  } finally {
    await store.close();
  }
}
