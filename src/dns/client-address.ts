/**
 * issue 14: who sent a DNS query. An IPv4 client is its address as a number (as before: the IPv4 hot path pays
 * nothing); an IPv6 client, on natd's DNS on the bridge's IPv6 gateway, is its address as 32 lower-case hex digits.
 * Both are cheap map keys (per-client limits) and cheap to test against the served prefix; only logs print them as
 * text. NOT_IPV4 (a number) still marks a source that is neither.
 */
import { formatIpv4, NOT_IPV4 } from '../net/ipv4.js';
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';

export type ClientAddress = number | string;

const HEX32 = /^[0-9a-f]{32}$/;

/** The client key of an IPv6 address given as 4 big-endian 32-bit words (the addon's receive meta). */
export function v6ClientFromWords(w0: number, w1: number, w2: number, w3: number): string {
  return hex8(w0) + hex8(w1) + hex8(w2) + hex8(w3);
}

function hex8(word: number): string {
  return (word >>> 0).toString(16).padStart(8, '0');
}

/** Writes the 4 address words of an IPv6 client key into `out` at `offset` (the addon's send meta). */
export function v6ClientWords(client: string, out: Uint32Array, offset: number): void {
  for (let w = 0; w < 4; w++) out[offset + w] = parseInt(client.slice(8 * w, 8 * w + 8), 16) >>> 0;
}

/** The client key of 16 address bytes. */
export function v6ClientFromBytes(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 16; i++) out += bytes[i]!.toString(16).padStart(2, '0');
  return out;
}

/** 16 bytes from a client key. */
export function v6ClientBytes(client: string): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(client.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * The client of a TCP peer's address text (node's remoteAddress): a dotted IPv4 number, an IPv4 peer seen through
 * a dual-stack socket (::ffff:a.b.c.d) as IPv4, an IPv6 address as its key; NOT_IPV4 for anything else.
 */
export function clientFromText(text: string, parseV4: (t: string) => number | undefined): ClientAddress {
  if (!text.includes(':')) return parseV4(text) ?? NOT_IPV4;
  if (text.startsWith('::ffff:') && text.includes('.')) return parseV4(text.slice(7)) ?? NOT_IPV4;
  const bytes = parseIpv6(text.split('%')[0]!);
  return bytes ? v6ClientFromBytes(bytes) : NOT_IPV4;
}

/** Text for logs: dotted IPv4, RFC 5952 IPv6, 'not-ipv4' for NOT_IPV4. */
export function formatClient(client: ClientAddress): string {
  if (typeof client === 'number') return client === NOT_IPV4 ? 'not-ipv4' : formatIpv4(client);
  return HEX32.test(client) ? formatIpv6(v6ClientBytes(client)) : 'invalid';
}

/**
 * An IPv6 source a real client can have and natd may answer: not unspecified (::), loopback (::1), multicast
 * (ff00::/8), IPv4-mapped (::ffff:0:0/96) or IPv4-compatible (::/96) space.
 */
export function isUnicastV6Client(client: string): boolean {
  if (client.startsWith('ff')) return false;
  if (client.startsWith('000000000000000000000000')) return false; // ::/96: ::, ::1, IPv4-compatible
  if (client.startsWith('00000000000000000000ffff')) return false; // ::ffff:0:0/96
  return true;
}

/** Link-local fe80::/10: fe8x, fe9x, feax, febx. */
export function isLinkLocalV6Client(client: string): boolean {
  if (!client.startsWith('fe')) return false;
  const third = client.charCodeAt(2);
  return third === 0x38 || third === 0x39 || third === 0x61 || third === 0x62; // '8' '9' 'a' 'b'
}

/** The 16 hex digits of a /64 prefix, for `startsWith` tests against client keys. */
export function v6PrefixKey(network: Uint8Array): string {
  return v6ClientFromBytes(network).slice(0, 16);
}
