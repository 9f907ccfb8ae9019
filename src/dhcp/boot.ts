/**
 * PXE boot information in DHCP replies, with dnsmasq's syntax (issue 16):
 *
 *   --dhcp-boot=[tag:TAG,...]FILE[,SERVERNAME[,SERVERADDR]]   BOOTP `file`, `sname` and `siaddr` (RFC 2131 §2),
 *                                                            options 66/67 when the client asks (RFC 2132 §9.4/9.5)
 *   --dhcp-match=set:TAG,OPTION[,VALUE]                      TAG when the client sent OPTION (number or
 *                                                            option:NAME), holding VALUE if given
 *   --dhcp-userclass=set:TAG,TEXT                            TAG when option 77 contains TEXT (iPXE sends "iPXE")
 *   --dhcp-vendorclass=set:TAG,TEXT                          TAG when option 60 contains TEXT (e.g. PXEClient)
 *
 * Host tags come from reservations (`set:TAG` in a hostsfile line, `tags` in the config file); every client with a
 * reservation also has the tag `known`, as in dnsmasq. The boot entry chosen is the first one with tags whose tags
 * all hold (`tag:!TAG` holds when TAG is absent), else the first one without tags (dnsmasq's find_boot).
 *
 * Pure: parsing of the flag values (errors are plain messages the config layer prefixes with the field), the
 * client's tags from its raw options, and the reply fields. The server core calls `bootReply` for OFFER and ACK.
 */
import { parseIpv4, formatIpv4 } from '../net/ipv4.js';

export interface TagCondition {
  tag: string;
  /** tag:!TAG: holds when TAG is not set */
  negate: boolean;
}

export interface BootEntry {
  conditions: readonly TagCondition[];
  file: string;
  serverName?: string;
  serverAddress?: number;
}

export interface MatchRule {
  setTag: string;
  option: number;
  /** bytes to find in the option value (numbers as big-endian integers of the option's width); undefined: presence */
  value?: { bytes: readonly (number | undefined)[]; step: number };
}

export interface ClassRule {
  setTag: string;
  text: string;
}

export interface BootPolicy {
  entries: readonly BootEntry[];
  matches: readonly MatchRule[];
  userClasses: readonly ClassRule[];
  vendorClasses: readonly ClassRule[];
}

export const EMPTY_BOOT_POLICY: BootPolicy = Object.freeze({ entries: [], matches: [], userClasses: [], vendorClasses: [] });

/** What goes into the reply. */
export interface BootReply {
  file: string;
  sname: string;
  siaddr: number;
  /** option 66 and 67 values, to add when the client asks for them (67 always when the name does not fit `file`) */
  tftpServerName: string;
  bootFileName: string;
  /** the name is longer than the 128-byte `file` field: sent as option 67 only */
  fileInOptionOnly: boolean;
}

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
/** `file` is 128 bytes with its NUL; option 67 takes up to 255. */
const FILE_FIELD_MAX = 127;
const OPTION_MAX = 255;
const SNAME_FIELD_MAX = 63;
const USER_CLASS = 77;
const VENDOR_CLASS = 60;
export const TFTP_SERVER_NAME_OPTION = 66;
export const BOOTFILE_NAME_OPTION = 67;

/**
 * dnsmasq's names for the options worth matching on at boot time (the full table belongs to the --dhcp-option
 * engine); the width is how a number given as VALUE is encoded and stepped through the option.
 */
const OPTION_NAMES: Record<string, { code: number; width?: number }> = {
  'client-arch': { code: 93, width: 2 },
  'client-interface-id': { code: 94 },
  'client-machine-id': { code: 97 },
  'user-class': { code: 77 },
  'vendor-class': { code: 60 },
  hostname: { code: 12 },
  'client-id': { code: 61 },
};
const WIDTH_BY_CODE = new Map(Object.values(OPTION_NAMES).filter((o) => o.width).map((o) => [o.code, o.width!]));

// ---- parsing the flags

function parseTag(text: string, what: string): string {
  if (!TAG_RE.test(text)) throw new Error(`${what} "${text}" is not a tag (letters, digits, _ . -)`);
  return text.toLowerCase(); // tags compare case-insensitively everywhere (hostsfile set:, --dhcp-option tag:)
}

/** Leading `tag:X` / `tag:!X` (and dnsmasq's old `net:X`) fields, then the rest. */
function splitConditions(fields: string[]): { conditions: TagCondition[]; rest: string[] } {
  const conditions: TagCondition[] = [];
  let i = 0;
  for (; i < fields.length; i++) {
    const m = /^(?:tag|net):(!?)(.*)$/.exec(fields[i]!);
    if (!m) break;
    conditions.push({ negate: m[1] === '!', tag: parseTag(m[2]!, 'tag') });
  }
  return { conditions, rest: fields.slice(i) };
}

/** `[tag:TAG,...]FILE[,SERVERNAME[,SERVERADDR]]` */
export function parseDhcpBoot(text: string): BootEntry {
  const { conditions, rest } = splitConditions(text.split(',').map((f) => f.trim()));
  const [file, serverName, serverAddress, ...extra] = rest;
  if (!file) throw new Error(`expected [tag:TAG,]FILE[,SERVERNAME[,SERVERADDR]] (got "${text}")`);
  if (extra.length > 0) throw new Error(`too many fields (got "${text}")`);
  if (Buffer.byteLength(file) > OPTION_MAX || file.includes('\0')) throw new Error(`boot file name longer than ${OPTION_MAX} bytes (got "${text.slice(0, 80)}")`);
  const entry: BootEntry = { conditions, file };
  if (serverName) {
    if (Buffer.byteLength(serverName) > SNAME_FIELD_MAX) throw new Error(`server name longer than ${SNAME_FIELD_MAX} bytes (got "${serverName.slice(0, 80)}")`);
    entry.serverName = serverName;
  }
  if (serverAddress) {
    const address = parseIpv4(serverAddress);
    if (address === undefined) throw new Error(`server address "${serverAddress}" is not an IPv4 address`);
    entry.serverAddress = address;
  }
  return Object.freeze(entry);
}

/** `set:TAG,OPTION[,VALUE]` with OPTION a number or `option:NAME`; VALUE a number, hex bytes `aa:bb:*`, or text. */
export function parseDhcpMatch(text: string): MatchRule {
  const fields = text.split(',').map((f) => f.trim());
  const m = /^set:(.*)$/.exec(fields[0] ?? '');
  if (!m || fields.length < 2 || fields.length > 3) throw new Error(`expected set:TAG,OPTION[,VALUE] (got "${text}")`);
  const setTag = parseTag(m[1]!, 'tag');
  const spec = fields[1]!;
  let code: number;
  if (/^\d{1,3}$/.test(spec)) code = Number(spec);
  else {
    const named = OPTION_NAMES[spec.replace(/^option:/, '')];
    if (!spec.startsWith('option:') || !named) {
      throw new Error(`option "${spec}" is not a number or one of option:${Object.keys(OPTION_NAMES).join(', option:')} (vi-encap and option6 are not supported)`);
    }
    code = named.code;
  }
  if (code < 1 || code > 254) throw new Error(`option ${code} is not in 1-254`);
  const rule: MatchRule = { setTag, option: code };
  const raw = fields[2];
  if (raw !== undefined && raw !== '') rule.value = matchValue(raw, WIDTH_BY_CODE.get(code));
  return Object.freeze(rule);
}

function matchValue(raw: string, width: number | undefined): NonNullable<MatchRule['value']> {
  if (/^\d{1,10}$/.test(raw)) {
    const n = Number(raw);
    if (n > 0xffffffff) throw new Error(`value ${raw} does not fit 32 bits`);
    const w = width ?? (n <= 0xff ? 1 : n <= 0xffff ? 2 : 4);
    if (n >= 2 ** (8 * w)) throw new Error(`value ${raw} does not fit the option's ${w}-byte numbers`);
    const bytes: number[] = [];
    for (let i = w - 1; i >= 0; i--) bytes.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
    return { bytes, step: w };
  }
  if (/^(?:[0-9a-f]{1,2}|\*)(?::(?:[0-9a-f]{1,2}|\*))+$/i.test(raw)) {
    return { bytes: raw.split(':').map((b) => (b === '*' ? undefined : parseInt(b, 16))), step: 1 };
  }
  return { bytes: [...Buffer.from(raw, 'utf8')], step: 1 };
}

/** `set:TAG,TEXT` for --dhcp-userclass and --dhcp-vendorclass */
export function parseClassRule(text: string): ClassRule {
  const i = text.indexOf(',');
  const m = /^set:(.*)$/.exec(i < 0 ? '' : text.slice(0, i).trim());
  const value = i < 0 ? '' : text.slice(i + 1);
  if (!m || value.length === 0) throw new Error(`expected set:TAG,TEXT (got "${text}")`);
  return Object.freeze({ setTag: parseTag(m[1]!, 'tag'), text: value });
}

/** Tags a reservation may carry (`set:TAG` in a hostsfile, `tags` in the config file). */
export function isTag(text: string): boolean {
  return TAG_RE.test(text);
}

// ---- deciding

function contains(haystack: Uint8Array, needle: readonly (number | undefined)[], step: number): boolean {
  for (let i = 0; i + needle.length <= haystack.length; i += step) {
    let j = 0;
    while (j < needle.length && (needle[j] === undefined || needle[j] === haystack[i + j])) j++;
    if (j === needle.length) return true;
  }
  return false;
}

/** The client's tags: its reservation's (with `known`), then those its options earn. */
export function clientTags(policy: BootPolicy, options: ReadonlyMap<number, Uint8Array> | undefined, hostTags: readonly string[] | undefined): Set<string> {
  const tags = new Set<string>(hostTags ?? []);
  if (!options) return tags;
  for (const rule of policy.matches) {
    const value = options.get(rule.option);
    if (value && (!rule.value || contains(value, rule.value.bytes, rule.value.step))) tags.add(rule.setTag);
  }
  const byClass = (rules: readonly ClassRule[], code: number): void => {
    const value = options.get(code);
    if (!value) return;
    for (const rule of rules) if (contains(value, [...Buffer.from(rule.text, 'utf8')], 1)) tags.add(rule.setTag);
  };
  byClass(policy.userClasses, USER_CLASS);
  byClass(policy.vendorClasses, VENDOR_CLASS);
  return tags;
}

/** dnsmasq's find_boot: the first entry with tags that all hold, else the first entry without tags. */
export function selectBoot(policy: BootPolicy, tags: ReadonlySet<string>): BootEntry | undefined {
  const holds = (c: TagCondition): boolean => tags.has(c.tag) !== c.negate;
  return policy.entries.find((e) => e.conditions.length > 0 && e.conditions.every(holds)) ?? policy.entries.find((e) => e.conditions.length === 0);
}

/** The reply's boot fields; siaddr is the entry's server address, else natd's own (its TFTP server). */
export function bootReply(entry: BootEntry, ownAddress: number): BootReply {
  const siaddr = entry.serverAddress ?? ownAddress;
  const fileInOptionOnly = Buffer.byteLength(entry.file) > FILE_FIELD_MAX;
  return {
    file: fileInOptionOnly ? '' : entry.file,
    sname: entry.serverName ?? '',
    siaddr,
    tftpServerName: entry.serverName ?? formatIpv4(siaddr),
    bootFileName: entry.file,
    fileInOptionOnly,
  };
}
