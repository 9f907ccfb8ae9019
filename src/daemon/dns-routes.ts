/**
 * Issue 15: the configured domain routes (config.domainRoutes) made into the table the DNS server looks names up in,
 * with an upstream group per forwarded domain. natd's own domain is a route to itself ('default': the name policy
 * answers it locally), so a wider --server route never takes the guests' names and a `#` route below it cannot send
 * them to the default upstreams (with resolv.conf at systemd-resolved's stub, which sends natd's domain back to natd,
 * that would be a loop). A forward route inside natd's domain is refused by config.ts: local names answer there.
 */
import type { Config } from '../config.js';
import { DomainRouteTable, type DomainRoute } from '../dns/domain-routes.js';
import type { UpstreamClient, UpstreamGroup } from '../dns/upstream.js';

export type RouteTable = DomainRouteTable<UpstreamGroup | undefined>;

export function buildRouteTable(config: Config, upstream: UpstreamClient): RouteTable {
  const routes: DomainRoute<UpstreamGroup | undefined>[] = config.domainRoutes.map((r) => ({ ...r, servers: [...r.servers] }));
  const own = config.domain;
  if (own !== undefined) {
    const i = routes.findIndex((r) => r.domain === own);
    // a route given for natd's domain itself stays as given (local names are answered before any route anyway)
    if (i < 0) routes.push({ domain: own, kind: 'default', servers: [], group: undefined });
    for (const r of routes) if (r.kind === 'default' && r.domain.endsWith(`.${own}`)) r.kind = 'local';
  }
  const forwarded = routes.filter((r) => r.kind === 'forward');
  const groups = upstream.setRouteGroups(forwarded.map((r) => ({ name: r.domain, servers: r.servers })));
  forwarded.forEach((r, i) => (r.group = groups[i]));
  return new DomainRouteTable(routes);
}

/** What `natd status` shows: the configured routes (natd's own domain left out). */
export function describeRoutes(table: RouteTable, config: Config): ReturnType<RouteTable['describe']> {
  const configured = new Set(config.domainRoutes.map((r) => r.domain));
  return table.describe().filter((r) => configured.has(r.domain) || r.domain === '(unqualified)');
}
