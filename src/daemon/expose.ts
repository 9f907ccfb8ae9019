/**
 * Issue 17: the name router as a daemon service. It owns the routes in effect (configured + added at runtime, the
 * latter persisted in `expose.json` in the state dir), answers the engine's per-connection lookup
 * (router/name-router.ts) from them, keeps the routed ports open in natd's table (a set, changed by elements) and
 * reports per-route counts for `natd expose list`, status and metrics.
 *
 * The lookup resolves a route's guest at connection time through natd's guest names (reservations, lease
 * hostnames), so a guest whose lease moves is followed. Whatever a name resolves to, the router only ever connects
 * to a guest: an address inside the served subnet that is not the gateway, network or broadcast address (a hostile
 * guest could otherwise publish a name pointing at a host-only service). Refused targets are counted and logged
 * (rate-limited).
 *
 * Changes (add, remove, reload) are serial. A route change swaps the table: new connections see it, open ones go
 * on. Order of a runtime add: validate everything (syntax, duplicates, subnet, conflicts with port forwards), open
 * new ports (nft set elements, then the listener), persist, then swap the table; a failure undoes the steps made.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { exposeSubnetProblems, targetProblem } from '../config/expose.js';
import type { Served } from '../config/served-subnet.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatIpv4 } from '../net/ipv4.js';
import type { ForwardEntry } from '../nft/forward-set.js';
import type { Firewall } from '../nft/firewall.js';
import { specListFile, type SpecListStore } from '../state/spec-list-file.js';
import { formatGuest, type ExposeGuest } from '../router/expose-spec.js';
import { exposeEntry, forwardConflicts, RouteTable, type ExposeEntry } from '../router/route-table.js';
import { NameRouter, type RouterStats, type RouteTarget } from '../router/name-router.js';

export const RUNTIME_EXPOSE_FILE = 'expose.json';

/** Where the runtime routes survive a restart: spec texts, as forwards.json holds forwards. */
export type ExposeStore = SpecListStore;

export function exposeFile(stateDir: string): ExposeStore {
  return specListFile(path.join(stateDir, RUNTIME_EXPOSE_FILE), 'expose specs');
}

/** What the service needs of the engine (NameRouter); tests may hand in another. */
export interface RouterEngine {
  listen(ports: { port: number; address?: string }[]): Promise<void>;
  setLimits(limits: Config['expose']['limits']): void;
  stats(): RouterStats;
  close(): Promise<void>;
}

export interface ExposeServiceOptions {
  config: Config;
  served: Served;
  logger: Logger;
  /** a guest name (reservation or lease hostname) → its address now */
  resolveGuest(name: string): number | undefined;
  store?: ExposeStore;
  now?: () => number;
  /** default: the real NameRouter */
  engine?: (lookup: ConstructorParameters<typeof NameRouter>[0]['lookup']) => RouterEngine;
}

/** One `natd expose list` row: one route (a spec without a listen port is two rows, 80 and 443). */
export interface ExposeRow {
  spec: string;
  source: 'config' | 'runtime';
  name: string;
  port: number;
  guest: string;
  guestPort: number;
  proxyProtocol?: 'v1' | 'v2';
  /** the guest's address now; undefined when the name does not resolve (or to no guest: see problem) */
  target?: string;
  problem?: string;
  active: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
}

export interface ExposeStatus {
  routes: number;
  ports: readonly number[];
  listen: string;
  active: number;
  accepted: number;
  routed: number;
  unknownNames: number;
  refusedByLimit: number;
  headTimeouts: number;
  idleTimeouts: number;
  invalid: number;
  /** lookups whose guest did not resolve, or resolved to no guest of the served subnet */
  unresolved: number;
  targetsRefused: number;
}

const LOG_EVERY_MS = 60_000;
/**
 * How long open routed connections get at stop to finish after their FINs before they are cut: natd promises to be
 * gone within 1.8 s (cli.ts), and the closes after the router's (nft table, DHCP, DNS, lease store) need the rest. A
 * client that never reads would otherwise hold the stop past that promise.
 */
const ROUTER_CLOSE_GRACE_MS = 800;

export class ExposeService {
  private config: Config;
  private table: RouteTable;
  private runtime: ExposeEntry[] = [];
  private readonly store: ExposeStore;
  private readonly engine: RouterEngine;
  private firewall: Firewall | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lastLog = new Map<string, number>();
  private readonly now: () => number;
  private unresolved = 0;
  private targetsRefused = 0;
  private closed = false;

  constructor(private readonly opts: ExposeServiceOptions) {
    this.config = opts.config;
    this.table = new RouteTable(opts.config.expose.entries);
    this.store = opts.store ?? exposeFile(opts.config.stateDir);
    this.now = opts.now ?? Date.now;
    const lookup = this.lookup;
    this.engine = opts.engine
      ? opts.engine(lookup)
      : new NameRouter({ logger: opts.logger, limits: { ...opts.config.expose.limits }, lookup, closeGraceMs: ROUTER_CLOSE_GRACE_MS });
  }

  /** The routed ports now (the configured ones until start() loaded the runtime routes). */
  get ports(): readonly number[] {
    return this.table.ports;
  }

  /**
   * After the firewall (which opened the configured routes' ports): loads the runtime routes, leaving out (logged)
   * any that no longer fits (syntax, duplicate, not a guest, a port forward on its port), opens their ports and
   * listens.
   */
  async start(firewall: Firewall | undefined): Promise<void> {
    this.firewall = firewall;
    for (const text of await this.store.load()) {
      try {
        const entry = exposeEntry(text, 'runtime');
        this.checkSubnet(entry);
        const next = this.table.with(entry);
        const conflicts = this.forwardProblems(next.ports, this.config);
        if (conflicts.length) throw new NatdError(ErrorCodes.CONFIG, conflicts.join('; '));
        this.table = next;
        this.runtime.push(entry);
      } catch (err) {
        this.opts.logger.warn('runtime expose route left out', { expose: text, error: (err as Error).message });
      }
    }
    await this.firewall?.setRoutedPorts(this.table.ports);
    await this.engine.listen(this.listenList(this.table.ports, this.config));
    if (this.table.entries.length) this.opts.logger.info('name router listening', { ports: this.table.ports.join(','), routes: this.table.entries.length });
  }

  /** The firewall's check (FirewallOptions.expose): forwards that would take a routed port under `config`. */
  forwardConflicts = (forwards: readonly ForwardEntry[], config: Config): string[] => {
    const ports = new Set([...config.expose.entries, ...this.runtime].flatMap((e) => e.routes.map((r) => r.listenPort)));
    return forwardConflicts([...ports], config.expose.listen, forwards);
  };

  private forwardProblems(ports: readonly number[], config: Config): string[] {
    return forwardConflicts(ports, config.expose.listen, this.firewall?.forwardEntries() ?? []);
  }

  private listenList(ports: readonly number[], config: Config): { port: number; address?: string }[] {
    const listen = config.expose.listen;
    return ports.map((port) => (listen === undefined ? { port } : { port, address: formatIpv4(listen) }));
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private checkSubnet(entry: ExposeEntry): void {
    const problems = exposeSubnetProblems({ entries: [entry] }, this.opts.served);
    if (problems.length) throw new NatdError(ErrorCodes.CONFIG, problems[0]!.replace(/^expose\.0: /, 'expose: '));
  }

  // ---- the engine's lookup (per connection; synchronous, reads the current table)

  private readonly lookup = (name: string | undefined, port: number, protocol: 'tls' | 'http'): RouteTarget | undefined => {
    if (name === undefined) {
      const fallback = this.config.expose.fallback;
      if (protocol !== 'tls' || !fallback) return undefined;
      return this.target(fallback.guest, fallback.guestPort ?? port, undefined, `(no name):${port}`);
    }
    const route = this.table.match(name, port);
    if (!route) return undefined; // the engine counts and logs unknown names
    return this.target(route.guest, route.guestPort, route.proxyProtocol, `${route.name}:${route.listenPort}`);
  };

  private resolve(guest: ExposeGuest): { address?: number; problem?: string; refused?: boolean } {
    const address = 'address' in guest ? guest.address : this.opts.resolveGuest(guest.name);
    if (address === undefined) return { problem: `guest ${formatGuest(guest)} has no address (no reservation or lease by that name)` };
    const problem = targetProblem(address, this.opts.served);
    return problem ? { problem: `guest ${formatGuest(guest)} resolves to ${problem}`, refused: true } : { address };
  }

  private target(guest: ExposeGuest, port: number, proxyProtocol: 'v1' | 'v2' | undefined, route: string): RouteTarget | undefined {
    const { address, problem, refused } = this.resolve(guest);
    if (address === undefined) {
      if (refused) this.targetsRefused++;
      else this.unresolved++;
      this.logOnce(route, 'name route not followed', { route, error: problem });
      return undefined;
    }
    return { address: formatIpv4(address), port, route, ...(proxyProtocol ? { proxyProtocol } : {}) };
  }

  private logOnce(key: string, message: string, fields: Record<string, unknown>): void {
    const now = this.now();
    if ((this.lastLog.get(key) ?? -Infinity) + LOG_EVERY_MS > now) return;
    if (this.lastLog.size >= 1024) this.lastLog.clear();
    this.lastLog.set(key, now);
    this.opts.logger.warn(message, fields);
  }

  // ---- runtime changes

  add(text: string): Promise<ExposeRow[]> {
    return this.serial(async () => {
      const entry = exposeEntry(text, 'runtime');
      this.checkSubnet(entry);
      const next = this.table.with(entry); // duplicates throw
      const conflicts = this.forwardProblems(next.ports, this.config);
      if (conflicts.length) throw new NatdError(ErrorCodes.CONFIG, conflicts.join('; '));
      const runtime = [...this.runtime, entry];
      await this.changePorts(this.table.ports, next.ports, () => this.store.save(runtime.map((e) => e.text)));
      this.table = next;
      this.runtime = runtime;
      this.opts.logger.info('name route added', { expose: entry.text });
      return this.rowsOf([entry]);
    });
  }

  /** `SPEC` removes that runtime route; `NAME` every runtime route of the name. */
  remove(textOrName: string): Promise<ExposeRow[]> {
    return this.serial(async () => {
      const text = textOrName.trim();
      const matches = text.includes('=')
        ? ((canonical) => (e: ExposeEntry) => e.text === canonical)(exposeEntry(text, 'runtime').text)
        : ((name) => (e: ExposeEntry) => e.spec.name === name)(text.toLowerCase().replace(/\.$/, ''));
      const gone = this.runtime.filter(matches);
      if (!gone.length) {
        throw new NatdError(ErrorCodes.CONFIG, this.config.expose.entries.some(matches)
          ? `expose ${text} comes from the configuration; remove it there and reload`
          : `no runtime expose route ${text}`);
      }
      const runtime = this.runtime.filter((e) => !gone.includes(e));
      const rows = this.rowsOf(gone);
      const next = new RouteTable([...this.config.expose.entries, ...runtime]);
      // the table first: new connections stop matching; open ones continue
      const before = this.table;
      this.table = next;
      try {
        await this.changePorts(before.ports, next.ports, () => this.store.save(runtime.map((e) => e.text)));
      } catch (err) {
        this.table = before;
        throw err;
      }
      this.runtime = runtime;
      this.opts.logger.info('name route removed', { expose: text, routes: gone.length });
      return rows;
    });
  }

  /**
   * New ports: nft set elements, then the listeners; removed ports: listeners closed (gracefully), then the
   * elements. `persist` runs last; a failure undoes what changed.
   */
  private async changePorts(before: readonly number[], after: readonly number[], persist: () => Promise<void>): Promise<void> {
    const same = before.length === after.length && before.every((p, i) => p === after[i]);
    if (same) return persist();
    const union = [...new Set([...before, ...after])].sort((a, b) => a - b);
    await this.firewall?.setRoutedPorts(union);
    try {
      await this.engine.listen(this.listenList(after, this.config));
      await persist();
    } catch (err) {
      await this.engine.listen(this.listenList(before, this.config)).catch(() => undefined);
      await this.firewall?.setRoutedPorts(before).catch(() => undefined);
      throw err;
    }
    await this.firewall?.setRoutedPorts(after);
  }

  /** `natd reload`: the configured routes, listen address, fallback and limits; runtime routes stay. */
  reload(config: Config): Promise<void> {
    return this.serial(async () => {
      const runtime: ExposeEntry[] = [];
      let next = new RouteTable(config.expose.entries);
      for (const entry of this.runtime) {
        try {
          next = next.with(entry);
          runtime.push(entry);
        } catch (err) {
          this.opts.logger.warn('runtime expose route left out after reload', { expose: entry.text, error: (err as Error).message });
        }
      }
      const conflicts = forwardConflicts(next.ports, config.expose.listen, this.firewall?.forwardEntries() ?? []);
      if (conflicts.length) throw new NatdError(ErrorCodes.CONFIG, conflicts.join('; '));
      const before = this.table;
      const previous = this.config;
      this.config = config;
      this.table = next;
      try {
        await this.firewall?.setRoutedPorts(next.ports);
        await this.engine.listen(this.listenList(next.ports, config));
      } catch (err) {
        this.config = previous;
        this.table = before;
        throw err;
      }
      this.engine.setLimits({ ...config.expose.limits });
      this.runtime = runtime;
    });
  }

  // ---- reports

  private rowsOf(entries: readonly ExposeEntry[]): ExposeRow[] {
    const routes = this.engine.stats().routes;
    return entries.flatMap((e) => e.routes.map((r) => {
      const key = `${r.name}:${r.listenPort}`;
      const s = routes[key] ?? { active: 0, total: 0, bytesIn: 0, bytesOut: 0 };
      const { address, problem } = this.resolve(r.guest);
      return {
        spec: e.text, source: e.source, name: r.name, port: r.listenPort, guest: formatGuest(r.guest), guestPort: r.guestPort,
        ...(r.proxyProtocol ? { proxyProtocol: r.proxyProtocol } : {}),
        ...(address !== undefined ? { target: formatIpv4(address) } : {}), ...(problem ? { problem } : {}),
        active: s.active, total: s.total, bytesIn: s.bytesIn, bytesOut: s.bytesOut,
      };
    }));
  }

  rows(): ExposeRow[] {
    return this.rowsOf(this.table.entries);
  }

  status(): ExposeStatus {
    const s = this.engine.stats();
    return {
      routes: this.table.entries.reduce((n, e) => n + e.routes.length, 0),
      ports: this.table.ports,
      listen: this.config.expose.listen === undefined ? '*' : formatIpv4(this.config.expose.listen),
      active: s.active, accepted: s.accepted, routed: s.routed, unknownNames: s.unknownNames, refusedByLimit: s.refusedByLimit,
      headTimeouts: s.headTimeouts, idleTimeouts: s.idleTimeouts, invalid: s.invalid + s.tooLarge,
      unresolved: this.unresolved, targetsRefused: this.targetsRefused,
    };
  }

  stats(): RouterStats {
    return this.engine.stats();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.engine.close();
  }
}
