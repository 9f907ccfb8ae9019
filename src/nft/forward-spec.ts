/**
 * The one port-forward syntax used everywhere (flag, config file, control CLI):
 *
 *   [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT      e.g. tcp:2222=web:22, 80=10.10.0.5:80, udp:198.51.100.1:5353=web:53
 *
 * A spec names its guest by address or by reservation name; `resolveForward` turns it into a `PortForward` (guest
 * as an address) once the reservations are known. Without HOSTADDR a forward listens on every local address.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';

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
  hostPort: number;
  guest: { address: number } | { name: string };
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

/** Parses one forward spec; throws NatdError(CONFIG) naming the part that is wrong. */
export function parseForwardSpec(text: string): PortForwardSpec {
  const spec = text.trim();
  const sides = spec.split('=');
  if (sides.length !== 2) fail(spec, sides.length < 2 ? 'missing "="' : 'more than one "="');
  const [hostSide, guestSide] = sides as [string, string];

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

/** The canonical text of a spec (protocol always written), which parses back to the same spec. */
export function formatForwardSpec(spec: PortForwardSpec | PortForward): string {
  const host = spec.hostAddress === undefined ? `${spec.hostPort}` : `${formatIpv4(spec.hostAddress)}:${spec.hostPort}`;
  const guest = 'guestAddress' in spec
    ? formatIpv4(spec.guestAddress)
    : 'address' in spec.guest ? formatIpv4(spec.guest.address) : spec.guest.name;
  return `${spec.protocol}:${host}=${guest}:${spec.guestPort}`;
}

/** Resolves the guest of a spec; an unknown reservation name is a NatdError(CONFIG). */
export function resolveForward(spec: PortForwardSpec, resolveName: (name: string) => number | undefined): PortForward {
  let guestAddress: number;
  if ('address' in spec.guest) {
    guestAddress = spec.guest.address;
  } else {
    const found = resolveName(spec.guest.name);
    if (found === undefined) {
      const message = `port forward "${formatForwardSpec(spec)}": no reservation named "${spec.guest.name}"`;
      throw new NatdError(ErrorCodes.CONFIG, message);
    }
    guestAddress = found;
  }
  const forward: PortForward = { protocol: spec.protocol, hostPort: spec.hostPort, guestAddress, guestPort: spec.guestPort };
  if (spec.hostAddress !== undefined) forward.hostAddress = spec.hostAddress;
  return forward;
}
