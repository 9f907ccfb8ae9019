/**
 * Upstream server health for the upstream client: counts per server, and back-off. A server that times out
 * `failuresBeforeBackoff` times in a row is skipped for a period that doubles on each further failure (up to
 * `backoffMaxMs`); when the period ends it gets a copy of one real query alongside the healthy servers (a probe that
 * costs the client no latency), and any reply from it clears its record.
 */
import type { Logger } from '../log.js';

/** A server's record. Only UpstreamHealth changes the back-off fields; the client counts `sent`. */
export interface ServerHealth {
  readonly label: string;
  sent: number;
  received: number;
  timeouts: number;
  latencyTotalMs: number;
  consecutiveFailures: number;
  backoffMs: number;
  /** back-off clock time before which the server is not used (0 = healthy) */
  skipUntil: number;
}

export interface UpstreamServerStats {
  server: string;
  sent: number;
  received: number;
  timeouts: number;
  latencyMsAvg: number;
  consecutiveFailures: number;
  /** ms until the server is tried again (0 = in use) */
  backoffRemainingMs: number;
}

export interface BackoffOptions {
  /** consecutive time-outs before a server is backed off */
  failuresBeforeBackoff: number;
  /** first back-off period, doubled per further failure up to backoffMaxMs */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** the back-off clock */
  now: () => number;
  logger: Logger;
}

/** The servers to ask for one query: `order` one at a time, `probes` (back-off over) at once alongside. */
export interface ServerPlan<S> {
  order: S[];
  probes: S[];
}

export const newServerHealth = (label: string): ServerHealth => ({
  label, sent: 0, received: 0, timeouts: 0, latencyTotalMs: 0, consecutiveFailures: 0, backoffMs: 0, skipUntil: 0,
});

export class UpstreamHealth {
  constructor(private readonly opts: BackoffOptions) {}

  /**
   * Healthy servers in configured order; backed-off servers whose period is over are probed alongside (one probe per
   * period). When every server is backed off, all are tried in configured order (there is nothing better to do).
   * Only needed when anyBackedOff(servers): otherwise the plan is `servers` in order, no probes (and nothing allocated).
   */
  plan<S extends ServerHealth>(servers: S[]): ServerPlan<S> {
    const now = this.opts.now();
    const order: S[] = [];
    const probes: S[] = [];
    for (const s of servers) {
      if (s.skipUntil === 0) order.push(s);
      else if (s.skipUntil <= now) {
        probes.push(s);
        s.skipUntil = now + s.backoffMs; // one probe per period
      }
    }
    if (order.length === 0) return { order: [...servers], probes: [] };
    return { order, probes };
  }

  recordReply(server: ServerHealth, latencyMs: number): void {
    server.received++;
    server.latencyTotalMs += latencyMs;
    server.consecutiveFailures = 0;
    server.backoffMs = 0;
    server.skipUntil = 0;
  }

  recordTimeout(server: ServerHealth): void {
    const { failuresBeforeBackoff, backoffBaseMs, backoffMaxMs } = this.opts;
    server.timeouts++;
    server.consecutiveFailures++;
    if (server.consecutiveFailures < failuresBeforeBackoff) return;
    server.backoffMs = server.backoffMs === 0 ? backoffBaseMs : Math.min(server.backoffMs * 2, backoffMaxMs);
    server.skipUntil = this.opts.now() + server.backoffMs;
    this.opts.logger.warnLimited(`dns-upstream-backoff:${server.label}`, 'upstream not answering, backing off', {
      server: server.label, failures: server.consecutiveFailures, backoffMs: server.backoffMs,
    });
  }

  stats(server: ServerHealth, now = this.opts.now()): UpstreamServerStats {
    return {
      server: server.label,
      sent: server.sent,
      received: server.received,
      timeouts: server.timeouts,
      latencyMsAvg: server.received === 0 ? 0 : server.latencyTotalMs / server.received,
      consecutiveFailures: server.consecutiveFailures,
      backoffRemainingMs: Math.max(0, server.skipUntil - now),
    };
  }
}

export function anyBackedOff(servers: readonly ServerHealth[]): boolean {
  for (const s of servers) if (s.skipUntil !== 0) return true;
  return false;
}
