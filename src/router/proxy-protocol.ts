/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that tells a guest's web server the
 * real client address of a connection the router relays. Only the TCP over IPv4/IPv6 forms: that is all the router
 * sends. Decoders exist for tests and fuzzing (the guest side parses, natd never receives PROXY headers).
 *
 * Hand-written: the npm packages for it are either parsers only or wrap a whole server; the encoder is 30 lines.
 */
import net from 'node:net';

export interface ProxyEndpoints {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

export type ProxyFamily = 'TCP4' | 'TCP6';

/** v2 signature: \r\n\r\n\0\r\nQUIT\n */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_VERSION_PROXY = 0x21;
const V2_VERSION_LOCAL = 0x20;
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

/** "::ffff:1.2.3.4" (a dual-stack socket's view of an IPv4 peer) → "1.2.3.4"; other addresses unchanged */
export function unmapIpv4(address: string): string {
  if (address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && net.isIPv4(address.slice(7))) {
    return address.slice(7);
  }
  return address;
}

/**
 * Both addresses in one family, as the header needs: IPv4 when both are IPv4 (or v4-mapped), else IPv6 with any
 * IPv4 address written v4-mapped. undefined when an address is not an IP literal.
 */
export function normalizeEndpoints(endpoints: ProxyEndpoints): { family: ProxyFamily; endpoints: ProxyEndpoints } | undefined {
  let source = unmapIpv4(endpoints.sourceAddress);
  let destination = unmapIpv4(endpoints.destinationAddress);
  const sourceFamily = net.isIP(source);
  const destinationFamily = net.isIP(destination);
  if (sourceFamily === 0 || destinationFamily === 0) return undefined;
  if (!validPort(endpoints.sourcePort) || !validPort(endpoints.destinationPort)) return undefined;
  let family: ProxyFamily = 'TCP4';
  if (sourceFamily === 6 || destinationFamily === 6) {
    family = 'TCP6';
    if (sourceFamily === 4) source = `::ffff:${source}`;
    if (destinationFamily === 4) destination = `::ffff:${destination}`;
  }
  return { family, endpoints: { ...endpoints, sourceAddress: source, destinationAddress: destination } };
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

/** v1: "PROXY TCP4 src dst sport dport\r\n"; "PROXY UNKNOWN\r\n" when the addresses are not usable */
export function encodeProxyV1(endpoints: ProxyEndpoints): Buffer {
  const normalized = normalizeEndpoints(endpoints);
  if (!normalized) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const e = normalized.endpoints;
  return Buffer.from(
    `PROXY ${normalized.family} ${e.sourceAddress} ${e.destinationAddress} ${e.sourcePort} ${e.destinationPort}\r\n`,
    'latin1',
  );
}

/** v2 binary header, PROXY command over TCP; LOCAL (no addresses) when the addresses are not usable */
export function encodeProxyV2(endpoints: ProxyEndpoints): Buffer {
  const normalized = normalizeEndpoints(endpoints);
  if (!normalized) {
    const out = Buffer.alloc(16);
    PROXY_V2_SIGNATURE.copy(out, 0);
    out[12] = V2_VERSION_LOCAL;
    return out;
  }
  const e = normalized.endpoints;
  const v4 = normalized.family === 'TCP4';
  const addressLength = v4 ? 12 : 36;
  const out = Buffer.alloc(16 + addressLength);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = V2_VERSION_PROXY;
  out[13] = v4 ? V2_TCP4 : V2_TCP6;
  out.writeUInt16BE(addressLength, 14);
  const size = v4 ? 4 : 16;
  writeAddress(out, 16, e.sourceAddress, v4);
  writeAddress(out, 16 + size, e.destinationAddress, v4);
  out.writeUInt16BE(e.sourcePort, 16 + 2 * size);
  out.writeUInt16BE(e.destinationPort, 18 + 2 * size);
  return out;
}

function writeAddress(out: Buffer, offset: number, address: string, v4: boolean): void {
  if (v4) {
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
    return;
  }
  const groups = expandIpv6(address);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, offset + 2 * i);
}

/** An IPv6 literal (valid per net.isIPv6, possibly with an embedded IPv4 tail) → its eight 16-bit groups */
function expandIpv6(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    const p = last.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const gap = text.indexOf('::');
  if (gap < 0) return parse(text);
  const head = parse(text.slice(0, gap));
  const rest = parse(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // net.SocketAddress would canonicalize, but a plain uncompressed form is enough for comparison after parsing
  return groups.join(':');
}

export type ProxyV2Decoded =
  | { state: 'need-more' }
  | { state: 'invalid'; reason: string }
  | { state: 'done'; command: 'PROXY' | 'LOCAL'; family?: ProxyFamily; endpoints?: ProxyEndpoints; length: number };

/** Decodes a v2 header at the start of buf (what a guest-side parser does). Never throws. */
export function decodeProxyV2(buf: Uint8Array): ProxyV2Decoded {
  if (buf.length < 16) {
    for (let i = 0; i < buf.length && i < 12; i++) {
      if (buf[i] !== PROXY_V2_SIGNATURE[i]) return { state: 'invalid', reason: 'signature' };
    }
    return { state: 'need-more' };
  }
  for (let i = 0; i < 12; i++) if (buf[i] !== PROXY_V2_SIGNATURE[i]) return { state: 'invalid', reason: 'signature' };
  const versionCommand = buf[12]!;
  const familyByte = buf[13]!;
  const length = (buf[14]! << 8) | buf[15]!;
  if (buf.length < 16 + length) return { state: 'need-more' };
  if (versionCommand === V2_VERSION_LOCAL) return { state: 'done', command: 'LOCAL', length: 16 + length };
  if (versionCommand !== V2_VERSION_PROXY) return { state: 'invalid', reason: 'version/command' };
  const body = buf.subarray(16, 16 + length);
  if (familyByte === V2_TCP4) {
    if (length < 12) return { state: 'invalid', reason: 'short TCP4 block' };
    const ip = (o: number) => `${body[o]}.${body[o + 1]}.${body[o + 2]}.${body[o + 3]}`;
    return {
      state: 'done',
      command: 'PROXY',
      family: 'TCP4',
      length: 16 + length,
      endpoints: {
        sourceAddress: ip(0),
        destinationAddress: ip(4),
        sourcePort: (body[8]! << 8) | body[9]!,
        destinationPort: (body[10]! << 8) | body[11]!,
      },
    };
  }
  if (familyByte === V2_TCP6) {
    if (length < 36) return { state: 'invalid', reason: 'short TCP6 block' };
    return {
      state: 'done',
      command: 'PROXY',
      family: 'TCP6',
      length: 16 + length,
      endpoints: {
        sourceAddress: formatIpv6(body.subarray(0, 16)),
        destinationAddress: formatIpv6(body.subarray(16, 32)),
        sourcePort: (body[32]! << 8) | body[33]!,
        destinationPort: (body[34]! << 8) | body[35]!,
      },
    };
  }
  return { state: 'invalid', reason: 'address family' };
}

/** The 16 bytes of an IPv6 literal (for tests comparing addresses written in different forms) */
export function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  writeAddress(out, 0, address, false);
  return out;
}
