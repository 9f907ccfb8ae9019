/**
 * issue 14: DHCP Unique Identifiers (RFC 8415 §11): parse, print, the MAC inside, and natd's own server DUID.
 *
 * Text form: lower-case hex bytes joined by ':' ("00:03:00:01:52:54:00:aa:bb:cc"), as dnsmasq prints DUIDs and
 * takes them in `dhcp-host=id:...`. Lease keys use the same text.
 *
 * Reservations by MAC (`--dhcp-host=52:54:00:aa:bb:cc,[fd00::5]`): the MAC is read from the client's DUID when it
 * is a DUID-LL or DUID-LLT of Ethernet (hardware type 1), which is what most guests send (systemd-networkd's default
 * DUID-EN and a DUID-UUID carry none). When the DUID has no MAC, natd uses the link-layer source address the
 * transport saw (the Ethernet source of the packet, or the neighbour entry of the link-local source) — on a bridge of
 * VMs that is the guest's NIC, the same MAC the IPv4 reservation uses. Without either, only DUID reservations match.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../state/atomic-file.js';

export const DuidType = { LLT: 1, EN: 2, LL: 3, UUID: 4 } as const;
/** ARP hardware type of Ethernet (RFC 826 / IANA): DUIDs with it carry a 6-byte MAC */
const HW_ETHERNET = 1;
/** DUID-LLT time is seconds since 2000-01-01T00:00:00Z, mod 2^32 */
const DUID_EPOCH_MS = Date.UTC(2000, 0, 1);
/** the file in the state dir that keeps natd's server DUID across restarts */
export const SERVER_DUID_FILE = 'dhcp6-server-duid';

export type Duid =
  | { type: 'llt'; hwType: number; time: number; linkLayer: Uint8Array }
  | { type: 'en'; enterprise: number; identifier: Uint8Array }
  | { type: 'll'; hwType: number; linkLayer: Uint8Array }
  | { type: 'uuid'; uuid: Uint8Array }
  | { type: 'other'; code: number; value: Uint8Array };

/** The DUID's structure; undefined when shorter than its type needs (or longer than RFC 8415's 130 bytes). */
export function parseDuid(bytes: Uint8Array): Duid | undefined {
  if (bytes.length < 3 || bytes.length > 130) return undefined;
  const code = (bytes[0]! << 8) | bytes[1]!;
  const hw = bytes.length >= 4 ? (bytes[2]! << 8) | bytes[3]! : 0;
  switch (code) {
    case DuidType.LLT:
      if (bytes.length < 9) return undefined;
      return { type: 'llt', hwType: hw, time: ((bytes[4]! << 24) | (bytes[5]! << 16) | (bytes[6]! << 8) | bytes[7]!) >>> 0, linkLayer: bytes.slice(8) };
    case DuidType.EN:
      if (bytes.length < 7) return undefined;
      return { type: 'en', enterprise: ((bytes[2]! << 24) | (bytes[3]! << 16) | (bytes[4]! << 8) | bytes[5]!) >>> 0, identifier: bytes.slice(6) };
    case DuidType.LL:
      if (bytes.length < 5) return undefined;
      return { type: 'll', hwType: hw, linkLayer: bytes.slice(4) };
    case DuidType.UUID:
      if (bytes.length !== 18) return undefined;
      return { type: 'uuid', uuid: bytes.slice(2) };
    default:
      return { type: 'other', code, value: bytes.slice(2) };
  }
}

/** two lower-case hex digits per byte value (formatDuid and macFromDuid run once per DHCPv6 message) */
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** "00:01:00:01:..." */
export function formatDuid(bytes: Uint8Array): string {
  let out = bytes.length ? HEX2[bytes[0]!]! : '';
  for (let i = 1; i < bytes.length; i++) out += ':' + HEX2[bytes[i]!]!;
  return out;
}

/** dnsmasq's DUID text (hex bytes with ':' or '-' or none between) → bytes; undefined when not 3-130 hex bytes. */
export function parseDuidText(text: string): Uint8Array | undefined {
  const t = text.trim().toLowerCase();
  let hex: string;
  if (/^[0-9a-f]{1,2}([:-][0-9a-f]{1,2})+$/.test(t)) hex = t.split(/[:-]/).map((p) => p.padStart(2, '0')).join('');
  else if (/^(?:[0-9a-f]{2})+$/.test(t)) hex = t;
  else return undefined;
  const bytes = Uint8Array.from(Buffer.from(hex, 'hex'));
  return bytes.length >= 3 && bytes.length <= 130 ? bytes : undefined;
}

/** The Ethernet MAC in a DUID-LL or DUID-LLT of hardware type 1; undefined for EN, UUID and other link types. */
export function macFromDuid(bytes: Uint8Array): string | undefined {
  // read in place (no parseDuid object): LL is type 3 + hw type + the address, LLT type 1 + hw type + time + it
  const type = bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : -1;
  const at = type === DuidType.LL ? 4 : type === DuidType.LLT ? 8 : -1;
  if (at < 0 || bytes.length !== at + 6 || ((bytes[2]! << 8) | bytes[3]!) !== HW_ETHERNET) return undefined;
  return `${HEX2[bytes[at]!]}:${HEX2[bytes[at + 1]!]}:${HEX2[bytes[at + 2]!]}:${HEX2[bytes[at + 3]!]}:${HEX2[bytes[at + 4]!]}:${HEX2[bytes[at + 5]!]}`;
}

function macBytes(mac: string): Uint8Array {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new RangeError(`not a MAC address: ${mac}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** DUID-LL of an Ethernet MAC: 00:03:00:01 + MAC. */
export function duidLl(mac: string): Uint8Array {
  return Uint8Array.from([0, DuidType.LL, 0, HW_ETHERNET, ...macBytes(mac)]);
}

/** DUID-LLT of an Ethernet MAC at `nowMs`: 00:01:00:01 + time + MAC. */
export function duidLlt(mac: string, nowMs: number): Uint8Array {
  const t = Math.floor((nowMs - DUID_EPOCH_MS) / 1000) >>> 0;
  return Uint8Array.from([0, DuidType.LLT, 0, HW_ETHERNET, t >>> 24, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff, ...macBytes(mac)]);
}

/**
 * natd's server DUID: the one stored in the state dir when there is one (so clients keep talking to "the same
 * server" across restarts, even if the bridge's MAC changes), else a new DUID-LLT of the bridge MAC, stored
 * atomically before it is first used. A damaged file is replaced (logged by the caller through `onReplaced`).
 */
export async function loadOrCreateServerDuid(stateDir: string, bridgeMac: string, nowMs: number, onReplaced?: (why: string) => void): Promise<Uint8Array> {
  const path = join(stateDir, SERVER_DUID_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const stored = parseDuidText(text.trim());
    if (stored && parseDuid(stored)) return stored;
    onReplaced?.(`${path} does not hold a DUID; a new one is made`);
  }
  const duid = duidLlt(bridgeMac, nowMs);
  await mkdir(stateDir, { recursive: true, mode: 0o750 });
  await writeFileAtomic(path, `${formatDuid(duid)}\n`, { mode: 0o640 });
  return duid;
}
