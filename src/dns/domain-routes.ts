/**
 * Per-domain DNS routing (issue 15), with dnsmasq's spec syntax (`--server`, `--local`) and its matching rule.
 *
 *   --server=IP[#PORT]                    a default upstream (as --upstream)
 *   --server=/corp.example/10.0.0.53      names in corp.example (the domain and every name below it) go to 10.0.0.53
 *   --server=/a/b/10.0.0.53#5353          several domains, one server; `[2001:db8::53]:53`, `2001:db8::53#53` too
 *   --server=/0.0.10.in-addr.arpa/IP      reverse zones are domains like any other (and win over bogus-priv)
 *   --server=/internal.corp.example/#     `#`: this domain goes to the default upstreams (a hole in a wider route)
 *   --server=/lab/  or  --local=/lab/     answered here only: never forwarded, NXDOMAIN when no local name has it
 *   --server=//IP                         unqualified names (one label, no dot) go to IP
 *   --server=/#/IP                        `#` as the domain matches everything: a default upstream
 * Several entries for one domain add their servers (in order); a domain is either forwarded, local or default,
 * never two of them. The most specific domain wins: for a.b.corp.example a route for b.corp.example is taken over
 * one for corp.example, whatever the order of the flags.
 *
 * Matching is on whole labels of the lower-cased question name in presentation form (query.ts): a '.' in the name
 * always separates labels (one inside a label is escaped as \046 by readName), so `evilcorp.example` or
 * `corp.example.evil` never match `corp.example`.
 *
 * dnsmasq features not taken: `@source-address`/`@interface` (rejected with a clear error), `*` wildcards in
 * domains (rejected).
 */
import { canonicalIpv6Scoped } from '../ipv6/address.js';
import net from 'node:net';

export interface UpstreamAddress {
  /** the IP address, IPv6 without brackets (a `%scope` kept) */
  address: string;
  port: number;
}

/** What one `--server`/`--local` spec says. */
export type ServerSpec =
  /** a plain upstream (no domain): what --upstream does */
  | { kind: 'upstream'; server: UpstreamAddress }
  | { kind: 'forward'; domains: string[]; server: UpstreamAddress }
  | { kind: 'local'; domains: string[] }
  | { kind: 'default'; domains: string[] };

export type RouteKind = 'forward' | 'local' | 'default';

/** One domain's route, as the table holds it: `servers` only for 'forward'. */
export interface DomainRoute<G = undefined> {
  /** '' = unqualified names */
  domain: string;
  kind: RouteKind;
  servers: UpstreamAddress[];
  /** what the forwarder needs to reach `servers` (the upstream client's group); set by the table's owner */
  group: G;
}

export const DNS_PORT = 53;
const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * An upstream address in dnsmasq's syntax, `IP[#PORT]`, or `[IPv6]:PORT` / `IPv4:PORT` / `[IPv6]`. Throws an Error
 * whose message says what is wrong (the caller adds the field).
 */
export function parseUpstreamAddress(text: string): UpstreamAddress {
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d*))?$/.exec(s);
  if (bracket) [, host = '', portText] = bracket;
  else if (s.includes('#')) {
    const i = s.lastIndexOf('#');
    host = s.slice(0, i);
    portText = s.slice(i + 1);
  } else if (net.isIPv4(s.split(':')[0]!) && s.split(':').length === 2) [host = '', portText] = s.split(':');
  else host = s;
  if (host.includes('@') || (portText ?? '').includes('@')) throw new Error(`"${text}": @source-address/@interface is not supported`);
  if (net.isIP(host) === 0) throw new Error(`"${text}": ${JSON.stringify(host)} is not an IP address (IP, IP#PORT or [IPv6]:PORT)`);
  let port = DNS_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) throw new Error(`"${text}": port ${JSON.stringify(portText)} is not in 1-65535`);
  }
  return { address: net.isIPv6(host) ? canonicalIpv6Scoped(host) : host, port };
}

/** The address as the upstream client labels it: `1.2.3.4:53`, `[2001:db8::1]:53`. */
export function formatUpstreamAddress({ address, port }: UpstreamAddress): string {
  return net.isIPv6(address) || address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A domain as written in a spec → its lower-cased form without a trailing dot; '' for the unqualified-name route. */
function parseDomain(raw: string, text: string): string {
  const domain = raw.toLowerCase().replace(/\.$/, '');
  if (domain === '') return '';
  if (domain.includes('*')) throw new Error(`"${text}": wildcard domains (${raw}) are not supported`);
  const labels = domain.split('.');
  if (domain.length > 253 || !labels.every((l) => LABEL.test(l))) throw new Error(`"${text}": ${JSON.stringify(raw)} is not a domain name`);
  return domain;
}

/**
 * One `--server` (flag 'server') or `--local` (flag 'local') value. dnsmasq treats the two as the same option; a
 * `--local` without a domain is rejected here, since it would be an ordinary upstream hiding behind a misleading name.
 */
export function parseServerSpec(text: string, flag: 'server' | 'local' = 'server'): ServerSpec {
  if (typeof text !== 'string') throw new Error('expected a string');
  const s = text.trim();
  if (!s.startsWith('/')) {
    if (flag === 'local') throw new Error(`"${text}": expected /DOMAIN/[DOMAIN/...] (e.g. /lab/)`);
    if (s === '') throw new Error('empty server');
    return { kind: 'upstream', server: parseUpstreamAddress(s) };
  }
  const last = s.lastIndexOf('/');
  if (last === 0) throw new Error(`"${text}": expected /DOMAIN/[DOMAIN/...]SERVER (the closing / is missing)`);
  const domainsRaw = s.slice(1, last).split('/');
  const target = s.slice(last + 1).trim();
  if (domainsRaw.includes('#')) {
    // `#` as a domain matches any name: the server is an ordinary upstream
    if (domainsRaw.length > 1) throw new Error(`"${text}": the match-everything domain # cannot be combined with others`);
    if (target === '' || target === '#') throw new Error(`"${text}": /#/ needs a server address`);
    return { kind: 'upstream', server: addressIn(target, text) };
  }
  const domains = [...new Set(domainsRaw.map((d) => parseDomain(d, text)))];
  if (target === '') return { kind: 'local', domains };
  if (target === '#') return { kind: 'default', domains };
  return { kind: 'forward', domains, server: addressIn(target, text) };
}

/** The server part of a /domain/ spec; an error quotes the whole spec. */
function addressIn(target: string, spec: string): UpstreamAddress {
  try {
    return parseUpstreamAddress(target);
  } catch (err) {
    throw new Error(`"${spec}": server ${(err as Error).message}`);
  }
}

/** A route table entry before the owner attaches groups. */
export type RoutePlan = DomainRoute<undefined>;

/**
 * The routes the specs describe, one per domain, in first-mention order. Throws an Error naming the spec index when
 * a domain is given two different kinds. `upstream` specs are returned apart: they are default upstreams.
 */
export function planRoutes(specs: readonly ServerSpec[], names: readonly string[] = specs.map((_, i) => `entry ${i}`)): { routes: RoutePlan[]; upstreams: UpstreamAddress[] } {
  const byDomain = new Map<string, RoutePlan & { index: number }>();
  const upstreams: UpstreamAddress[] = [];
  specs.forEach((spec, index) => {
    if (spec.kind === 'upstream') {
      if (!upstreams.some((u) => sameAddress(u, spec.server))) upstreams.push(spec.server);
      return;
    }
    for (const domain of spec.domains) {
      let route = byDomain.get(domain);
      if (!route) {
        route = { domain, kind: spec.kind, servers: [], group: undefined, index };
        byDomain.set(domain, route);
      } else if (route.kind !== spec.kind) {
        const shown = domain === '' ? 'unqualified names (//)' : domain;
        throw new Error(`${shown} is ${describeKind(route.kind)} in ${names[route.index]} and ${describeKind(spec.kind)} in ${names[index]}`);
      }
      if (spec.kind === 'forward' && !route.servers.some((u) => sameAddress(u, spec.server))) route.servers.push(spec.server);
    }
  });
  return { routes: [...byDomain.values()].map(({ index: _index, ...route }) => route), upstreams };
}

function describeKind(kind: RouteKind): string {
  return kind === 'forward' ? 'forwarded' : kind === 'local' ? 'local (answered here only)' : 'sent to the default upstreams (#)';
}

const sameAddress = (a: UpstreamAddress, b: UpstreamAddress): boolean => a.address === b.address && a.port === b.port;

/**
 * Domain → route, most specific match first. `lookup` is on the hot path (every query that is not a local name):
 * it costs one Map probe per label of the name, and none at all when no route is configured.
 */
export class DomainRouteTable<G = undefined> {
  private readonly byDomain: Map<string, DomainRoute<G>>;
  /** the longest route domain in labels: suffixes with more labels cannot match */
  private readonly maxLabels: number;
  private readonly unqualified: DomainRoute<G> | undefined;

  constructor(readonly routes: readonly DomainRoute<G>[]) {
    this.byDomain = new Map(routes.filter((r) => r.domain !== '').map((r) => [r.domain, r]));
    this.unqualified = routes.find((r) => r.domain === '');
    this.maxLabels = Math.max(0, ...[...this.byDomain.keys()].map((d) => d.split('.').length));
  }

  get size(): number {
    return this.routes.length;
  }

  /** The route of the most specific domain that is `name` or a parent of it; `name` is lower-case, no trailing dot. */
  lookup(name: string): DomainRoute<G> | undefined {
    if (this.routes.length === 0 || name === '') return undefined;
    const first = name.indexOf('.');
    if (first < 0) return this.byDomain.get(name) ?? this.unqualified;
    let labels = 2;
    for (let i = name.indexOf('.', first + 1); i >= 0; i = name.indexOf('.', i + 1)) labels++;
    // skip the leading labels that make the name longer than any route domain
    let start = 0;
    for (; labels > this.maxLabels; labels--) {
      const dot = name.indexOf('.', start);
      if (dot < 0) return undefined;
      start = dot + 1;
    }
    for (;;) {
      const route = this.byDomain.get(start === 0 ? name : name.slice(start));
      if (route) return route;
      const dot = name.indexOf('.', start);
      if (dot < 0) return undefined;
      start = dot + 1;
    }
  }

  /** For `natd status`: one line per domain. */
  describe(): { domain: string; kind: RouteKind; servers: string[] }[] {
    return this.routes.map((r) => ({ domain: r.domain === '' ? '(unqualified)' : r.domain, kind: r.kind, servers: r.servers.map(formatUpstreamAddress) }));
  }
}

