/**
 * Issue 17: the name router's settings (`expose`, `exposeListen`, `exposeFallback`, the limits), parsed after the
 * schema passed, each problem pushed with its field named. The spec grammar is router/expose-spec.ts.
 */
import { z } from 'zod/v3'; // zod's v3 API, for memory (issue 7): config/values.ts says why
import { formatIpv4, parseIpv4, subnetContains } from '../net/ipv4.js';
import { parsableForwards } from '../nft/forward-spec.js';
import { parseExposeFallback, type ExposeFallback, type ExposeGuest } from '../router/expose-spec.js';
import { forwardConflicts, parseExposeList, type ExposeEntry } from '../router/route-table.js';
import type { Served } from './served-subnet.js';
import { hint } from './values.js';

/** Defaults: bounded so one host cannot be made to hold unbounded sockets; a client (guest) gets a share of them. */
export const EXPOSE_DEFAULTS = {
  maxConnections: 4096,
  maxConnectionsPerClient: 256,
  headTimeoutMs: 5_000,
  idleTimeoutMs: 300_000,
  /** a ClientHello with many extensions (post-quantum key shares) is ~2 KB; HTTP heads rarely reach 8 KB */
  maxHeadBytes: 16 * 1024,
  connectTimeoutMs: 5_000,
} as const;

const MS_HINT = 'expected a duration like 5s, 500ms, 5m (a bare number is seconds)';
/** A duration in ms: 500ms, 5s, 5m, 1h, or a bare number of seconds. */
export const durationMs = z.union([z.number().positive(), z.string()], hint(MS_HINT)).transform((v, ctx) => {
  if (typeof v === 'number') return Math.round(v * 1000);
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) {
    ctx.addIssue({ code: 'custom', message: MS_HINT });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']);
});

/** The schema's fields (merged into config.ts's settings schema). */
export const exposeSchemaFields = {
  // a default is parsed as an input is (zod 3): hence the durations' defaults as text with their unit
  expose: z.array(z.string()).default([]),
  exposeListen: z.string().refine((s) => parseIpv4(s) !== undefined, { message: 'not an IPv4 address' }).optional(),
  exposeFallback: z.string().optional(),
  exposeMaxConns: z.number(hint('expected a number from 1 to 1000000')).int().min(1).max(1_000_000).default(EXPOSE_DEFAULTS.maxConnections),
  exposeMaxConnsPerClient: z.number(hint('expected a number from 1 to 1000000')).int().min(1).max(1_000_000).default(EXPOSE_DEFAULTS.maxConnectionsPerClient),
  exposeHeadTimeout: durationMs.pipe(z.number().min(10, 'at least 10ms').max(300_000, 'at most 5m')).default(`${EXPOSE_DEFAULTS.headTimeoutMs}ms`),
  exposeIdleTimeout: durationMs.pipe(z.number().min(100, 'at least 100ms').max(86_400_000, 'at most 24h')).default(`${EXPOSE_DEFAULTS.idleTimeoutMs}ms`),
};

export interface ExposeSettings {
  expose: string[];
  exposeListen?: string | undefined;
  exposeFallback?: string | undefined;
  exposeMaxConns: number;
  exposeMaxConnsPerClient: number;
  exposeHeadTimeout: number;
  exposeIdleTimeout: number;
  forwards: string[];
}

export interface ExposeLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  readonly headTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeadBytes: number;
  readonly connectTimeoutMs: number;
}

export interface ExposeConfig {
  /** the configured routes (runtime ones are in the state dir) */
  readonly entries: readonly ExposeEntry[];
  /** the one host address the router listens on; undefined = every address */
  readonly listen: number | undefined;
  readonly fallback: ExposeFallback | undefined;
  readonly limits: ExposeLimits;
}

export function parseExposeSettings(s: ExposeSettings, served: Served | undefined, problems: string[]): ExposeConfig {
  const entries = parseExposeList(s.expose, 'expose', problems);
  let fallback: ExposeFallback | undefined;
  if (s.exposeFallback !== undefined) {
    try {
      fallback = parseExposeFallback(s.exposeFallback);
    } catch (err) {
      problems.push(`exposeFallback: ${(err as Error).message}`);
    }
  }
  const listen = s.exposeListen === undefined ? undefined : parseIpv4(s.exposeListen);
  const ports = [...new Set(entries.flatMap((e) => e.routes.map((r) => r.listenPort)))];
  const forwards = parsableForwards(s.forwards); // the others are reported under forwards
  problems.push(...forwardConflicts(ports, listen, forwards).map((p) => `forwards/expose: ${p}`));
  if (served) problems.push(...exposeSubnetProblems({ entries, fallback }, served));
  return Object.freeze({
    entries: Object.freeze(entries),
    listen,
    fallback,
    limits: Object.freeze({
      maxConnections: s.exposeMaxConns,
      maxConnectionsPerClient: Math.min(s.exposeMaxConnsPerClient, s.exposeMaxConns),
      headTimeoutMs: s.exposeHeadTimeout,
      idleTimeoutMs: s.exposeIdleTimeout,
      maxHeadBytes: EXPOSE_DEFAULTS.maxHeadBytes,
      connectTimeoutMs: EXPOSE_DEFAULTS.connectTimeoutMs,
    }),
  });
}

/** Why `address` cannot be a route's target: the router only ever connects to guests in the served subnet. */
export function targetProblem(address: number, served: Served): string | undefined {
  const { subnet, gateway } = served;
  if (!subnetContains(subnet, address)) return `${formatIpv4(address)} is not inside the served subnet ${formatIpv4(subnet.network)}/${subnet.prefix}`;
  if (address === gateway) return `${formatIpv4(address)} is natd's own gateway address, not a guest`;
  if (address === subnet.network || address === subnet.broadcast) return `${formatIpv4(address)} is the subnet's network or broadcast address`;
  return undefined;
}

/** Address guests of the routes and the fallback against the served subnet (the daemon checks names per connection). */
export function exposeSubnetProblems(c: { entries?: readonly ExposeEntry[] | undefined; fallback?: ExposeFallback | undefined }, served: Served): string[] {
  const problems: string[] = [];
  const check = (guest: ExposeGuest, field: string, text: string) => {
    if (!('address' in guest)) return;
    const why = targetProblem(guest.address, served);
    if (why) problems.push(`${field}: "${text}": guest ${why}`);
  };
  (c.entries ?? []).forEach((e, i) => check(e.spec.guest, `expose.${i}`, e.text));
  if (c.fallback) check(c.fallback.guest, 'exposeFallback', 'fallback');
  return problems;
}
