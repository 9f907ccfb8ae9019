/**
 * Composition root: builds every component from the frozen Config and the injected system (system.ts), starts them
 * in the order below and closes them in reverse. It only wires: the services live in their own modules
 * (reservations.ts, guest-names.ts, record-book.ts, lease-events.ts, lease-script.ts, ddns.ts, tftp.ts,
 * control-handlers.ts, metrics-http.ts, upstreams.ts, dns-routes.ts, dns-listeners.ts, status.ts; ipv6/service.ts).
 *
 * Start order (each step registers its close before the next one starts):
 *   1. check the DHCP range against the subnet natd will serve (nothing on the system has changed yet)
 *   2. bridge (MTU), then sysctls; IPv6 address, forwarding and router advertisements  (with --subnet6/--ipv6)
 *   3. state: lease journal (closed last), reservations, custom DNS records
 *   4. conflict probe (ARP socket on the bridge), DHCP core with the journal's leases; lease events and the
 *      dhcp-script (which hears the journal's leases as 'old'); the guest names that follow leases and
 *      reservations; DDNS publisher and its resync (with --ddns-server, issue 15)
 *   5. DNS: upstream client, UDP and TCP sockets, server, resolv.conf watch        (with DNS on)
 *   6. DHCP socket and transport, expiry sweep; DHCPv6 (with IPv6); TFTP server  (TFTP: with --enable-tftp)
 *   7. nftables table                                                            (with the firewall on)
 *      then the name router on its routed ports (issue 17; its routes are loaded before the table, which opens them)
 *   8. control socket, metrics listener                                          (metrics: when configured)
 *   9. systemd-resolved registration                                             (with DNS on, when it runs)
 *  then READY=1. Close runs the registered closes in reverse (STOPPING=1 first); each is idempotent, and one that
 *  fails is logged and the rest still close. A start that fails closes what it had started.
 */
import { mkdirSync } from 'node:fs';
import type { Config, MetricsListen } from '../config.js';
import { defaultDhcpRange, describeRange } from '../config.js';
import { checkServedSubnet, configError, subnetProblems } from '../config/served-subnet.js';
import { DEFAULT_SUBNET } from '../defaults.js';
import { ControlServer } from '../control/server.js';
import { LeaseStore, type LeaseStoreStats } from '../dhcp/lease-store.js';
import { ConflictDetector } from '../dhcp/probe.js';
import { DhcpServerCore } from '../dhcp/server-core.js';
import { DhcpTransport } from '../dhcp/transport.js';
import type { Reservation } from '../dhcp/types.js';
import { DnsCache } from '../dns/cache.js';
import { startDnsServer } from './dns-server-start.js';
import { UpstreamClient } from '../dns/upstream.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import { formatIpv4, formatSubnet } from '../net/ipv4.js';
import { Firewall } from '../nft/firewall.js';
import { formatPrometheus } from './metrics.js';
import type { TftpServer } from '../tftp/server.js';
import { controlHandlers } from './control-handlers.js';
import { GuestNames } from './guest-names.js';
import { startMetricsListener } from './metrics-http.js';
import { loadReservations, ReservationBook } from './reservations.js';
import { ShutdownStack } from './shutdown.js';
import { metricsInput, statusOf, type DnsParts, type Observed, type StatusReport } from './status.js';
import { validatedHandlers } from '../control/validate.js';
import { realSystem, type DaemonSystem } from './system.js';
import { followResolvConf, upstreamsFrom } from './upstreams.js';
import { LeaseEvents } from './lease-events.js';
import { LeaseScriptSlot } from './lease-script.js';
// issue 15: custom DNS records
import { RecordBook } from './record-book.js';
// issue 15: split DNS, --log-queries
import { QueryLog } from '../dns/query-log.js';
import { buildRouteTable, describeRoutes } from './dns-routes.js';
import { startDnsListeners } from './dns-listeners.js';
// issue 14: IPv6 for the guests
import { guestIpv6Resolver } from './guest-ipv6.js'; // issue 14: guest name → IPv6 address for v6 forwards
import type { NameResolver6 } from '../nft/forward6.js';
import { formatIpv6 } from '../ipv6/address.js';
// issue 17: the name router for shared ports 80/443
import { ExposeService } from './expose.js';
// issue 14: DHCPv6
import { dhcp6Plan, dhcp6Reservations, startDhcp6, type Dhcp6Service } from './dhcp6.js';
import type { Dhcp6Reservation } from '../dhcp6/types.js';
import { Dhcp6Names } from './dhcp6-names.js'; // issue 14: DHCPv6 leases → AAAA/PTR and forwards
import { forwards6Refresher, type Forwards6Refresher } from './forwards6.js';
import { checkNewReservation6, loadReservations6, withHostReservations6 } from './reservations6.js'; // issue 14: v6 in the hostsfile and at runtime
import type { Ipv6Served } from '../ipv6/settings.js';
import { DNS_CLASS_IN, DnsType } from '../dns/types.js';
// issue 7 (memory): the code of features that are off is not loaded (a loaded module stays in the heap for the
// process's life): TFTP, DDNS, the IPv6 service and DNS on the IPv6 gateway are imported when configured.
import type { DdnsService } from './ddns.js';
import type { Ipv6Service } from '../ipv6/service.js';

export type { ReservationSource, SourcedReservation } from './reservations.js';
export type { BridgeSetup, DaemonSockets, DaemonSystem } from './system.js';

const EXPIRY_SWEEP_MS = 30_000;

export interface DaemonDeps extends Partial<Omit<DaemonSystem, 'now'>> {
  logger: Logger;
  now?: () => number;
  /** re-reads flags + config file for `natd reload` (SIGHUP passes the new config itself) */
  loadConfig?: () => Config;
}

export interface Daemon {
  start(): Promise<void>;
  /** Re-reads config-derived inputs (hostsfile, resolv.conf, forwards) and re-applies the ruleset. */
  reload(config?: Config): Promise<void>;
  close(): Promise<void>;
  status(): StatusReport;
}

/** The started components; `config` changes on reload, `control` is set once its socket listens. */
interface Running {
  config: Config;
  bridge: BridgeInfo;
  core: DhcpServerCore;
  names: GuestNames | undefined;
  reservations: ReservationBook;
  /** issue 15: custom DNS records (with DNS on) */
  records: RecordBook | undefined;
  dns: DnsParts | undefined;
  dhcp: DhcpTransport;
  firewall: Firewall | undefined;
  control: ControlServer | undefined;
  events: LeaseEvents;
  script: LeaseScriptSlot;
  kernelDrops: () => Record<string, number>;
  /** issue 15: lease names published to a DNS server (--ddns-server) */
  ddns: DdnsService | undefined;
  /** issue 16: with --enable-tftp */
  tftp: TftpServer | undefined;
  /** ms since the epoch (status: uptime) */
  startedAt: number;
  /** issue 14: IPv6 on the bridge (with --subnet6 / --ipv6 auto) */
  ipv6: Ipv6Service | undefined;
  /** issue 17: the name router (always there, so routes can be added at runtime; listens only on routed ports) */
  expose: ExposeService;
  /** issue 14: DHCPv6 on the bridge (with IPv6) */
  dhcp6: Dhcp6Service | undefined;
  /** issue 14: DHCPv6 leases' names (with DHCPv6) */
  names6: Dhcp6Names | undefined;
  /** issue 14: IPv6 forwards following guest addresses (with IPv6 and the firewall) */
  forwards6?: Forwards6Refresher | undefined;
  /** issue 18: the lease journal's counters (group commits, fdatasync count and time) for status */
  journal: () => LeaseStoreStats;
}

interface Context {
  sys: DaemonSystem;
  logger: Logger;
  stack: ShutdownStack;
  loadConfig: (() => Config) | undefined;
}

export function buildDaemon(initialConfig: Config, deps: DaemonDeps): Daemon {
  const { logger, loadConfig, now, ...overrides } = deps;
  const sys: DaemonSystem = { ...realSystem(), ...overrides, ...(now ? { now } : {}) };
  const ctx: Context = { sys, logger, stack: new ShutdownStack(logger), loadConfig };
  let running: Running | undefined;
  let closing: Promise<void> | undefined;

  async function start(): Promise<void> {
    try {
      running = await startComponents(initialConfig, ctx);
      sys.notify('READY=1\nSTATUS=serving');
      logger.info('natd ready', { bridge: running.config.bridge, subnet: formatSubnet(running.bridge.subnet), gateway: formatIpv4(running.bridge.gateway) });
    } catch (err) {
      await close();
      throw err;
    }
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      sys.notify('STOPPING=1');
      await ctx.stack.closeAll();
    })();
    return closing;
  }

  return {
    start,
    close,
    reload: (config) => (running ? reloadComponents(running, ctx, config) : Promise.resolve()),
    status: (): StatusReport => (running ? statusOf(observe(running, sys.now())) : { bridge: initialConfig.bridge, pid: process.pid, state: 'starting' }),
  };
}

/** Steps 1-9 of the header, in order; returns the running components. */
async function startComponents(config: Config, ctx: Context): Promise<Running> {
  const startedAt = ctx.sys.now();
  const range = await plannedRange(config, ctx.sys);
  const bridge = await setUpBridge(config, ctx);
  const ipv6 = await setUpIpv6(config, bridge, ctx); // issue 14
  const state = await startState(config, bridge, range, ctx);
  const dns = config.dns && state.names ? await startDns(config, bridge, state.names, ctx, state.records, ipv6) : undefined;
  const dhcp = await startDhcp(config, state, ctx);
  const reservations6 = ipv6 && dhcp6Plan(config) ? allReservations6(config, ipv6.served, state.reservations, ctx.logger) : []; // issue 14
  const names6 = ipv6 && dhcp6Plan(config) ? dhcp6NamesFor(state, dns, reservations6, ctx.logger) : undefined; // issue 14
  const dhcp6 = ipv6 ? await startDhcp6Step(config, ipv6, bridge, state, ctx, names6) : undefined; // issue 14
  const tftp = config.tftp ? await (await import('./tftp.js')).startTftp(config.bridge, bridge, config.tftp, ctx) : undefined; // issue 7: loaded when on
  const expose = await loadExpose(config, bridge, state, ctx); // issue 17: configured routes first, the firewall opens their ports
  const firewall = config.firewall ? await startFirewall(config, bridge, state.reservations, ctx, ipv6, expose, resolver6(config, names6, state.names)) : undefined;
  await startExpose(expose, firewall, ctx);
  const running: Running = {
    config, bridge, core: state.core, names: state.names, reservations: state.reservations, records: state.records, dns, dhcp, firewall, control: undefined,
    events: state.events, script: state.script, ddns: state.ddns, kernelDrops: () => ctx.sys.sockets.kernelDrops(), tftp, startedAt, ipv6, expose, dhcp6, names6,
    journal: () => state.store.stats(), // issue 18
  };
  if (ipv6 && firewall) running.forwards6 = followGuests6(running, firewall, ctx); // issue 14: v6 forwards follow guest addresses
  if (ipv6 && dhcp6) reservations6Follow(running, ipv6, dhcp6, reservations6, ctx.logger); // issue 14: hostsfile/runtime v6 reservations
  running.control = await startControl(running, ctx);
  if (config.metricsListen) await startMetrics(config.metricsListen, running, ctx);
  if (config.dns) await registerDns(config, bridge, ctx);
  return running;
}

async function setUpBridge(config: Config, { sys, logger }: Context): Promise<BridgeInfo> {
  const bridge = await sys.bridgeSetup.ensure({
    name: config.bridge,
    ...(config.subnetCidr ? { wantedCidr: config.subnetCidr } : {}),
    defaultCidr: DEFAULT_SUBNET,
    ...(config.bridgeMac ? { mac: config.bridgeMac } : {}),
    ...(config.mtu !== undefined ? { mtu: config.mtu } : {}),
    logger,
  });
  await sys.bridgeSetup.enableForwarding(config.bridge, logger);
  return bridge;
}

/** issue 14: the IPv6 address, forwarding and router advertisements on the bridge (with --subnet6 / --ipv6 auto). */
async function setUpIpv6(config: Config, bridge: BridgeInfo, { sys, logger, stack }: Context): Promise<Ipv6Service | undefined> {
  const dhcp6 = dhcp6Plan(config); // the RA's M/O/A flags follow DHCPv6's mode
  if (!config.ipv6) return undefined; // issue 7: the IPv6 service's code is loaded only when IPv6 is on
  const { startIpv6 } = await import('../ipv6/service.js');
  const ipv6 = await startIpv6(config, { logger, ipv6Host: sys.ipv6Host, machineId: sys.machineId, openRaSocket: sys.openRaSocket, linkMtu: sys.linkMtu, bridgeMac: bridge.mac,
    ...(config.firewall ? { raGuard: sys.raGuard(config.bridge) } : {}), ...(dhcp6 ? { dhcp6: dhcp6.mode } : {}),
    dnsOnGateway: config.dns }); // RDNSS/DNSSL: DNS answers on the IPv6 gateway (startDns, next)
  if (ipv6) stack.push('ipv6', () => ipv6.close());
  return ipv6;
}

/** The lease journal, the reservations, the DHCP core restored from the journal, and the names that follow them. */
interface State {
  store: LeaseStore;
  /** durable lease changes as add/old/del events (dhcp-script, leases --watch) */
  events: LeaseEvents;
  script: LeaseScriptSlot;
  core: DhcpServerCore;
  names: GuestNames | undefined;
  reservations: ReservationBook;
  /** issue 15: custom DNS records (with DNS on) */
  records: RecordBook | undefined;
  /** probes offers (unless --no-ping) and always the addresses guests decline */
  conflicts: ConflictDetector;
  ddns: DdnsService | undefined;
}

async function startState(config: Config, bridge: BridgeInfo, range: { start: number; end: number }, { sys, logger, stack }: Context): Promise<State> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o750 });
  const store = await LeaseStore.open(config.stateDir, { logger, now: sys.now });
  stack.push('lease store', () => store.close());
  const initialReservations = await loadReservations(config, bridge, logger);

  // issue 15: the operator's records come before the guest names: a lease may never take a record's name
  let reservationBook: ReservationBook | undefined;
  const reservedNames = () => (reservationBook?.all() ?? initialReservations).flatMap((r) => (r.hostname ? [{ name: r.hostname, field: `the ${r.source} reservation ${r.mac}` }] : []));
  const records = config.dns ? await RecordBook.load(config, { subnet: bridge.subnet, logger, reservedNames }) : undefined;
  // the lease names decide which names DDNS publishes too, so they exist with --no-dns when DDNS is on (issue 15)
  const names = config.dns || config.ddns ? new GuestNames(config, bridge, { logger, now: sys.now, ...(records ? { operatorName: records.owns } : {}) }) : undefined;
  // always built: a DECLINE is trusted only after a probe (issue 12); --no-ping only stops probing offers
  const probe = sys.conflictProbe({ bridge: config.bridge, gateway: bridge.gateway, timeoutMs: config.dhcpProbeTimeoutMs, logger });
  stack.push('conflict probe', () => probe.close());
  const conflicts = new ConflictDetector({ probe: probe.probe, maxConcurrent: probe.maxConcurrent, now: sys.now });
  const core = buildCore(config, bridge, range, initialReservations, {
    // the core decides which offers wait for a probe (none with --no-ping); the transport runs the probes it asks for
    ...(config.conflictProbe ? { conflictVerdict: conflicts.cached } : {}),
    ...(names ? { nameAllowed: names.nameAllowed } : {}),
  });
  const restored = store.load(sys.now());
  core.restore(restored.leases, sys.now(), restored.declined);
  const events = new LeaseEvents(sys.now);
  // subscribed before the journal's leases are announced: the script hears them as 'old', as dnsmasq's does at start
  const script = new LeaseScriptSlot(events, config, logger);
  stack.push('dhcp-script', () => script.close());
  events.loadLeases(restored.leases);
  logger.info('leases restored', { leases: restored.leases.length, range: describeRange(range) });
  names?.attachCore(core, initialReservations);
  await names?.loadStatic(config, logger);
  const ddns = config.ddns && names ? new (await import('./ddns.js')).DdnsService({ ...config, ddns: config.ddns }, bridge, names, core, { logger, now: sys.now }) : undefined;
  const initialReservations6 = await loadReservations6(config, logger); // issue 14
  const reservations = new ReservationBook(config, initialReservations, {
    bridge, logger, now: sys.now,
    leaseAt: (address) => core.leases.getByAddress(address),
    ...(records ? { recordName: records.holdsName } : {}), // issue 15
    onChange: (list) => {
      core.setReservations([...list]);
      names?.setReservations(list);
      ddns?.reservationsChanged();
    },
  }, initialReservations6);
  reservationBook = reservations;
  // issue 15: resync (every named lease, owned names without one removed) before the first lease change
  if (ddns) {
    stack.push('ddns', () => ddns.close());
    ddns.start();
  }
  return { store, core, names, reservations, records, conflicts, events, script, ddns };
}

async function startMetrics(listen: MetricsListen, running: Running, { sys, logger, stack }: Context): Promise<void> {
  const listener = await startMetricsListener(listen, () => formatPrometheus(metricsInput(observe(running, sys.now()))), logger);
  stack.push('metrics listener', () => listener.close());
  if (running.config.metricsAllowRemote && !running.config.firewall) {
    logger.warn('metrics listener is not loopback-only and natd manages no firewall: keep guests away from it yourself', { listen: listen.text });
  }
}

/** So the host itself resolves the guests' names when systemd-resolved runs; undone on stop. */
async function registerDns(config: Config, bridge: BridgeInfo, { sys, logger, stack }: Context): Promise<void> {
  const resolved = await sys.registerDns({ bridge: config.bridge, address: formatIpv4(bridge.gateway), ...(config.domain ? { domain: config.domain } : {}), logger });
  if (resolved.registered) stack.push('systemd-resolved', () => resolved.undo());
}

/**
 * The configuration checked against the subnet natd will serve, before anything on the system changes (the same
 * check as `natd check-config`, config/served-subnet.ts); the bridge step picks the subnet by the same precedence
 * (--subnet, the bridge's address, the default). Returns the DHCP range.
 */
async function plannedRange(config: Config, sys: DaemonSystem): Promise<{ start: number; end: number }> {
  const planned = await checkServedSubnet(config, (name) => sys.bridgeSetup.readCidr(name));
  return config.dhcpRange ?? defaultDhcpRange(planned.subnet, planned.gateway);
}

/** The pure DHCP core for this bridge (its leases come from the journal next). */
function buildCore(config: Config, served: BridgeInfo, range: { start: number; end: number }, reservations: readonly Reservation[], coreDeps: ConstructorParameters<typeof DhcpServerCore>[2]): DhcpServerCore {
  const gateway = served.gateway;
  return new DhcpServerCore(
    {
      serverAddress: gateway,
      subnet: served.subnet,
      router: gateway,
      dnsServers: config.dns ? [gateway] : [],
      ...(config.domain ? { domain: config.domain } : {}),
      ...(config.searchDomains.length ? { searchDomains: [...config.searchDomains] } : {}),
      ...(config.routes.length ? { classlessRoutes: config.routes.map((r) => ({ ...r })) } : {}),
      leaseTimeSeconds: config.leaseTimeSeconds,
      rangeStart: range.start,
      rangeEnd: range.end,
      maxQuarantineShare: config.dhcpMaxDeclinedPercent / 100,
      // issue 16: options, MTU (option 26), Rapid Commit
      options: config.dhcpOptions,
      ...(config.mtu !== undefined ? { mtu: config.mtu } : {}),
      rapidCommit: config.dhcpRapidCommit,
      boot: config.boot,
    },
    [...reservations],
    coreDeps,
  );
}

async function startDns(config: Config, bridge: BridgeInfo, names: GuestNames, ctx: Context, records?: RecordBook, ipv6?: Ipv6Service): Promise<DnsParts> {
  const { sys, logger, stack } = ctx;
  const gatewayText = formatIpv4(bridge.gateway);
  const ownAddresses = [gatewayText, ...(ipv6 ? [formatIpv6(ipv6.served.gateway)] : [])]; // issue 14: never our own upstream
  const cache = new DnsCache({ maxEntries: config.cacheSize, maxBytes: config.cacheMaxBytes, now: sys.now, minTtlSeconds: config.minCacheTtl, negativeCache: !config.noNegcache });
  const upstream = new UpstreamClient({ servers: await upstreamsFrom(config, ownAddresses, logger), logger, now: sys.now, maxInFlight: config.dnsForwardMax, strictOrder: config.strictOrder });
  const routes = buildRouteTable(config, upstream); // issue 15
  const queryLog = new QueryLog(logger, config.logQueries, sys.now);
  stack.push('dns upstream', () => upstream.close());

  const server = await startDnsServer(config, { device: config.bridge, address: gatewayText, name: 'dns' }, {
    subnet: bridge.subnet,
    localNames: names.local,
    cache,
    upstream,
    ...(records ? { records } : {}),
    routes,
    queryLog,
    ...(ipv6 ? { ipv6Network: ipv6.served.network } : {}), // issue 14: the /64's reverse zone is local
  }, { sockets: sys.sockets, logger, stack });
  // issue 14: DNS on the IPv6 gateway, AAAA/PTR for the guests' IPv6 addresses
  const ipv6Dns = ipv6 ? await (await import('./dns6.js')).startDns6(config, bridge, ipv6.served, { localNames: names.local, cache, upstream, routes, queryLog, records }, sys.sockets, logger, stack, sys.readNeighbours) : undefined;

  const stopWatch = followResolvConf(config, ownAddresses, (servers) => upstream.setServers(servers), logger);
  if (stopWatch) stack.push('resolv.conf watch', stopWatch);
  const listeners = await startDnsListeners(config, {
    localNames: names.local, cache, upstream, routes, queryLog,
    ...(records ? { records } : {}), ...(ipv6 ? { ipv6Network: ipv6.served.network } : {}),
  }, sys.sockets, logger, stack);
  return { server, cache, upstream, leaseNames: names.leases, records, queryLog, routes: () => describeRoutes(routes, config), listeners, ipv6: ipv6Dns };
}

async function startDhcp(config: Config, { core, store, names, conflicts, events, ddns }: State, { sys, logger, stack }: Context): Promise<DhcpTransport> {
  const dhcp = new DhcpTransport({
    socket: await sys.sockets.openDhcp(config.bridge),
    bridge: config.bridge,
    core,
    // names are decided before the journal write, so a refused name is not journaled with the lease (issue 12);
    // lease events and DDNS (queued, never waited for) get exactly what was journaled, once it is durable
    // issue 18: `reply` (the encoded ACK) leaves from the journal's writer thread right after the fdatasync
    commit: async (changes, reply) => {
      const settled = names ? names.settle(changes) : changes;
      const sent = await store.commit(settled, reply);
      events.committed(settled);
      ddns?.leaseChanges(settled);
      return sent;
    },
    setNeighbour: sys.setNeighbour,
    logger,
    now: sys.now,
    conflicts,
  });
  dhcp.start();
  stack.push('dhcp', () => dhcp.close());
  // leases of an idle bridge end too: through the core and the transport's commit, as every other lease change
  const sweep = setInterval(() => void dhcp.expireLeases(), EXPIRY_SWEEP_MS);
  sweep.unref();
  stack.push('expiry sweep', () => clearInterval(sweep));
  return dhcp;
}

/** issue 14: DHCPv6 on the lease journal, after the DHCPv4 transport; closed before the journal. */
async function startDhcp6Step(config: Config, ipv6: Ipv6Service, bridge: BridgeInfo, state: State, { sys, logger, stack }: Context, names6?: Dhcp6Names): Promise<Dhcp6Service | undefined> {
  const plan = dhcp6Plan(config);
  if (!plan) return undefined;
  const openSocket = sys.sockets.openDhcp6;
  if (!openSocket) throw configError(['dhcp6: this system has no DHCPv6 socket']);
  const journaled = state.store.load6(sys.now()).leases; // the journal's leases, as the core loads them
  names6?.restore(journaled);
  const dhcp6 = await startDhcp6(config, plan, ipv6.served, {
    logger, now: sys.now, store: state.store, bridgeMac: bridge.mac, openSocket: (name) => openSocket(name),
    onChanges: (changes) => {
      names6?.apply(changes);
      state.events.committed6(changes); // leases --watch, --dhcp-script
    },
    ...(names6 ? { nameAllowed: names6.nameAllowed } : {}),
  });
  state.events.setServerDuid(dhcp6.status().serverDuid);
  state.events.loadLeases6(journaled);
  stack.push('dhcp6', () => dhcp6.close());
  return dhcp6;
}

async function startFirewall(config: Config, bridge: BridgeInfo, reservations: ReservationBook, ctx: Context, ipv6?: Ipv6Service, expose?: ExposeService, resolveName6?: NameResolver6): Promise<Firewall> {
  const firewall = new Firewall({
    config, bridge, logger: ctx.logger, resolveName: reservations.resolveName, ...(ctx.sys.nftExec ? { nft: { exec: ctx.sys.nftExec } } : {}),
    ...(ipv6 ? { ipv6: (await import('../ipv6/service.js')).ipv6RulesetInput(ipv6.served), resolveName6: resolveName6 ?? guestIpv6Resolver(config.reservations) } : {}), // issue 14
    ...(expose ? { expose: { conflicts: expose.forwardConflicts } } : {}), // issue 17
  });
  await firewall.start(expose?.ports);
  ctx.stack.push('firewall', () => firewall.close());
  return firewall;
}

// ---- issue 17: name router
/** The configured routes (runtime ones load at start); guests resolve per connection through the guest names. */
async function loadExpose(config: Config, bridge: BridgeInfo, state: State, { logger, sys }: Context): Promise<ExposeService> {
  const resolveGuest = (name: string): number | undefined =>
    state.names?.local.holderOf(name)?.address ?? state.reservations.resolveName(name) ?? state.core.leases.all().find((l) => l.hostname === name && l.expiresAt > sys.now())?.address;
  return new ExposeService({ config, served: { subnet: bridge.subnet, gateway: bridge.gateway }, logger, resolveGuest });
}

/** After DNS/DHCP and the firewall; closed before them. */
async function startExpose(expose: ExposeService, firewall: Firewall | undefined, { stack }: Context): Promise<void> {
  stack.push('name router', () => expose.close());
  await expose.start(firewall);
}

async function startControl(running: Running, ctx: Context): Promise<ControlServer> {
  const now = ctx.sys.now;
  const control = new ControlServer(running.config.controlSocket, validatedHandlers(controlHandlers({
    core: running.core,
    reservations: running.reservations,
    records: running.records,
    firewall: running.firewall,
    expose: running.expose, // issue 17
    now,
    events: running.events,
    status: () => statusOf(observe(running, now())),
    reload: () => reloadComponents(running, ctx),
    metrics: () => formatPrometheus(metricsInput(observe(running, now()))),
    dhcp6: running.dhcp6, // issue 14
  })), ctx.logger);
  await control.start();
  ctx.stack.push('control socket', () => control.close());
  return control;
}

/**
 * Re-reads what the config names and applies it. The firewall goes first because it is the part that can refuse
 * (e.g. a forward naming a reservation that is gone): then nothing else changes either.
 */
async function reloadComponents(running: Running, ctx: Context, newConfig?: Config): Promise<void> {
  const config = newConfig ?? ctx.loadConfig?.() ?? running.config;
  // the served subnet is fixed while natd runs: a reload that does not fit it is refused, nothing changed
  const problems = subnetProblems(config, running.bridge);
  if (problems.length) throw configError(problems);
  // issue 14: the IPv6 prefix is set up once at start
  if (JSON.stringify(config.ipv6) !== JSON.stringify(running.config.ipv6)) ctx.logger.warn('ipv6/subnet6 changed: it takes effect when natd restarts', { bridge: config.bridge });
  const reservations = await loadReservations(config, running.bridge, ctx.logger);
  // issue 14: v6 reservations checked against the served /64 before anything changes; the hostsfile's and runtime ones after them
  const extra6 = await loadReservations6(config, ctx.logger);
  const reservations6 = running.dhcp6 && running.ipv6 ? withHostReservations6(dhcp6Reservations(config, running.ipv6.served), extra6, running.ipv6.served, ctx.logger) : [];
  const book = running.reservations;
  await book.replace(config, reservations, async () => running.firewall?.reload(config, book.resolveName, resolver6(config, running.names6, running.names)), extra6); // issue 14: IPv6 names
  const previousTftp = running.config.tftp;
  const previousDhcp6 = dhcp6Plan(running.config); // issue 14
  running.config = config;
  running.core.setBoot(config.boot); // issue 16: boot entries and tag rules follow the config; the TFTP server needs a restart
  if (!sameTftp(config.tftp, previousTftp)) ctx.logger.warn('TFTP settings changed: they apply at the next restart');
  running.script.configure(config);
  running.core.setOptions(config.dhcpOptions); // issue 16: --dhcp-option changes apply on reload
  reloadDhcp6(running, config, previousDhcp6, reservations6, ctx.logger); // issue 14
  await running.names?.loadStatic(config, ctx.logger);
  await running.records?.reload(config); // issue 15
  await running.expose.reload(config); // issue 17
  running.ddns?.reload(config);
  if (running.dns) {
    const own = [formatIpv4(running.bridge.gateway), ...(running.ipv6 ? [formatIpv6(running.ipv6.served.gateway)] : [])]; // issue 14
    running.dns.upstream.setServers(await upstreamsFrom(config, own, ctx.logger));
    reloadDnsKnobs(running.dns, config);
  }
  ctx.logger.info('reloaded', { reservations: reservations.length });
}

/** issue 14: DHCPv6 reservations follow the config; the mode and range take effect at the next start. */
function reloadDhcp6(running: Running, config: Config, before: ReturnType<typeof dhcp6Plan>, reservations: Dhcp6Reservation[], logger: Logger): void {
  const plan = dhcp6Plan(config);
  if (JSON.stringify([plan?.mode, plan?.setting.range, plan?.setting.leaseSeconds]) !== JSON.stringify([before?.mode, before?.setting.range, before?.setting.leaseSeconds]))
    logger.warn('DHCPv6 mode, range or lease time changed: it takes effect when natd restarts', { bridge: config.bridge });
  running.dhcp6?.setReservations(reservations);
  running.names6?.setReservations(reservations);
}

// ---- issue 14: DHCPv6 leases → names (dhcp6-names.ts), and the IPv6 forwards that follow them
function dhcp6NamesFor(state: State, dns: DnsParts | undefined, reservations: readonly Dhcp6Reservation[], logger: Logger): Dhcp6Names {
  const local = state.names?.local;
  const names6 = new Dhcp6Names({
    table: dns?.ipv6?.guests, logger,
    ...(local ? {
      namesByMac: () => local.namesByMac(),
      v4HolderMac: (name: string) => {
        const holder = local.holderOf(name);
        if (!holder) return undefined;
        return holder.mac && (holder.source === 'lease' || holder.source === 'reservation') ? holder.mac : null;
      },
      publishable: (name: string) => local.refusalOf(name) === undefined,
    } : {}),
    ...(state.records ? { operatorName: state.records.owns } : {}), // an operator record's name is never a guest's
  });
  names6.setReservations(reservations);
  return names6;
}

/** IPv6 forwards re-resolve after DHCPv6 lease changes and guest address table changes (rate-limited, forwards6.ts). */
function followGuests6(running: Running, firewall: Firewall, ctx: Context): Forwards6Refresher {
  const refresher = forwards6Refresher({
    names: () => firewall.guestNames(), resolver: () => resolver6(running.config, running.names6, running.names), logger: ctx.logger,
    reload: (resolve) => firewall.reload(running.config, running.reservations.resolveName, resolve),
  });
  if (running.names6) running.names6.onChanged = refresher.refresh;
  if (running.dns?.ipv6) running.dns.ipv6.guests.onChanged = refresher.refresh;
  ctx.stack.push('ipv6 forwards refresher', () => refresher.close());
  return refresher;
}

/** issue 14: the DHCPv6 reservations: the config's (--dhcp-host), then the hostsfile's and runtime ones that fit. */
function allReservations6(config: Config, served: Ipv6Served, book: ReservationBook, logger: Logger): Dhcp6Reservation[] {
  return withHostReservations6(dhcp6Reservations(config, served), book.all6(), served, logger);
}

/** issue 14: `natd reservations add` with an IPv6 address; the DHCPv6 core and the names follow every change. */
function reservations6Follow(running: Running, ipv6: Ipv6Service, dhcp6: Dhcp6Service, initial: readonly Dhcp6Reservation[], logger: Logger): void {
  const served = ipv6.served;
  const apply = (): void => {
    const list = allReservations6(running.config, served, running.reservations, logger);
    dhcp6.setReservations(list);
    running.names6?.setReservations(list);
  };
  running.reservations.ipv6 = {
    check: (spec, others) => checkNewReservation6(spec, dhcp6Reservations(running.config, served), others, served, (address) => dhcp6.leases().find((l) => l.address === address)),
    changed: apply,
  };
  dhcp6.setReservations(initial); // the hostsfile's and runtime ones too (startDhcp6 starts with the config's)
}

/** A guest name → IPv6: a reservation's, a DHCPv6 lease's, then what AAAA answers (guest-ipv6.ts). */
function resolver6(config: Config, names6: Dhcp6Names | undefined, guestNames: GuestNames | undefined): NameResolver6 {
  const local = guestNames?.local;
  return guestIpv6Resolver(config.reservations, {
    ...(names6 ? { dhcp6Lease: (name: string) => names6.addressOf(name) } : {}),
    // what AAAA answers (DHCPv6 and SLAAC addresses), when DNS serves IPv6 names
    ...(local ? { guests: (name: string) => (local.lookup({ name: name.toLowerCase(), type: DnsType.AAAA, class: DNS_CLASS_IN })?.records ?? []).filter((r) => r.type === DnsType.AAAA).map((r) => String(r.data)) } : {}),
  });
}

/** Issue 15: routes, --strict-order, --min-cache-ttl, --no-negcache, --log-queries take effect on reload. */
function reloadDnsKnobs(dns: DnsParts, config: Config): void {
  const before = JSON.stringify(dns.routes?.());
  const routes = buildRouteTable(config, dns.upstream);
  dns.server.setRoutes(routes);
  for (const l of dns.listeners ?? []) l.server.setRoutes(routes);
  dns.ipv6?.server.setRoutes(routes); // issue 14
  dns.routes = () => describeRoutes(routes, config);
  // cached answers of a domain that now goes elsewhere (or nowhere) must not outlive the change
  if (JSON.stringify(dns.routes()) !== before) dns.cache.clear();
  dns.upstream.setStrictOrder(config.strictOrder);
  dns.cache.setPolicy({ minTtlSeconds: config.minCacheTtl, negativeCache: !config.noNegcache });
  dns.queryLog?.setMode(config.logQueries);
}

function observe(running: Running, now: number): Observed {
  const { config, bridge, core, dhcp, dns, firewall, control, kernelDrops, script, ddns, tftp, startedAt, ipv6, expose, dhcp6, forwards6, names6, journal } = running;
  return { config, bridge, core, dhcp, dns, firewall, control, now, kernelDrops: kernelDrops(), script: script.stats(), ddns, tftp, startedAt, ipv6, expose, dhcp6, forwards6, names6, journal: journal() };
}

function sameTftp(a: Config['tftp'], b: Config['tftp']): boolean {
  return a?.root === b?.root && a?.maxTransfers === b?.maxTransfers;
}
