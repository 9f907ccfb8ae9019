/**
 * Issue 17: the name routes in effect (configured and added at runtime), as one immutable table the router's lookup
 * reads per connection. Matching: an exact name first, else the wildcard `*.` + the name without its first label
 * (a wildcard stands for exactly one label, as in certificates, so at most one wildcard can match a name: the most
 * specific match is the exact one, then that wildcard). Also the conflict check between routed ports and plain
 * port forwards: a host port is either routed by name or DNATed to one guest, never both.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4 } from '../net/ipv4.js';
import type { PortForwardSpec } from '../nft/forward-spec.js';
import { parseExposeSpec, routesOf, type ExposeRoute, type ExposeSpec } from './expose-spec.js';

export type ExposeSource = 'config' | 'runtime';

export interface ExposeEntry {
  readonly spec: ExposeSpec;
  /** canonical text */
  readonly text: string;
  readonly source: ExposeSource;
  readonly routes: readonly ExposeRoute[];
}

const key = (port: number, name: string) => `${port} ${name}`;

export class RouteTable {
  private readonly byKey = new Map<string, { route: ExposeRoute; entry: ExposeEntry }>();
  readonly ports: readonly number[];

  /** Throws NatdError(CONFIG) when two entries route the same name on the same port. */
  constructor(readonly entries: readonly ExposeEntry[]) {
    for (const entry of entries) {
      for (const route of entry.routes) {
        const k = key(route.listenPort, route.name);
        const taken = this.byKey.get(k);
        if (taken) throw new NatdError(ErrorCodes.CONFIG, `expose "${entry.text}": ${route.name} on port ${route.listenPort} is already routed by "${taken.entry.text}"`);
        this.byKey.set(k, { route, entry });
      }
    }
    this.ports = Object.freeze([...new Set(entries.flatMap((e) => e.routes.map((r) => r.listenPort)))].sort((a, b) => a - b));
  }

  /** The route for `name` (lower case, no trailing dot) on `port`: exact, else the one-label wildcard. */
  match(name: string, port: number): ExposeRoute | undefined {
    const exact = this.byKey.get(key(port, name));
    if (exact) return exact.route;
    const dot = name.indexOf('.');
    if (dot <= 0) return undefined;
    return this.byKey.get(key(port, `*${name.slice(dot)}`))?.route;
  }

  with(entry: ExposeEntry): RouteTable {
    return new RouteTable([...this.entries, entry]);
  }

  without(entry: ExposeEntry): RouteTable {
    return new RouteTable(this.entries.filter((e) => e !== entry));
  }
}

/** One entry from its text; throws NatdError(CONFIG) naming the problem. */
export function exposeEntry(text: string, source: ExposeSource): ExposeEntry {
  const spec = parseExposeSpec(text);
  const routes = routesOf(spec);
  return Object.freeze({ spec, text: routes[0]!.spec, source, routes: Object.freeze(routes) });
}

/** `expose` (config/flags): every problem pushed with its field; the table of the entries that parsed. */
export function parseExposeList(texts: readonly string[], field: string, problems: string[]): ExposeEntry[] {
  const entries: ExposeEntry[] = [];
  texts.forEach((text, i) => {
    try {
      const entry = exposeEntry(text, 'config');
      new RouteTable([...entries, entry]); // duplicates
      entries.push(entry);
    } catch (err) {
      problems.push(`${field}.${i}: ${(err as Error).message}`);
    }
  });
  return entries;
}

/**
 * A plain TCP port forward on a routed port, on an address the router listens on (any address when either side is
 * unbound), as problem texts naming the forward. `listen`: the router's address, undefined = every address.
 */
export function forwardConflicts(ports: readonly number[], listen: number | undefined, forwards: readonly { text: string; spec: PortForwardSpec }[]): string[] {
  const problems: string[] = [];
  for (const { text, spec } of forwards) {
    if (spec.protocol !== 'tcp' || !ports.includes(spec.hostPort)) continue;
    if (listen !== undefined && spec.hostAddress !== undefined && spec.hostAddress !== listen) continue;
    const where = listen === undefined ? 'every host address' : formatIpv4(listen);
    problems.push(`forward "${text}": tcp port ${spec.hostPort} is a routed port (expose, on ${where}); a port is either routed by name or forwarded to one guest`);
  }
  return problems;
}
