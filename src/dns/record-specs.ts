/**
 * Custom DNS records as an operator writes them (issue 15), in dnsmasq's value syntax so a dnsmasq.conf line carries
 * over unchanged:
 *
 *   host-record=name[,name…],[ipv4][,ipv6][,ttl]     A/AAAA, and PTR for the first name
 *   cname=alias[,alias…],target[,ttl]
 *   srv-host=_service._proto[.name][,target[,port[,priority[,weight]]]]
 *   txt-record=name[,"text"…]
 *   mx-host=name[,target][,preference]
 *   ptr-record=name[,target]
 *   address=/domain[/domain…]/[address]                the domains and every name under them; no address = NXDOMAIN
 *
 * `parseRecordSpec` never throws: it returns the record or a one-line reason, which config.ts and the control socket
 * prefix with the field. `formatRecordSpec` writes the canonical form back (parse ∘ format is the identity on parsed
 * records), which is what `natd records list` shows and what the runtime file stores.
 */
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';
import { isIPv4, isIPv6 } from 'node:net';

/** The config file's camelCase field of each kind; the flag and dnsmasq option is its kebab-case form. */
export const RECORD_KINDS = ['hostRecord', 'cname', 'srvHost', 'txtRecord', 'mxHost', 'ptrRecord', 'address'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

/** `hostRecord` → `host-record`: the dnsmasq option and natd flag name. */
export const OPTION_OF: Record<RecordKind, string> = {
  hostRecord: 'host-record', cname: 'cname', srvHost: 'srv-host', txtRecord: 'txt-record', mxHost: 'mx-host', ptrRecord: 'ptr-record', address: 'address',
};

export function kindOfOption(option: string): RecordKind | undefined {
  const bare = option.replace(/^--/, '').toLowerCase();
  return RECORD_KINDS.find((k) => OPTION_OF[k] === bare || k.toLowerCase() === bare);
}

export type RecordSpec =
  | { kind: 'hostRecord'; names: string[]; ipv4?: string; ipv6?: string; ttl?: number }
  | { kind: 'cname'; aliases: string[]; target: string; ttl?: number }
  | { kind: 'srvHost'; name: string; target?: string; port: number; priority: number; weight: number }
  | { kind: 'txtRecord'; name: string; texts: string[] }
  | { kind: 'mxHost'; name: string; target?: string; preference: number }
  | { kind: 'ptrRecord'; name: string; target?: string }
  | { kind: 'address'; domains: string[]; address?: string };

export type ParsedSpec = { ok: true; spec: RecordSpec } | { ok: false; error: string };

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_TTL = 2_147_483_647; // RFC 2181 §8
/** dnsmasq's defaults: an MX preference of 1, an SRV port of 1 (priority and weight 0) */
const DEFAULT_MX_PREFERENCE = 1;
const DEFAULT_SRV_PORT = 1;

/** Lower case, without a trailing dot. */
export function normalizeRecordName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** A name natd may hold records for: labels of letters, digits, '-' and '_', at most 253 characters. */
export function isRecordName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}

function fail(error: string): ParsedSpec {
  return { ok: false, error };
}

function nameOrError(text: string | undefined, what: string): string | { error: string } {
  const name = normalizeRecordName(text ?? '');
  if (!isRecordName(name)) return { error: `${what} "${text ?? ''}" is not a DNS name (labels of letters, digits, '-', '_')` };
  return name;
}

function integer(text: string, what: string, max: number): number | { error: string } {
  if (!/^\d{1,10}$/.test(text.trim()) || Number(text) > max) return { error: `${what} "${text}" is not a whole number from 0 to ${max}` };
  return Number(text);
}

const isError = (v: unknown): v is { error: string } => typeof v === 'object' && v !== null && 'error' in v;

/**
 * Splits at commas outside double quotes; quotes are kept on the field (TXT strings use them) and `\"` or `\\`
 * inside quotes escape. An unterminated quote is an error.
 */
function splitFields(text: string): string[] | { error: string } {
  const fields: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted && ch === '\\' && i + 1 < text.length) {
      current += ch + text[++i]!;
    } else if (ch === '"') {
      quoted = !quoted;
      current += ch;
    } else if (ch === ',' && !quoted) {
      fields.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (quoted) return { error: 'a quoted text has no closing "' };
  fields.push(current.trim());
  return fields;
}

/** A TXT string: "quoted" (with \" and \\ escapes) or bare; at most 255 bytes (one character-string). */
function txtString(field: string): string | { error: string } {
  let text = field;
  if (field.startsWith('"')) {
    if (!field.endsWith('"') || field.length < 2) return { error: `text ${field} must be one quoted string` };
    text = field.slice(1, -1).replace(/\\(["\\])/g, '$1');
  } else if (field.includes('"')) return { error: `text ${field} has a stray quote` };
  if (Buffer.byteLength(text, 'utf8') > 255) return { error: 'a text is longer than 255 bytes (split it into several strings)' };
  return text;
}

function quoteTxt(text: string): string {
  return `"${text.replace(/(["\\])/g, '\\$1')}"`;
}

/** `domain` completes an SRV name of only `_service._proto`, as dnsmasq does with its --domain. */
export interface SpecContext {
  domain?: string | undefined;
}

export function parseRecordSpec(kind: RecordKind, text: string, context: SpecContext = {}): ParsedSpec {
  if (typeof text !== 'string') return fail('expected a string');
  if (text.length > 4096) return fail('longer than 4096 characters');
  if (kind === 'address') return parseAddress(text);
  const split = splitFields(text);
  if (isError(split)) return fail(split.error);
  const fields = split;
  if (kind !== 'txtRecord' && fields.some((f) => f.includes('"'))) return fail('quotes are only for txt-record texts');
  switch (kind) {
    case 'hostRecord':
      return parseHostRecord(fields);
    case 'cname':
      return parseCname(fields);
    case 'srvHost':
      return parseSrv(fields, context);
    case 'txtRecord':
      return parseTxt(fields);
    case 'mxHost':
      return parseMx(fields);
    case 'ptrRecord':
      return parsePtr(fields);
  }
}

function parseHostRecord(fields: string[]): ParsedSpec {
  const spec: Extract<RecordSpec, { kind: 'hostRecord' }> = { kind: 'hostRecord', names: [] };
  let i = 0;
  for (; i < fields.length && !isIPv4(fields[i]!) && !isIPv6(fields[i]!) && fields[i] !== ''; i++) {
    const name = nameOrError(fields[i], 'name');
    if (isError(name)) return fail(name.error);
    if (!spec.names.includes(name)) spec.names.push(name);
  }
  if (spec.names.length === 0) return fail('expected name[,name…],ipv4[,ipv6][,ttl]: no name');
  for (; i < fields.length; i++) {
    const field = fields[i]!;
    if (field === '') continue;
    if (isIPv4(field)) {
      if (spec.ipv4 !== undefined) return fail(`a second IPv4 address ${field} (one of each family)`);
      spec.ipv4 = field;
    } else if (isIPv6(field)) {
      if (spec.ipv6 !== undefined) return fail(`a second IPv6 address ${field} (one of each family)`);
      spec.ipv6 = canonicalIpv6(field);
    } else if (i === fields.length - 1 && /^\d+$/.test(field)) {
      const ttl = integer(field, 'TTL', MAX_TTL);
      if (isError(ttl)) return fail(ttl.error);
      spec.ttl = ttl;
    } else return fail(`"${field}" is neither an address nor a TTL (names come first)`);
  }
  if (spec.ipv4 === undefined && spec.ipv6 === undefined) return fail('expected name[,name…],ipv4[,ipv6][,ttl]: no address');
  return { ok: true, spec };
}

function parseCname(fields: string[]): ParsedSpec {
  let ttl: number | undefined;
  const rest = [...fields];
  if (rest.length >= 3 && /^\d+$/.test(rest[rest.length - 1]!)) {
    const parsed = integer(rest.pop()!, 'TTL', MAX_TTL);
    if (isError(parsed)) return fail(parsed.error);
    ttl = parsed;
  }
  if (rest.length < 2) return fail('expected alias[,alias…],target[,ttl]');
  const names: string[] = [];
  for (const field of rest) {
    const name = nameOrError(field, 'name');
    if (isError(name)) return fail(name.error);
    names.push(name);
  }
  const target = names.pop()!;
  const aliases = [...new Set(names)];
  if (aliases.includes(target)) return fail(`"${target}" would be an alias of itself`);
  return { ok: true, spec: { kind: 'cname', aliases, target, ...(ttl !== undefined ? { ttl } : {}) } };
}

function parseSrv(fields: string[], context: SpecContext): ParsedSpec {
  if (fields.length > 5) return fail('expected _service._proto.name[,target[,port[,priority[,weight]]]]');
  let name = nameOrError(fields[0], 'name');
  if (isError(name)) return fail(name.error);
  const labels = name.split('.');
  if (!labels[0]!.startsWith('_') || labels.length < 2 || !labels[1]!.startsWith('_')) {
    return fail(`name "${name}" must start with _service._proto (e.g. _ldap._tcp.example.com)`);
  }
  if (labels.length === 2 && context.domain) name = `${name}.${normalizeRecordName(context.domain)}`;
  const spec: Extract<RecordSpec, { kind: 'srvHost' }> = { kind: 'srvHost', name, port: DEFAULT_SRV_PORT, priority: 0, weight: 0 };
  if (fields[1] !== undefined && fields[1] !== '') {
    const target = nameOrError(fields[1], 'target');
    if (isError(target)) return fail(target.error);
    spec.target = target;
  } else if (fields.length > 2) return fail('a port, priority or weight needs a target');
  const numbers: ['port' | 'priority' | 'weight', string | undefined][] = [['port', fields[2]], ['priority', fields[3]], ['weight', fields[4]]];
  for (const [what, field] of numbers) {
    if (field === undefined || field === '') continue;
    const value = integer(field, what, 65535);
    if (isError(value)) return fail(value.error);
    spec[what] = value;
  }
  return { ok: true, spec };
}

function parseTxt(fields: string[]): ParsedSpec {
  const name = nameOrError(fields[0], 'name');
  if (isError(name)) return fail(name.error);
  const texts: string[] = [];
  for (const field of fields.slice(1)) {
    const text = txtString(field);
    if (isError(text)) return fail(text.error);
    texts.push(text);
  }
  if (texts.length > 64) return fail('more than 64 texts');
  return { ok: true, spec: { kind: 'txtRecord', name, texts } };
}

function parseMx(fields: string[]): ParsedSpec {
  if (fields.length > 3) return fail('expected name[,target][,preference]');
  const name = nameOrError(fields[0], 'name');
  if (isError(name)) return fail(name.error);
  const spec: Extract<RecordSpec, { kind: 'mxHost' }> = { kind: 'mxHost', name, preference: DEFAULT_MX_PREFERENCE };
  const rest = fields.slice(1).filter((f) => f !== '');
  // mx-host=name,10 gives a preference with the default target, as dnsmasq reads it
  const last = rest[rest.length - 1];
  if (last !== undefined && /^\d+$/.test(last)) {
    const preference = integer(rest.pop()!, 'preference', 65535);
    if (isError(preference)) return fail(preference.error);
    spec.preference = preference;
  }
  if (rest.length > 1) return fail('expected name[,target][,preference]');
  if (rest[0] !== undefined) {
    const target = nameOrError(rest[0], 'target');
    if (isError(target)) return fail(target.error);
    spec.target = target;
  }
  return { ok: true, spec };
}

function parsePtr(fields: string[]): ParsedSpec {
  if (fields.length > 2) return fail('expected name[,target]');
  const name = nameOrError(fields[0], 'name');
  if (isError(name)) return fail(name.error);
  if (fields[1] === undefined || fields[1] === '') return { ok: true, spec: { kind: 'ptrRecord', name } };
  const target = nameOrError(fields[1], 'target');
  if (isError(target)) return fail(target.error);
  return { ok: true, spec: { kind: 'ptrRecord', name, target } };
}

/** `/domain[/domain…]/[address]`: an IPv4 or IPv6 address, `#` for the null address (0.0.0.0 and ::), or nothing. */
function parseAddress(text: string): ParsedSpec {
  const trimmed = text.trim();
  if (!trimmed.startsWith('/')) return fail('expected /domain[/domain…]/[address], e.g. /apps.ocp.lab/10.10.0.50');
  const parts = trimmed.slice(1).split('/');
  if (parts.length < 2) return fail('expected /domain[/domain…]/[address]: no closing / after the domain');
  const addressText = parts.pop()!.trim();
  const domains: string[] = [];
  for (const part of parts) {
    if (part === '#' || part === '') return fail('a domain matching every name (/#/ or //) is not supported: natd forwards what it does not know');
    const domain = nameOrError(part, 'domain');
    if (isError(domain)) return fail(domain.error);
    if (!domain.includes('.')) return fail(`domain "${domain}" is a single label; natd never answers for a whole top-level domain`);
    if (!domains.includes(domain)) domains.push(domain);
  }
  if (addressText === '') return { ok: true, spec: { kind: 'address', domains } };
  if (addressText === '#') return { ok: true, spec: { kind: 'address', domains, address: '#' } };
  if (isIPv4(addressText)) return { ok: true, spec: { kind: 'address', domains, address: addressText } };
  if (isIPv6(addressText)) return { ok: true, spec: { kind: 'address', domains, address: canonicalIpv6(addressText) } };
  return fail(`"${addressText}" is not an IPv4 or IPv6 address`);
}

/** The canonical text of a record, as `parseRecordSpec(spec.kind, …)` reads it back. */
export function formatRecordSpec(spec: RecordSpec): string {
  switch (spec.kind) {
    case 'hostRecord':
      return [...spec.names, ...(spec.ipv4 !== undefined ? [spec.ipv4] : []), ...(spec.ipv6 !== undefined ? [spec.ipv6] : []), ...(spec.ttl !== undefined ? [String(spec.ttl)] : [])].join(',');
    case 'cname':
      return [...spec.aliases, spec.target, ...(spec.ttl !== undefined ? [String(spec.ttl)] : [])].join(',');
    case 'srvHost':
      return spec.target === undefined ? spec.name : [spec.name, spec.target, spec.port, spec.priority, spec.weight].join(',');
    case 'txtRecord':
      return [spec.name, ...spec.texts.map(quoteTxt)].join(',');
    case 'mxHost':
      return [spec.name, ...(spec.target !== undefined ? [spec.target] : []), String(spec.preference)].join(',');
    case 'ptrRecord':
      return spec.target === undefined ? spec.name : `${spec.name},${spec.target}`;
    case 'address':
      return `/${spec.domains.join('/')}/${spec.address ?? ''}`;
  }
}

/** The names a record answers for (its owners): what clashes are checked on. */
export function ownerNames(spec: RecordSpec): string[] {
  switch (spec.kind) {
    case 'hostRecord':
      return spec.names;
    case 'cname':
      return spec.aliases;
    case 'address':
      return spec.domains;
    default:
      return [spec.name];
  }
}

// ---- IPv6 text <-> bytes: ipv6/address.ts ------------------------------------------------------------------------

/** The 16 bytes of a valid IPv6 address (isIPv6 true, no scope), embedded IPv4 included. */
export function ipv6Bytes(text: string): Buffer {
  return Buffer.from(parseIpv6(text) ?? new Uint8Array(16));
}

/** RFC 5952 text of a valid IPv6 address. */
export function canonicalIpv6(text: string): string {
  return formatIpv6(ipv6Bytes(text));
}

/** The ip6.arpa name of an address (nibbles, least significant first). */
export function ipv6ReverseName(bytes: Uint8Array): string {
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((bytes[i]! & 0xf).toString(16), (bytes[i]! >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}
