/** IPv4 address arithmetic on unsigned 32-bit numbers: the one representation pool, DNS and nft code share. */

/** Stands for an address that is not IPv4 where addresses are IPv4 numbers (a socket's source, a server). */
export const NOT_IPV4 = -1;

export function parseIpv4(text: string): number | undefined {
  // a character loop rather than split + RegExp per octet: local DNS answers parse an address per query
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (++digits > 3) return undefined;
      octet = octet * 10 + (c - 0x30);
    } else if (c === 0x2e && digits > 0 && dots < 3) {
      if (octet > 255) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0 || octet > 255) return undefined;
  return (value * 256 + octet) >>> 0;
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

export function ipv4FromBytes(buf: Uint8Array, offset: number): number {
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

export function prefixToMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export interface Subnet {
  /** Network address (host bits zero). */
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

export function makeSubnet(address: number, prefix: number): Subnet {
  const mask = prefixToMask(prefix);
  const network = (address & mask) >>> 0;
  return { network, prefix, mask, broadcast: (network | ~mask) >>> 0 };
}

/** Parses "10.10.0.1/24" into the address and its subnet. */
export function parseCidr(text: string): { address: number; subnet: Subnet } | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const address = parseIpv4(m[1]!);
  const prefix = Number(m[2]);
  if (address === undefined || prefix > 32) return undefined;
  return { address, subnet: makeSubnet(address, prefix) };
}

export function subnetContains(subnet: Subnet, address: number): boolean {
  return ((address & subnet.mask) >>> 0) === subnet.network;
}

export function formatSubnet(subnet: Subnet): string {
  return `${formatIpv4(subnet.network)}/${subnet.prefix}`;
}

/** in-addr.arpa name of an address, e.g. 5.0.10.10.in-addr.arpa */
export function reverseName(address: number): string {
  return `${address & 255}.${(address >>> 8) & 255}.${(address >>> 16) & 255}.${address >>> 24}.in-addr.arpa`;
}

/** MAC helpers: natd keeps MACs as lower-case "aa:bb:cc:dd:ee:ff" strings. */
export function formatMac(bytes: Uint8Array, offset = 0, length = 6): string {
  const out: string[] = [];
  for (let i = 0; i < length; i++) out.push(bytes[offset + i]!.toString(16).padStart(2, '0'));
  return out.join(':');
}

export function normalizeMac(text: string): string | undefined {
  const m = /^([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})$/i.exec(
    text.trim(),
  );
  if (!m) return undefined;
  return m.slice(1).map((b) => b.toLowerCase().padStart(2, '0')).join(':');
}
