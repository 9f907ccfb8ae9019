/**
 * issue 14: Router Advertisements natd sends and Router Solicitations it reads (RFC 4861 4.1, 4.2, 4.6, 6.1.1;
 * RDNSS and DNSSL from RFC 8106). Pure: bytes in, bytes out, no I/O. The kernel fills the ICMPv6 checksum of a
 * raw IPPROTO_ICMPV6 socket on send and verifies it on receive, so the checksum field here stays 0.
 *
 * parseRouterSolicitation never throws: whatever a guest sends is either a valid solicitation or a reason it is not.
 */
import type { Ipv6Bytes } from './address.js';

export const ICMP6_ROUTER_SOLICITATION = 133;
export const ICMP6_ROUTER_ADVERTISEMENT = 134;

const OPT_SOURCE_LINK_LAYER = 1;
const OPT_PREFIX_INFORMATION = 3;
const OPT_MTU = 5;
const OPT_RDNSS = 25;
const OPT_DNSSL = 31;

export interface RaPrefix {
  network: Ipv6Bytes;
  length: number;
  /** seconds; 0xffffffff = infinity */
  validLifetime: number;
  preferredLifetime: number;
  onLink: boolean;
  autonomous: boolean;
}

export interface RouterAdvertisement {
  curHopLimit: number;
  managed: boolean;
  other: boolean;
  /** seconds, 0-9000; 0: not a default router (the final RA on stop) */
  routerLifetime: number;
  reachableTime: number;
  retransTimer: number;
  /** the bridge's MAC as 6 bytes */
  sourceLinkLayer?: Uint8Array;
  mtu?: number;
  prefixes: RaPrefix[];
  rdnss?: { servers: Ipv6Bytes[]; lifetime: number };
  dnssl?: { domains: string[]; lifetime: number };
}

/** A domain name in DNS wire format (RFC 1035 3.1), as DNSSL carries it; throws on a label over 63 bytes. */
function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) {
    if (label.length === 0) continue;
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length > 63) throw new Error(`DNSSL: label "${label}" is longer than 63 bytes`);
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  return out;
}

function option(type: number, body: number[]): number[] {
  const total = Math.ceil((body.length + 2) / 8) * 8;
  const out = [type, total / 8, ...body];
  while (out.length < total) out.push(0);
  return out;
}

const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];

/** The ICMPv6 message of a Router Advertisement (checksum 0, the kernel fills it). */
export function buildRouterAdvertisement(ra: RouterAdvertisement): Buffer {
  const bytes: number[] = [
    ICMP6_ROUTER_ADVERTISEMENT, 0, 0, 0,
    ra.curHopLimit & 0xff, (ra.managed ? 0x80 : 0) | (ra.other ? 0x40 : 0), ...u16(ra.routerLifetime),
    ...u32(ra.reachableTime), ...u32(ra.retransTimer),
  ];
  if (ra.sourceLinkLayer) bytes.push(...option(OPT_SOURCE_LINK_LAYER, [...ra.sourceLinkLayer]));
  if (ra.mtu !== undefined) bytes.push(...option(OPT_MTU, [0, 0, ...u32(ra.mtu)]));
  for (const p of ra.prefixes) {
    bytes.push(...option(OPT_PREFIX_INFORMATION, [
      p.length, (p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0), ...u32(p.validLifetime), ...u32(p.preferredLifetime), 0, 0, 0, 0, ...p.network,
    ]));
  }
  if (ra.rdnss && ra.rdnss.servers.length > 0) bytes.push(...option(OPT_RDNSS, [0, 0, ...u32(ra.rdnss.lifetime), ...ra.rdnss.servers.flatMap((s) => [...s])]));
  if (ra.dnssl && ra.dnssl.domains.length > 0) bytes.push(...option(OPT_DNSSL, [0, 0, ...u32(ra.dnssl.lifetime), ...ra.dnssl.domains.flatMap(encodeName)]));
  return Buffer.from(bytes);
}

/** The options of an ND message as (type, body) pairs, or a reason the option area is malformed. */
function readOptions(b: Uint8Array, start: number): { type: number; body: Uint8Array }[] | string {
  const out: { type: number; body: Uint8Array }[] = [];
  for (let i = start; i < b.length; ) {
    if (i + 2 > b.length) return 'truncated option';
    const len = b[i + 1]! * 8;
    if (len === 0) return 'option of length 0';
    if (i + len > b.length) return 'option runs past the end';
    out.push({ type: b[i]!, body: b.subarray(i + 2, i + len) });
    i += len;
  }
  return out;
}

function decodeNames(b: Uint8Array): string[] | undefined {
  const names: string[] = [];
  let labels: string[] = [];
  for (let i = 0; i < b.length; ) {
    const len = b[i]!;
    if (len === 0) {
      if (labels.length) names.push(labels.join('.'));
      else if (names.length && b.subarray(i).every((x) => x === 0)) break; // padding
      labels = [];
      i++;
      continue;
    }
    if (len > 63 || i + 1 + len > b.length) return undefined;
    labels.push(Buffer.from(b.subarray(i + 1, i + 1 + len)).toString('latin1'));
    i += 1 + len;
  }
  return labels.length ? undefined : names;
}

/** Reads a Router Advertisement back (tests, and to recognise a guest's fake RA); undefined when malformed. */
export function parseRouterAdvertisement(b: Uint8Array): RouterAdvertisement | undefined {
  if (b.length < 16 || b[0] !== ICMP6_ROUTER_ADVERTISEMENT || b[1] !== 0) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const options = readOptions(b, 16);
  if (typeof options === 'string') return undefined;
  const ra: RouterAdvertisement = {
    curHopLimit: b[4]!, managed: (b[5]! & 0x80) !== 0, other: (b[5]! & 0x40) !== 0,
    routerLifetime: view.getUint16(6), reachableTime: view.getUint32(8), retransTimer: view.getUint32(12), prefixes: [],
  };
  for (const { type, body } of options) {
    const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (type === OPT_SOURCE_LINK_LAYER && body.length >= 6) ra.sourceLinkLayer = Uint8Array.from(body.subarray(0, 6));
    else if (type === OPT_MTU && body.length >= 6) ra.mtu = bv.getUint32(2);
    else if (type === OPT_PREFIX_INFORMATION) {
      if (body.length !== 30) return undefined;
      ra.prefixes.push({
        length: body[0]!, onLink: (body[1]! & 0x80) !== 0, autonomous: (body[1]! & 0x40) !== 0,
        validLifetime: bv.getUint32(2), preferredLifetime: bv.getUint32(6), network: Uint8Array.from(body.subarray(14, 30)),
      });
    } else if (type === OPT_RDNSS) {
      if (body.length < 22 || (body.length - 6) % 16 !== 0) return undefined;
      const servers: Ipv6Bytes[] = [];
      for (let i = 6; i < body.length; i += 16) servers.push(Uint8Array.from(body.subarray(i, i + 16)));
      ra.rdnss = { lifetime: bv.getUint32(2), servers };
    } else if (type === OPT_DNSSL) {
      const domains = body.length >= 14 ? decodeNames(body.subarray(6)) : undefined;
      if (!domains) return undefined;
      ra.dnssl = { lifetime: bv.getUint32(2), domains };
    }
  }
  return ra;
}

export type RsVerdict = { ok: true; sourceLinkLayer?: Uint8Array } | { ok: false; reason: string };

/**
 * RFC 4861 6.1.1: a Router Solicitation is valid when the hop limit was 255 (it was not routed), the code is 0, it
 * is at least 8 bytes, every option has a non-zero length, and one from the unspecified address carries no source
 * link-layer option. source: the packet's IPv6 source; hopLimit: from IPV6_HOPLIMIT (-1 when unknown).
 */
export function parseRouterSolicitation(b: Uint8Array, source: Ipv6Bytes, hopLimit: number): RsVerdict {
  if (hopLimit !== 255) return { ok: false, reason: `hop limit ${hopLimit}, not 255` };
  if (b.length < 8) return { ok: false, reason: 'shorter than 8 bytes' };
  if (b[0] !== ICMP6_ROUTER_SOLICITATION) return { ok: false, reason: `ICMPv6 type ${b[0]}` };
  if (b[1] !== 0) return { ok: false, reason: `code ${b[1]}` };
  const options = readOptions(b, 8);
  if (typeof options === 'string') return { ok: false, reason: options };
  const slla = options.find((o) => o.type === OPT_SOURCE_LINK_LAYER);
  const unspecified = source.length !== 16 || source.every((x) => x === 0);
  if (unspecified && slla) return { ok: false, reason: 'source link-layer option from the unspecified address' };
  return slla && slla.body.length >= 6 ? { ok: true, sourceLinkLayer: Uint8Array.from(slla.body.subarray(0, 6)) } : { ok: true };
}
