/**
 * issue 14: IPv6 addresses as 16 bytes, parsed and printed (RFC 5952 canonical text). Hand-written rather than a
 * library: natd needs only parse, format and /64 prefixes, a few lines over node:net's isIPv6.
 */
import { isIPv6, SocketAddress } from 'node:net';

export type Ipv6Bytes = Uint8Array; // always 16 bytes

/** Parses an IPv6 address (any valid text form, including an embedded IPv4 tail); undefined when invalid. */
export function parseIpv6(text: string): Ipv6Bytes | undefined {
  const fast = parseHexColons(text);
  return fast === null ? parseIpv6Text(text) : fast;
}

/**
 * The common case (hex groups and colons only: every address natd prints, leases, reservations) without regexes or
 * splits, as the DHCPv6 and DNS hot paths parse addresses often. null: the text has other characters (an IPv4 tail,
 * a zone, junk), for parseIpv6Text. Accepts exactly what isIPv6 accepts of such text (a property test checks).
 */
function parseHexColons(text: string): Ipv6Bytes | undefined | null {
  const n = text.length;
  const groups = [0, 0, 0, 0, 0, 0, 0, 0];
  let count = 0;
  let gap = -1; // groups before the '::'
  let value = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else if (c === 58) {
      if (digits > 0) {
        if (count === 8) return invalidUnlessOther(text, i);
        groups[count++] = value;
        value = 0;
        digits = 0;
      } else if (i !== 0) return invalidUnlessOther(text, i); // ':::' or an empty group
      if (i + 1 < n && text.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return invalidUnlessOther(text, i); // a second '::'
        gap = count;
        i++; // the '::' both
      } else if (i === 0 || i + 1 === n) return invalidUnlessOther(text, i); // a single leading or trailing ':'
      continue;
    } else return null;
    if (++digits > 4) return invalidUnlessOther(text, i);
    value = (value << 4) | d;
  }
  if (digits > 0) {
    if (count === 8) return undefined;
    groups[count++] = value;
  }
  if (gap < 0 ? count !== 8 : count > 7) return undefined;
  const out = new Uint8Array(16);
  const shift = gap < 0 ? 0 : 8 - count;
  for (let g = 0; g < count; g++) {
    const at = g < (gap < 0 ? count : gap) ? g : g + shift;
    out[2 * at] = groups[g]! >> 8;
    out[2 * at + 1] = groups[g]! & 0xff;
  }
  return out;
}

/** undefined when the rest of the text is hex and colons too (then it is invalid), null when it has other characters */
function invalidUnlessOther(text: string, from: number): undefined | null {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 58) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return null;
  }
  return undefined;
}

/** Any text form (isIPv6 decides validity), including an embedded IPv4 tail. */
function parseIpv6Text(text: string): Ipv6Bytes | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let s = text.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = s.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (2 or more) of zero groups as ::. */
export function formatIpv6(bytes: Ipv6Bytes): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The first `prefix` bits of `address`, the rest zero. */
export function networkOf(address: Ipv6Bytes, prefix: number): Ipv6Bytes {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = address[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** fe80::/10 */
export function isLinkLocal(a: Ipv6Bytes): boolean {
  return a[0] === 0xfe && (a[1]! & 0xc0) === 0x80;
}
/** ff00::/8 */
export function isMulticast(a: Ipv6Bytes): boolean {
  return a[0] === 0xff;
}

/** RFC 5952 text of an address that may carry a zone (`fe80::1%eth0`), for comparing server addresses; as given when invalid. */
export function canonicalIpv6Scoped(address: string): string {
  const [bare, scope] = address.split('%');
  try {
    const canonical = new SocketAddress({ address: bare!, family: 'ipv6' }).address;
    return scope === undefined ? canonical : `${canonical}%${scope}`;
  } catch {
    return address;
  }
}
