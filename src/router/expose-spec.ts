/**
 * Issue 17: the one syntax of a name route, used by the flag, the config file and the control CLI:
 *
 *   NAME[:LISTENPORT]=GUEST[:PORT][,proxy-protocol=v1|v2]
 *
 *   app.example.com=web                   80 → web:80 and 443 → web:443 (by HTTP Host / TLS SNI)
 *   *.dev.example.com=10.10.0.7           a wildcard: exactly one leading label (as in certificates)
 *   api.example.com:8443=web:443          a routed port of its own; the guest port differs, so LISTENPORT is given
 *   app.example.com=web:443               443 only (a PORT of 80 or 443 without LISTENPORT picks that port)
 *   app.example.com=web,proxy-protocol=v2 the guest gets a PROXY v2 header with the client's address first
 *
 * GUEST is a reservation name, a lease hostname (one DNS label) or an IPv4 address. Names are resolved when a
 * connection arrives (daemon/name-router.ts), so a guest whose lease moves is followed. Hand-written, as the forward
 * spec is (nft/forward-spec.ts): the grammar is small and its errors must name the field that is wrong.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';

export type ProxyProtocol = 'v1' | 'v2';

export type ExposeGuest = { readonly address: number } | { readonly name: string };

/** A spec as written (canonicalised): the guest may still be a name. */
export interface ExposeSpec {
  /** lower case; a wildcard is written `*.rest` */
  readonly name: string;
  readonly listenPort?: number;
  readonly guest: ExposeGuest;
  readonly guestPort?: number;
  readonly proxyProtocol?: ProxyProtocol;
}

/** One route as the router needs it: one listen port, one guest port. */
export interface ExposeRoute {
  readonly name: string;
  readonly wildcard: boolean;
  readonly listenPort: number;
  readonly guest: ExposeGuest;
  readonly guestPort: number;
  readonly proxyProtocol?: ProxyProtocol;
  /** the spec text this route came from (canonical) */
  readonly spec: string;
}

export const DEFAULT_ROUTED_PORTS = [80, 443] as const;
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
/** A guest name is one DNS label, as the DHCP side stores host names. */
const GUEST_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LOOKS_NUMERIC_RE = /^[\d.]+$/;
export const EXPOSE_SYNTAX = 'NAME[:LISTENPORT]=GUEST[:PORT][,proxy-protocol=v1|v2]';

function fail(text: string, problem: string): never {
  throw new NatdError(ErrorCodes.CONFIG, `expose "${text}": ${problem} (syntax ${EXPOSE_SYNTAX})`);
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text)) fail(spec, `${what} "${text}" is not a port number`);
  const port = Number(text);
  if (port < 1 || port > 65535) fail(spec, `${what} ${port} is outside 1-65535`);
  return port;
}

/** A host name or `*.` + a host name of at least two labels; lower case. Throws naming the problem. */
export function parseRouteName(text: string, spec: string): string {
  const name = text.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) fail(spec, `name "${text}" is not a host name`);
  const labels = name.split('.');
  const wildcard = labels[0] === '*';
  const rest = wildcard ? labels.slice(1) : labels;
  if (wildcard && rest.length < 2) fail(spec, `wildcard "${text}" needs at least two labels after "*." (e.g. *.dev.example.com)`);
  if (rest.some((l) => l.includes('*'))) fail(spec, `name "${text}": a wildcard is "*." followed by a name, one leading label only`);
  if (!rest.every((l) => LABEL_RE.test(l))) fail(spec, `name "${text}" is not a host name`);
  return name;
}

/** Parses one spec; throws NatdError(CONFIG) naming the part that is wrong. */
export function parseExposeSpec(input: string): ExposeSpec {
  const text = input.trim();
  const [main, ...options] = text.split(',');
  const sides = main!.split('=');
  if (sides.length !== 2) fail(text, sides.length < 2 ? 'missing "="' : 'more than one "=" before the options');
  const [nameSide, guestSide] = sides as [string, string];

  const nameColon = nameSide.lastIndexOf(':');
  const name = parseRouteName(nameColon < 0 ? nameSide : nameSide.slice(0, nameColon), text);
  const listenPort = nameColon < 0 ? undefined : parsePort(nameSide.slice(nameColon + 1), 'listen port', text);

  const guestColon = guestSide.lastIndexOf(':');
  const guestText = (guestColon < 0 ? guestSide : guestSide.slice(0, guestColon)).toLowerCase();
  const guestPort = guestColon < 0 ? undefined : parsePort(guestSide.slice(guestColon + 1), 'guest port', text);
  let guest: ExposeGuest;
  if (LOOKS_NUMERIC_RE.test(guestText)) {
    const address = parseIpv4(guestText);
    if (address === undefined) fail(text, `guest "${guestText}" is not an IPv4 address`);
    guest = { address };
  } else if (GUEST_NAME_RE.test(guestText)) {
    guest = { name: guestText };
  } else {
    fail(text, `guest "${guestText}" is neither an IPv4 address nor a guest name (one label, e.g. web)`);
  }
  if (listenPort === undefined && guestPort !== undefined && !(DEFAULT_ROUTED_PORTS as readonly number[]).includes(guestPort)) {
    fail(text, `guest port ${guestPort} differs from the routed ports 80 and 443: give the listen port too, e.g. ${name}:${guestPort}=${guestText}:${guestPort}`);
  }

  let proxyProtocol: ProxyProtocol | undefined;
  for (const option of options) {
    const m = /^proxy-protocol=(v1|v2)$/i.exec(option.trim());
    if (!m) fail(text, `unknown option "${option}" (proxy-protocol=v1 or proxy-protocol=v2)`);
    if (proxyProtocol !== undefined) fail(text, 'proxy-protocol given twice');
    proxyProtocol = m[1]!.toLowerCase() as ProxyProtocol;
  }
  return {
    name,
    ...(listenPort !== undefined ? { listenPort } : {}),
    guest,
    ...(guestPort !== undefined ? { guestPort } : {}),
    ...(proxyProtocol ? { proxyProtocol } : {}),
  };
}

export function formatGuest(guest: ExposeGuest): string {
  return 'address' in guest ? formatIpv4(guest.address) : guest.name;
}

/** The canonical text of a spec, which parses back to the same spec. */
export function formatExposeSpec(spec: ExposeSpec): string {
  const listen = spec.listenPort === undefined ? '' : `:${spec.listenPort}`;
  const port = spec.guestPort === undefined ? '' : `:${spec.guestPort}`;
  const proxy = spec.proxyProtocol ? `,proxy-protocol=${spec.proxyProtocol}` : '';
  return `${spec.name}${listen}=${formatGuest(spec.guest)}${port}${proxy}`;
}

/** The routes a spec stands for: one per listen port (80 and 443 when none was given). */
export function routesOf(spec: ExposeSpec): ExposeRoute[] {
  const text = formatExposeSpec(spec);
  const ports: readonly number[] = spec.listenPort !== undefined ? [spec.listenPort] : spec.guestPort !== undefined ? [spec.guestPort] : DEFAULT_ROUTED_PORTS;
  return ports.map((listenPort) => Object.freeze({
    name: spec.name,
    wildcard: spec.name.startsWith('*.'),
    listenPort,
    guest: spec.guest,
    guestPort: spec.guestPort ?? listenPort,
    ...(spec.proxyProtocol ? { proxyProtocol: spec.proxyProtocol } : {}),
    spec: text,
  }));
}

/** `--expose-fallback GUEST[:PORT]`: where TLS without a server name goes (PORT default: the listen port). */
export interface ExposeFallback {
  readonly guest: ExposeGuest;
  readonly guestPort?: number;
}

export function parseExposeFallback(input: string): ExposeFallback {
  const text = input.trim();
  const colon = text.lastIndexOf(':');
  const guestText = (colon < 0 ? text : text.slice(0, colon)).toLowerCase();
  const bad = (problem: string): never => {
    throw new NatdError(ErrorCodes.CONFIG, `expose fallback "${text}": ${problem} (syntax GUEST[:PORT])`);
  };
  let guestPort: number | undefined;
  if (colon >= 0) {
    const p = text.slice(colon + 1);
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) bad(`port "${p}" is not a port in 1-65535`);
    guestPort = Number(p);
  }
  let guest: ExposeGuest;
  if (LOOKS_NUMERIC_RE.test(guestText)) {
    const address = parseIpv4(guestText);
    if (address === undefined) bad(`"${guestText}" is not an IPv4 address`);
    guest = { address: address! };
  } else if (GUEST_NAME_RE.test(guestText)) guest = { name: guestText };
  else guest = bad(`"${guestText}" is neither an IPv4 address nor a guest name`);
  return guestPort === undefined ? { guest } : { guest, guestPort };
}
