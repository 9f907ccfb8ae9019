/**
 * `--dhcp-option` / `--dhcp-option-force` specs in dnsmasq's syntax (dnsmasq(8) --dhcp-option, option.c
 * parse_dhcp_opt), parsed once into the bytes natd sends:
 *
 *   [tag:TAG,]...[tag:!TAG,]... CODE|option:NAME [,VALUE[,VALUE...]]
 *
 * `26,1400`, `option:mtu,1400`, `option:ntp-server,10.0.0.5,10.0.0.6`, `tag:lab,option:router,10.0.0.2`,
 * `option:router` (no value: do not send the option), `252,"http://wpad/wpad.dat"`, `43,01:04:0a:00:00:01` (raw hex).
 *
 * Named options take the value type dnsmasq gives them (address lists, fixed-size integers, strings, RFC 1035 name
 * lists, classless routes); raw hex `xx:xx:…` is accepted for every option as dnsmasq does. A numbered option that
 * is not in the table is typed by its value, as dnsmasq does: hex, a decimal (the smallest of 1, 2 or 4 bytes), a
 * list of addresses, or else the text. The address 0.0.0.0 in an address list means natd's own address (dnsmasq's
 * rule); the option engine fills it in.
 *
 * Hand-written: no npm package parses dnsmasq's option syntax. Never throws anything but OptionSpecError.
 */
import { encodeClasslessRoutes, encodeDomainSearch, type ClasslessRoute } from './codec.js';
import { parseIpv4 } from '../net/ipv4.js';

export class OptionSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionSpecError';
  }
}

/** How a named option's value is written (dnsmasq's OT_* flags and sizes). */
export type OptionType =
  | 'ip-list' // OT_ADDR_LIST
  | 'u8' // 1-byte integer; dnsmasq's booleans (ip-forward-enable 0|1) are this too
  | 'u16'
  | 'u32'
  | 'i32' // time-offset: signed seconds
  | 'string' // OT_NAME and untyped text
  | 'domain-list' // OT_RFC1035_NAME (RFC 3397)
  | 'classless-routes' // RFC 3442: NET/LEN,ROUTER pairs
  | 'bytes'; // hex only (or text as bytes)

export interface OptionInfo {
  code: number;
  name: string;
  type: OptionType;
  /** natd decides this option itself: a spec cannot set it (the message says what to use instead) */
  internal?: string;
}

/** dnsmasq's DHCPv4 option table (dhcp-common.c opttab), names and types as dnsmasq spells them. */
const TABLE: OptionInfo[] = [
  { code: 1, name: 'netmask', type: 'ip-list' },
  { code: 2, name: 'time-offset', type: 'i32' },
  { code: 3, name: 'router', type: 'ip-list' },
  { code: 6, name: 'dns-server', type: 'ip-list' },
  { code: 7, name: 'log-server', type: 'ip-list' },
  { code: 9, name: 'lpr-server', type: 'ip-list' },
  { code: 12, name: 'hostname', type: 'string', internal: 'the host name comes from the reservation or the client' },
  { code: 13, name: 'boot-file-size', type: 'u16' },
  { code: 15, name: 'domain-name', type: 'string' },
  { code: 16, name: 'swap-server', type: 'ip-list' },
  { code: 17, name: 'root-path', type: 'string' },
  { code: 18, name: 'extension-path', type: 'string' },
  { code: 19, name: 'ip-forward-enable', type: 'u8' },
  { code: 20, name: 'non-local-source-routing', type: 'u8' },
  { code: 21, name: 'policy-filter', type: 'ip-list' },
  { code: 22, name: 'max-datagram-reassembly', type: 'u16' },
  { code: 23, name: 'default-ttl', type: 'u8' },
  { code: 26, name: 'mtu', type: 'u16' },
  { code: 27, name: 'all-subnets-local', type: 'u8' },
  { code: 28, name: 'broadcast', type: 'ip-list' },
  { code: 31, name: 'router-discovery', type: 'u8' },
  { code: 32, name: 'router-solicitation', type: 'ip-list' },
  { code: 33, name: 'static-route', type: 'ip-list' },
  { code: 34, name: 'trailer-encapsulation', type: 'u8' },
  { code: 35, name: 'arp-timeout', type: 'u32' },
  { code: 36, name: 'ethernet-encap', type: 'u8' },
  { code: 37, name: 'tcp-ttl', type: 'u8' },
  { code: 38, name: 'tcp-keepalive', type: 'u32' },
  { code: 40, name: 'nis-domain', type: 'string' },
  { code: 41, name: 'nis-server', type: 'ip-list' },
  { code: 42, name: 'ntp-server', type: 'ip-list' },
  { code: 43, name: 'vendor-encap', type: 'bytes' },
  { code: 44, name: 'netbios-ns', type: 'ip-list' },
  { code: 45, name: 'netbios-dd', type: 'ip-list' },
  { code: 46, name: 'netbios-nodetype', type: 'u8' },
  { code: 47, name: 'netbios-scope', type: 'string' },
  { code: 48, name: 'x-windows-fs', type: 'ip-list' },
  { code: 49, name: 'x-windows-dm', type: 'ip-list' },
  { code: 50, name: 'requested-address', type: 'ip-list', internal: 'only clients send it' },
  { code: 51, name: 'lease-time', type: 'u32', internal: 'use --lease-time, the --dhcp-range lease time or a reservation lease time' },
  { code: 52, name: 'option-overload', type: 'u8', internal: 'natd never overloads sname/file' },
  { code: 53, name: 'message-type', type: 'u8', internal: 'natd sets the message type' },
  { code: 54, name: 'server-identifier', type: 'ip-list', internal: 'natd sends its own address' },
  { code: 55, name: 'parameter-request', type: 'bytes', internal: 'only clients send it' },
  { code: 56, name: 'message', type: 'string', internal: 'natd sends it with a NAK' },
  { code: 57, name: 'max-message-size', type: 'u16', internal: 'only clients send it' },
  { code: 58, name: 'T1', type: 'u32', internal: 'natd derives T1 from the lease time' },
  { code: 59, name: 'T2', type: 'u32', internal: 'natd derives T2 from the lease time' },
  { code: 60, name: 'vendor-class', type: 'string' },
  { code: 61, name: 'client-id', type: 'bytes', internal: 'only clients send it' },
  { code: 64, name: 'nis+-domain', type: 'string' },
  { code: 65, name: 'nis+-server', type: 'ip-list' },
  { code: 66, name: 'tftp-server', type: 'string' },
  { code: 67, name: 'bootfile-name', type: 'string' },
  { code: 68, name: 'mobile-ip-home', type: 'ip-list' },
  { code: 69, name: 'smtp-server', type: 'ip-list' },
  { code: 70, name: 'pop3-server', type: 'ip-list' },
  { code: 71, name: 'nntp-server', type: 'ip-list' },
  { code: 74, name: 'irc-server', type: 'ip-list' },
  { code: 77, name: 'user-class', type: 'bytes' },
  { code: 80, name: 'rapid-commit', type: 'bytes', internal: 'use --dhcp-rapid-commit / --no-dhcp-rapid-commit' },
  { code: 81, name: 'FQDN', type: 'bytes', internal: 'natd answers the client FQDN option itself' },
  { code: 82, name: 'agent-id', type: 'bytes', internal: 'relay agents only' },
  { code: 91, name: 'last-transaction', type: 'u32' },
  { code: 92, name: 'associated-ip', type: 'ip-list' },
  { code: 93, name: 'client-arch', type: 'u16' },
  { code: 94, name: 'client-interface-id', type: 'bytes' },
  { code: 97, name: 'client-machine-id', type: 'bytes' },
  { code: 100, name: 'posix-timezone', type: 'string' },
  { code: 101, name: 'tzdb-timezone', type: 'string' },
  { code: 108, name: 'ipv6-only', type: 'u32' },
  { code: 118, name: 'subnet-select', type: 'bytes', internal: 'relay agents only' },
  { code: 119, name: 'domain-search', type: 'domain-list' },
  { code: 120, name: 'sip-server', type: 'bytes' },
  { code: 121, name: 'classless-static-route', type: 'classless-routes' },
  { code: 125, name: 'vendor-id-encap', type: 'bytes' },
  { code: 150, name: 'tftp-server-address', type: 'ip-list' },
  // Microsoft's copy of RFC 3442 (Windows XP era clients); same value syntax as 121
  { code: 249, name: 'ms-classless-static-route', type: 'classless-routes' },
];

const BY_CODE = new Map(TABLE.map((o) => [o.code, o]));
const BY_NAME = new Map(TABLE.map((o) => [o.name.toLowerCase(), o]));

export function optionInfo(code: number): OptionInfo | undefined {
  return BY_CODE.get(code);
}

export function optionByName(name: string): OptionInfo | undefined {
  return BY_NAME.get(name.toLowerCase());
}

export const OPTION_NAMES: readonly string[] = TABLE.filter((o) => !o.internal).map((o) => o.name);

/** One `tag:` condition: the client must have (or, negated, must not have) the tag. */
export interface TagCondition {
  tag: string;
  negated: boolean;
}

/** A parsed `--dhcp-option` spec. */
export interface OptionSpec {
  code: number;
  /** all must hold for the spec to apply to a client (dnsmasq: every tag:X given) */
  when: readonly TagCondition[];
  /** the value to send; undefined = do not send this option (an empty spec overrides a configured one) */
  value: Uint8Array | undefined;
  /** an address list: 0.0.0.0 in it stands for natd's own address */
  addressList: boolean;
  /** --dhcp-option-force: sent even when the client did not ask for it */
  force: boolean;
  /** the spec as given, for messages */
  text: string;
}

/** dnsmasq keeps one option within one message; natd caps a value at what a minimal 576-byte reply can carry. */
export const MAX_OPTION_VALUE = 255 * 4;
const MAX_SPEC_LENGTH = 8192;
const TAG_RE = /^!?[A-Za-z0-9_.-]{1,64}$/;

/** Parses one spec; `force` is set for --dhcp-option-force. Throws OptionSpecError naming what is wrong. */
export function parseOptionSpec(text: string, force = false): OptionSpec {
  if (typeof text !== 'string') throw new OptionSpecError('expected a string like 26,1400 or option:mtu,1400');
  if (text.length > MAX_SPEC_LENGTH) throw new OptionSpecError(`longer than ${MAX_SPEC_LENGTH} characters`);
  const fields = splitFields(text);
  const when: TagCondition[] = [];
  let i = 0;
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    const lower = f.text.toLowerCase();
    if (f.quoted) break;
    if (lower.startsWith('tag:') || lower.startsWith('net:')) {
      const tag = f.text.slice(4);
      if (!TAG_RE.test(tag)) throw new OptionSpecError(`invalid tag "${tag}" (letters, digits, _ . -; ! negates)`);
      when.push({ tag: tag.replace(/^!/, '').toLowerCase(), negated: tag.startsWith('!') });
      continue;
    }
    if (/^(encap|vi-encap|vendor|option6):/.test(lower)) {
      throw new OptionSpecError(`"${f.text.split(':')[0]}:" is not supported by natd (DHCPv4 options only, no encapsulation)`);
    }
    break;
  }
  const codeField = fields[i];
  if (!codeField || codeField.quoted || codeField.text === '') throw new OptionSpecError('no option given: expected CODE or option:NAME first');
  const info = optionOf(codeField.text);
  const code = info?.code ?? Number(codeField.text);
  if (info?.internal) throw new OptionSpecError(`option ${info.code} (${info.name}) cannot be set: ${info.internal}`);
  if (code === 0 || code === 255) throw new OptionSpecError(`option ${code} is framing (pad/end), not an option`);

  const values = fields.slice(i + 1);
  const spec = { code, when: Object.freeze(when), force, text, addressList: false };
  if (values.length === 0 || (values.length === 1 && !values[0]!.quoted && values[0]!.text === '')) {
    return Object.freeze({ ...spec, value: undefined });
  }
  const typed = encodeValue(info, code, values);
  if (typed.bytes.length > MAX_OPTION_VALUE) throw new OptionSpecError(`value is ${typed.bytes.length} bytes; at most ${MAX_OPTION_VALUE}`);
  return Object.freeze({ ...spec, value: typed.bytes, addressList: typed.addressList });
}

/** `option:NAME`, or a decimal code 1-254. */
function optionOf(field: string): OptionInfo | undefined {
  if (/^option:/i.test(field)) {
    const name = field.slice(7);
    const info = optionByName(name);
    if (!info) throw new OptionSpecError(`unknown option name "${name.slice(0, 40)}"; known: ${OPTION_NAMES.join(', ')}`);
    return info;
  }
  if (!/^\d{1,3}$/.test(field) || Number(field) > 255) {
    throw new OptionSpecError(`"${field.slice(0, 40)}" is not an option: expected a number 1-254 or option:NAME (e.g. option:mtu)`);
  }
  return BY_CODE.get(Number(field));
}

interface Field {
  text: string;
  quoted: boolean;
}

/** Comma-separated fields; a double-quoted field keeps its commas (dnsmasq's quoting), \" and \\ escape. */
function splitFields(text: string): Field[] {
  const fields: Field[] = [];
  let current = '';
  let quoted = false;
  let inQuotes = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '\\' && i + 1 < text.length) current += text[++i];
      else if (c === '"') inQuotes = false;
      else current += c;
    } else if (c === '"') {
      inQuotes = true;
      quoted = true;
    } else if (c === ',') {
      fields.push({ text: quoted ? current : current.trim(), quoted });
      current = '';
      quoted = false;
    } else current += c;
  }
  if (inQuotes) throw new OptionSpecError('unterminated "');
  fields.push({ text: quoted ? current : current.trim(), quoted });
  return fields;
}

const HEX_RE = /^[0-9a-f]{1,2}(?::[0-9a-f]{1,2})+$/i;
const DEC_RE = /^\d{1,10}$/;

function encodeValue(info: OptionInfo | undefined, code: number, values: Field[]): { bytes: Uint8Array; addressList: boolean } {
  const joined = values.map((v) => v.text).join(',');
  const anyQuoted = values.some((v) => v.quoted);
  // raw hex, accepted for every option (dnsmasq checks it first)
  if (!anyQuoted && values.length === 1 && HEX_RE.test(joined)) return { bytes: hexBytes(joined), addressList: false };
  const type = info?.type ?? inferType(values);
  const what = info ? `option ${code} (${info.name})` : `option ${code}`;
  switch (type) {
    case 'ip-list':
      return { bytes: addressList(values, what), addressList: true };
    case 'u8':
    case 'u16':
    case 'u32':
    case 'i32':
      return { bytes: integer(values, type, what), addressList: false };
    case 'string':
      return { bytes: new TextEncoder().encode(joined), addressList: false };
    case 'domain-list':
      return { bytes: domainList(values, what), addressList: false };
    case 'classless-routes':
      return { bytes: classlessRoutes(values, what), addressList: false };
    case 'bytes':
      if (anyQuoted) return { bytes: new TextEncoder().encode(joined), addressList: false };
      throw new OptionSpecError(`${what} takes raw hex like 01:04:0a:00:00:01 or a "quoted string" (got "${joined.slice(0, 60)}")`);
  }
}

/** dnsmasq's guess for options it has no type for: a decimal, a list of addresses, or the text. */
function inferType(values: Field[]): OptionType {
  if (values.some((v) => v.quoted)) return 'string';
  if (values.length === 1 && DEC_RE.test(values[0]!.text)) {
    const n = Number(values[0]!.text);
    return n <= 0xff ? 'u8' : n <= 0xffff ? 'u16' : 'u32';
  }
  if (values.every((v) => parseIpv4(v.text) !== undefined)) return 'ip-list';
  return 'string';
}

function hexBytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
}

function addressList(values: Field[], what: string): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, i) => {
    const a = v.quoted ? undefined : parseIpv4(v.text);
    if (a === undefined) throw new OptionSpecError(`${what} takes IPv4 addresses (got "${v.text.slice(0, 40)}")`);
    out[i * 4] = a >>> 24;
    out[i * 4 + 1] = (a >>> 16) & 255;
    out[i * 4 + 2] = (a >>> 8) & 255;
    out[i * 4 + 3] = a & 255;
  });
  return out;
}

const INT_LIMITS = { u8: [0, 0xff, 1], u16: [0, 0xffff, 2], u32: [0, 0xffffffff, 4], i32: [-0x80000000, 0x7fffffff, 4] } as const;

function integer(values: Field[], type: 'u8' | 'u16' | 'u32' | 'i32', what: string): Uint8Array {
  const [min, max, size] = INT_LIMITS[type];
  const text = values.length === 1 && !values[0]!.quoted ? values[0]!.text : '';
  const n = /^-?\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new OptionSpecError(`${what} takes one integer from ${min} to ${max} (got "${values.map((v) => v.text).join(',').slice(0, 40)}")`);
  const out = Buffer.alloc(size);
  if (type === 'i32') out.writeInt32BE(n);
  else out.writeUIntBE(n, 0, size);
  return new Uint8Array(out);
}

function domainList(values: Field[], what: string): Uint8Array {
  const names = values.map((v) => v.text.trim());
  for (const name of names) {
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/.test(name)) {
      throw new OptionSpecError(`${what} takes domain names (got "${name.slice(0, 60)}")`);
    }
  }
  try {
    return encodeDomainSearch(names);
  } catch (err) {
    throw new OptionSpecError(`${what}: ${(err as Error).message}`);
  }
}

/** dnsmasq's `121,192.168.1.0/24,10.0.0.2[,NET/LEN,ROUTER...]`. */
function classlessRoutes(values: Field[], what: string): Uint8Array {
  if (values.length % 2 !== 0) throw new OptionSpecError(`${what} takes NET/LEN,ROUTER pairs (got an odd number of values)`);
  const routes: ClasslessRoute[] = [];
  for (let i = 0; i < values.length; i += 2) {
    const [net, len] = values[i]!.text.split('/');
    const network = parseIpv4(net ?? '');
    const prefix = len !== undefined && /^\d{1,2}$/.test(len) ? Number(len) : network !== undefined && len === undefined ? 32 : NaN;
    const router = parseIpv4(values[i + 1]!.text);
    if (network === undefined || !(prefix >= 0 && prefix <= 32) || router === undefined) {
      throw new OptionSpecError(`${what} takes NET/LEN,ROUTER pairs (got "${values[i]!.text},${values[i + 1]!.text}")`);
    }
    routes.push({ network, prefix, router });
  }
  return encodeClasslessRoutes(routes);
}
