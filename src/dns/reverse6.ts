/**
 * issue 14: ip6.arpa names (RFC 3596) read as IPv6 blocks, and the reverse zones natd answers itself under
 * bogus-priv, mirroring the IPv4 side (local-names.ts PRIVATE_RANGES): the locally-served zones of RFC 6303 that
 * are space a guest can meet (unique local fd00::/8, link-local fe80::/10, the unspecified and loopback addresses,
 * the documentation prefix 2001:db8::/32) and site-local fec0::/10 (deprecated, dnsmasq keeps it private too).
 */
import { parseIpv6 } from '../ipv6/address.js';

export interface Ip6Block {
  /** 16 bytes, the bits past `prefix` zero */
  network: Uint8Array;
  prefix: number;
}

export interface Ip6Zone extends Ip6Block {
  /** the name is nothing but nibbles */
  exact: boolean;
}

const SUFFIX = 'ip6.arpa';
const NIBBLE = /^[0-9a-f]$/;

/**
 * The IPv6 block an ip6.arpa name (lower case, no trailing dot) sits in: the nibbles read from the right as far as
 * they are valid (so "junk.d.f.ip6.arpa" is still inside fd00::/8), `exact` when the name is nothing but nibbles.
 * undefined when the name is not under ip6.arpa.
 */
export function ip6ReverseZone(name: string): Ip6Zone | undefined {
  if (name !== SUFFIX && !name.endsWith(`.${SUFFIX}`)) return undefined;
  const labels = name === SUFFIX ? [] : name.slice(0, -SUFFIX.length - 1).split('.');
  const network = new Uint8Array(16);
  let nibbles = 0;
  for (let i = labels.length - 1; i >= 0 && nibbles < 32; i--) {
    const label = labels[i]!;
    if (!NIBBLE.test(label)) break;
    const v = parseInt(label, 16);
    const byte = nibbles >> 1;
    network[byte] = network[byte]! | (nibbles % 2 === 0 ? v << 4 : v);
    nibbles++;
  }
  return { network, prefix: 4 * nibbles, exact: nibbles === labels.length };
}

/** Whether `block` lies inside `range`. */
export function ip6BlockInside(block: Ip6Block, range: Ip6Block): boolean {
  if (block.prefix < range.prefix) return false;
  for (let bit = 0; bit < range.prefix; bit += 8) {
    const bits = Math.min(8, range.prefix - bit);
    const mask = (0xff << (8 - bits)) & 0xff;
    if ((block.network[bit >> 3]! & mask) !== (range.network[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** The ip6.arpa name of an address (32 nibbles, least significant first). */
export function ip6ArpaName(address: Uint8Array): string {
  const out: string[] = [];
  for (let i = 15; i >= 0; i--) out.push((address[i]! & 0x0f).toString(16), (address[i]! >> 4).toString(16));
  return `${out.join('.')}.${SUFFIX}`;
}

export const PRIVATE_RANGES6: readonly Ip6Block[] = [
  ['fd00::', 8],
  ['fe80::', 10],
  ['fec0::', 10],
  ['::', 128],
  ['::1', 128],
  ['2001:db8::', 32],
].map(([address, prefix]) => ({ network: parseIpv6(address as string)!, prefix: prefix as number }));
