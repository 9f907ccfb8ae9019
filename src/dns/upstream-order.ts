/**
 * Which upstream a query asks first (issue 15): dnsmasq's two modes.
 *
 * --strict-order: the configured order, always (failover to the next on a time-out).
 * default, "fastest server": as dnsmasq's forward.c does it, the server that answered last is asked first and the
 * others follow in configured order; every RACE_EVERY_QUERIES queries, or when RACE_EVERY_MS have passed, one query
 * goes to every server of the group at once and whichever answers first is asked first from then on. A server that
 * stops answering is skipped by the failover and the back-off (upstream-health.ts) as in strict order. The cost: one
 * query in 50 (or one per 10 s) is sent N times.
 *
 * A group is the server list of one route: the default upstreams, or one --server=/domain/ route.
 */
import type { ServerState } from './upstream.js';

export const RACE_EVERY_QUERIES = 50;
export const RACE_EVERY_MS = 10_000;

export class UpstreamGroup {
  /** configured order */
  servers: ServerState[] = [];
  /** the preferred server first, then the rest in configured order (=== servers while the first one is preferred) */
  ordered: ServerState[] = [];
  queriesSinceRace = 0;
  /** performance.now() of the last race; the first one is due RACE_EVERY_MS after the group was made */
  raceAt = performance.now();

  constructor(
    /** 'default', or the route's domain (for logs) */
    readonly name: string,
    servers: ServerState[],
  ) {
    this.setServers(servers);
  }

  setServers(servers: ServerState[]): void {
    const preferred = this.ordered[0];
    this.servers = servers;
    this.ordered = servers;
    if (preferred && servers.includes(preferred)) prefer(this, preferred);
  }
}

/** The order for one query, and whether it is a race (sent to every server at once). */
export function planOrder(group: UpstreamGroup, strict: boolean, now: number): { order: ServerState[]; race: boolean } {
  if (strict || group.servers.length < 2) return { order: group.servers, race: false };
  const race = ++group.queriesSinceRace >= RACE_EVERY_QUERIES || now - group.raceAt >= RACE_EVERY_MS;
  if (race) {
    group.queriesSinceRace = 0;
    group.raceAt = now;
  }
  return { order: group.ordered, race };
}

/** A usable answer came from `server`: it is asked first from now on (dnsmasq's last_server). */
export function recordAnswer(group: UpstreamGroup, server: ServerState): void {
  if (group.ordered[0] !== server && group.servers.includes(server)) prefer(group, server);
}

function prefer(group: UpstreamGroup, server: ServerState): void {
  group.ordered = group.servers[0] === server ? group.servers : [server, ...group.servers.filter((s) => s !== server)];
}
