/**
 * The one port-forward syntax used everywhere (flag, config file, control CLI):
 *
 *   [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT      e.g. tcp:2222=web:22, 80=10.10.0.5:80, udp:198.51.100.1:5353=web:53
 *
 * A spec names its guest by address or by reservation name; `resolveForward` turns it into a `PortForward` (guest
 * as an address) once the reservations are known. Without HOSTADDR a forward listens on every local address.
 *
 * issue 14: IPv6 addresses are written in brackets, `tcp:[2001:db8::1]:2222=web:22`, `tcp:2222=[fd00::5]:22`,
 * `tcp:[2001:db8::1]:2222=[fd00::5]:22`; the host and guest addresses of one forward are of one family (natd does
 * not translate between IPv4 and IPv6). Which family a forward serves (forward6.ts): an IPv6 host or guest address
 * makes it IPv6-only, an IPv4 one IPv4-only; `tcp:2222=web:22` (any host address, guest by name) is forwarded over
 * IPv4 to the guest's IPv4 address and, when natd serves IPv6 and knows an IPv6 address for the name, over IPv6 too.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';
import { formatIpv6, isLinkLocal, isMulticast, parseIpv6 } from '../ipv6/address.js'; // issue 14

export type ForwardProtocol = 'tcp' | 'udp';

/** A forward as the ruleset needs it: every address resolved. */
export interface PortForward {
  protocol: ForwardProtocol;
  /** Host address to listen on; absent = any local address of the host. */
  hostAddress?: number;
  hostPort: number;
  guestAddress: number;
  guestPort: number;
}

/** A forward as written: the guest may still be a reservation name. */
export interface PortForwardSpec {
  protocol: ForwardProtocol;
  hostAddress?: number;
  /** issue 14: an IPv6 host address (canonical text); never together with hostAddress */
  hostAddress6?: string;
  hostPort: number;
  guest: { address: number } | { address6: string } | { name: string };
  guestPort: number;
}

/** issue 14: a forward over IPv6 as the ruleset needs it (addresses in canonical text). */
export interface PortForward6 {
  family: 'ipv6';
  protocol: ForwardProtocol;
  /** absent = any local IPv6 address of the host */
  hostAddress?: string;
  hostPort: number;
  guestAddress: string;
  guestPort: number;
}

const PROTOCOLS: readonly string[] = ['tcp', 'udp'];
/** A reservation name is one DNS label (what the DHCP side stores as a hostname). */
const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LOOKS_NUMERIC_RE = /^[\d.]+$/;

function fail(text: string, problem: string): never {
  throw new NatdError(ErrorCodes.CONFIG, `port forward "${text}": ${problem} (syntax [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT)`);
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text)) fail(spec, `${what} "${text}" is not a port number`);
  const port = Number(text);
  if (port < 1 || port > 65535) fail(spec, `${what} ${port} is outside 1-65535`);
  return port;
}

function parseAddress(text: string, what: string, spec: string): number {
  const address = parseIpv4(text);
  if (address === undefined) fail(spec, `${what} "${text}" is not an IPv4 address`);
  return address;
}

/** issue 14: a bracketed IPv6 address of a forward (unicast, not link-local: a forward needs a routable address). */
function parseAddress6(text: string, what: string, spec: string): string {
  const address = parseIpv6(text);
  if (address === undefined) fail(spec, `${what} "[${text}]" is not an IPv6 address`);
  if (isLinkLocal(address) || isMulticast(address) || address.every((b) => b === 0)) fail(spec, `${what} [${text}] is link-local, multicast or unspecified`);
  return formatIpv6(address);
}

const HOST6_RE = /^(?:([a-z]+):)?\[([^\]]*)\]:([^:]*)$/i;
const GUEST6_RE = /^\[([^\]]*)\]:([^:]*)$/;

/** Parses one forward spec; throws NatdError(CONFIG) naming the part that is wrong. */
export function parseForwardSpec(text: string): PortForwardSpec {
  const spec = text.trim();
  const sides = spec.split('=');
  if (sides.length !== 2) fail(spec, sides.length < 2 ? 'missing "="' : 'more than one "="');
  const [hostSide, guestSide] = sides as [string, string];
  if (hostSide.includes('[') || guestSide.includes('[')) return parseForwardSpec6(spec, hostSide, guestSide); // issue 14

  const hostParts = hostSide.split(':');
  if (hostParts.length > 3 || hostParts.some((p) => p === '')) fail(spec, `host side "${hostSide}" is malformed`);
  let protocol: ForwardProtocol = 'tcp';
  if (hostParts.length > 1 && PROTOCOLS.includes(hostParts[0]!.toLowerCase())) {
    protocol = hostParts.shift()!.toLowerCase() as ForwardProtocol;
  } else if (hostParts.length === 3 || (hostParts.length === 2 && !LOOKS_NUMERIC_RE.test(hostParts[0]!))) {
    fail(spec, `unknown protocol "${hostParts[0]}" (tcp or udp)`);
  }
  let hostAddress: number | undefined;
  if (hostParts.length === 2) hostAddress = parseAddress(hostParts.shift()!, 'host address', spec);
  const hostPort = parsePort(hostParts[0]!, 'host port', spec);

  const colon = guestSide.lastIndexOf(':');
  if (colon <= 0) fail(spec, `guest side "${guestSide}" needs GUEST:PORT`);
  const guestText = guestSide.slice(0, colon).toLowerCase();
  const guestPort = parsePort(guestSide.slice(colon + 1), 'guest port', spec);
  let guest: PortForwardSpec['guest'];
  if (LOOKS_NUMERIC_RE.test(guestText)) guest = { address: parseAddress(guestText, 'guest address', spec) };
  else if (NAME_RE.test(guestText)) guest = { name: guestText };
  else fail(spec, `guest "${guestText}" is neither an IPv4 address nor a reservation name`);

  return hostAddress === undefined
    ? { protocol, hostPort, guest, guestPort }
    : { protocol, hostAddress, hostPort, guest, guestPort };
}

/**
 * issue 14: a spec with a bracketed IPv6 address on either side. The other side may be a port only (host) or a name
 * (guest), never an IPv4 address: natd forwards within one family.
 */
function parseForwardSpec6(spec: string, hostSide: string, guestSide: string): PortForwardSpec {
  let protocol: ForwardProtocol = 'tcp';
  let hostAddress6: string | undefined;
  let hostPort: number;
  const host6 = HOST6_RE.exec(hostSide);
  if (host6) {
    if (host6[1] !== undefined && !PROTOCOLS.includes(host6[1].toLowerCase())) fail(spec, `unknown protocol "${host6[1]}" (tcp or udp)`);
    if (host6[1] !== undefined) protocol = host6[1].toLowerCase() as ForwardProtocol;
    hostAddress6 = parseAddress6(host6[2]!, 'host address', spec);
    hostPort = parsePort(host6[3]!, 'host port', spec);
  } else {
    if (hostSide.includes('[') || hostSide.includes(']')) fail(spec, `host side "${hostSide}" is malformed (an IPv6 address goes in brackets: tcp:[2001:db8::1]:2222)`);
    const parts = hostSide.split(':');
    const v4Host = parts.slice(0, -1).find((p) => parseIpv4(p) !== undefined);
    if (v4Host !== undefined) fail(spec, `host address ${v4Host} is IPv4 but the guest is IPv6: natd forwards within one family`);
    if (parts.length > 2 || parts.some((p) => p === '')) fail(spec, `host side "${hostSide}" must be [PROTO:]PORT or [PROTO:][IPV6]:PORT when the guest is an IPv6 address`);
    if (parts.length === 2) {
      if (!PROTOCOLS.includes(parts[0]!.toLowerCase())) fail(spec, `unknown protocol "${parts[0]}" (tcp or udp)`);
      protocol = parts.shift()!.toLowerCase() as ForwardProtocol;
    }
    hostPort = parsePort(parts[0]!, 'host port', spec);
  }
  let guest: PortForwardSpec['guest'];
  let guestPort: number;
  const guest6 = GUEST6_RE.exec(guestSide);
  if (guest6) {
    guest = { address6: parseAddress6(guest6[1]!, 'guest address', spec) };
    guestPort = parsePort(guest6[2]!, 'guest port', spec);
  } else {
    if (guestSide.includes('[') || guestSide.includes(']')) fail(spec, `guest side "${guestSide}" is malformed (an IPv6 guest goes in brackets: [fd00::5]:22)`);
    const colon = guestSide.lastIndexOf(':');
    if (colon <= 0) fail(spec, `guest side "${guestSide}" needs GUEST:PORT`);
    const guestText = guestSide.slice(0, colon).toLowerCase();
    guestPort = parsePort(guestSide.slice(colon + 1), 'guest port', spec);
    if (LOOKS_NUMERIC_RE.test(guestText)) fail(spec, `host address ${hostAddress6 ?? ''} is IPv6 but guest ${guestText} is IPv4: natd forwards within one family`);
    if (!NAME_RE.test(guestText)) fail(spec, `guest "${guestText}" is neither an IPv6 address in brackets nor a reservation name`);
    guest = { name: guestText };
  }
  return hostAddress6 === undefined ? { protocol, hostPort, guest, guestPort } : { protocol, hostAddress6, hostPort, guest, guestPort };
}

/**
 * The configured specs that parse, each with its index (`forwards.N`) and text as written: the checks beyond syntax
 * (subnet, IPv6 prefix, service ports, name routes) look at these; the syntax errors are reported by the loader's own
 * check (config/parts.ts checkForwards).
 */
export function parsableForwards(texts: readonly string[]): { index: number; text: string; spec: PortForwardSpec }[] {
  return texts.flatMap((text, index) => {
    try {
      return [{ index, text, spec: parseForwardSpec(text) }];
    } catch {
      return [];
    }
  });
}

/** issue 14: whether a spec or forward is over IPv6 only (an IPv6 host or guest address). */
export function isIpv6Only(spec: PortForwardSpec): boolean {
  return spec.hostAddress6 !== undefined || 'address6' in spec.guest;
}

/** The canonical text of a spec (protocol always written), which parses back to the same spec. */
export function formatForwardSpec(spec: PortForwardSpec | PortForward | PortForward6): string {
  if ('family' in spec) {
    const host = spec.hostAddress === undefined ? `${spec.hostPort}` : `[${spec.hostAddress}]:${spec.hostPort}`;
    return `${spec.protocol}:${host}=[${spec.guestAddress}]:${spec.guestPort}`;
  }
  const hostAddress6 = 'guestAddress' in spec ? undefined : spec.hostAddress6;
  const host = hostAddress6 !== undefined ? `[${hostAddress6}]:${spec.hostPort}` : spec.hostAddress === undefined ? `${spec.hostPort}` : `${formatIpv4(spec.hostAddress)}:${spec.hostPort}`;
  const guest = 'guestAddress' in spec
    ? formatIpv4(spec.guestAddress)
    : 'address' in spec.guest ? formatIpv4(spec.guest.address) : 'address6' in spec.guest ? `[${spec.guest.address6}]` : spec.guest.name;
  return `${spec.protocol}:${host}=${guest}:${spec.guestPort}`;
}

/** Resolves the guest of a spec; an unknown reservation name is a NatdError(CONFIG). */
export function resolveForward(spec: PortForwardSpec, resolveName: (name: string) => number | undefined): PortForward {
  let guestAddress: number;
  if (isIpv6Only(spec)) throw new NatdError(ErrorCodes.CONFIG, `port forward "${formatForwardSpec(spec)}" is over IPv6`); // issue 14: forward6.ts
  if ('address' in spec.guest) {
    guestAddress = spec.guest.address;
  } else {
    const found = resolveName((spec.guest as { name: string }).name);
    if (found === undefined) {
      const message = `port forward "${formatForwardSpec(spec)}": no reservation named "${(spec.guest as { name: string }).name}"`;
      throw new NatdError(ErrorCodes.CONFIG, message);
    }
    guestAddress = found;
  }
  const forward: PortForward = { protocol: spec.protocol, hostPort: spec.hostPort, guestAddress, guestPort: spec.guestPort };
  if (spec.hostAddress !== undefined) forward.hostAddress = spec.hostAddress;
  return forward;
}
