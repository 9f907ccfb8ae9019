/**
 * Composition root: builds every component from the frozen Config, starts them in order and closes them in
 * reverse. Nothing here decides protocol behaviour; it only wires.
 *
 * Start order: bridge → sysctls → state (leases, reservations) → DHCP socket → DNS sockets → nftables →
 * control socket → READY=1. Close order is the reverse, and every close is idempotent.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Config, MetricsListen } from './config.js';
import { DEFAULT_SUBNET, defaultDhcpRange, describeRange } from './config.js';
import { ErrorCodes, NatdError } from './errors.js';
import type { Logger } from './log.js';
import { ensureBridge, readBridgeCidr, type BridgeInfo } from './net/bridge.js';
import { enableForwarding } from './net/sysctl.js';
import { formatIpv4, formatSubnet, parseCidr, subnetContains, type Subnet } from './net/ipv4.js';
import { openArpSocket, openDeviceTcpListener, openDeviceUdpSocket, sdNotify, setNeighbour, socketDrops } from './native.js';
import { DhcpServerCore } from './dhcp/server-core.js';
import { LeaseStore } from './dhcp/lease-store.js';
import { formatHostsfile, parseHostsfile } from './dhcp/hostsfile.js';
import { writeFileAtomic } from './state/atomic-file.js';
import { ControlServer, type ControlHandler } from './control/server.js';
import { normalizeMac, parseIpv4 } from './net/ipv4.js';
import { sanitizeHostname } from './net/hostname.js';
import { DhcpTransport } from './dhcp/transport.js';
import { ConflictDetector, pingProbe } from './dhcp/probe.js';
import { chooseConflictProbe } from './dhcp/arp-probe.js';
import type { Reservation } from './dhcp/types.js';
import { LocalNames, parseHostsFormat, type HostsEntry } from './dns/local-names.js';
import { DnsCache } from './dns/cache.js';
import { UpstreamClient } from './dns/upstream.js';
import { DnsServer } from './dns/server.js';
import { BatchUdpTransport } from './dns/udp-transport.js';
import { parseResolvConf, watchResolvConf } from './dns/resolv-conf.js';
import { LeaseNames } from './lease-names.js';
import { deniedNameReason } from './dns/denied-names.js';
import { Firewall } from './nft/firewall.js';
import { dnsLimitMetrics, formatPrometheus, PROMETHEUS_CONTENT_TYPE, type MetricsInput } from './ops/metrics.js';
import { registerWithResolved } from './ops/resolved.js';
import http from 'node:http';

const DHCP_SERVER_PORT = 67;
const DNS_PORT = 53;
const EXPIRY_SWEEP_MS = 30_000;

export interface DaemonDeps {
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
  status(): Record<string, unknown>;
}

// not 'reservations': import-dnsmasq writes the imported hostsfile under that name
const RUNTIME_RESERVATIONS_FILE = 'runtime-reservations';

export type ReservationSource = 'config' | 'hostsfile' | 'runtime';
export interface SourcedReservation extends Reservation {
  source: ReservationSource;
}

/** Reads a hostsfile-format file; problems are logged with file:line and the rest loads. Missing file: none. */
async function readHostsfile(file: string, bridge: BridgeInfo, domain: string | undefined, logger: Logger, optional: boolean): Promise<Reservation[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (!optional) logger.warn('cannot read hostsfile; no reservations from it', { file, error: (err as Error).message });
    return [];
  }
  const parsed = parseHostsfile(text, file, bridge.subnet, domain);
  for (const p of parsed.problems) logger.warn('hostsfile problem', { file: p.file, line: p.line, problem: p.message });
  return parsed.reservations;
}

/**
 * Reservations from the config, the hostsfile and the runtime file (added with `natd reservations add`), in that
 * order of precedence: a MAC or address already reserved by an earlier source is skipped with a warning.
 */
async function loadReservations(config: Config, bridge: BridgeInfo, logger: Logger): Promise<SourcedReservation[]> {
  const reservations: SourcedReservation[] = [];
  const add = (r: Reservation, source: ReservationSource) => {
    const clash = reservations.find((x) => x.mac === r.mac || x.address === r.address);
    if (clash) {
      logger.warn('reservation skipped: conflicts with an earlier one', { mac: r.mac, address: formatIpv4(r.address), source, earlier: clash.source });
      return;
    }
    reservations.push({ ...r, source });
  };
  for (const r of config.reservations) add(r, 'config');
  if (config.hostsfile) for (const r of await readHostsfile(config.hostsfile, bridge, config.domain, logger, false)) add(r, 'hostsfile');
  for (const r of await readHostsfile(path.join(config.stateDir, RUNTIME_RESERVATIONS_FILE), bridge, config.domain, logger, true)) add(r, 'runtime');
  for (const r of reservations) {
    if (!subnetContains(bridge.subnet, r.address)) logger.warn('reservation outside the bridge subnet ignored', { mac: r.mac, address: formatIpv4(r.address) });
  }
  return reservations.filter((r) => subnetContains(bridge.subnet, r.address) && r.address !== bridge.gateway);
}

/** Static DNS records from hosts-format files; problems are logged with file:line and the rest loads. */
async function loadStaticHosts(files: readonly string[], domain: string | undefined, logger: Logger): Promise<HostsEntry[]> {
  const entries: HostsEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      logger.warn('cannot read hosts file; no names from it', { file, error: (err as Error).message });
      continue;
    }
    const parsed = parseHostsFormat(text, file, domain);
    for (const p of parsed.problems) logger.warn('hosts file problem', { file: p.file, line: p.line, problem: p.message });
    entries.push(...parsed.entries);
  }
  return entries;
}

async function upstreamsFrom(config: Config, gateway: string, logger: Logger): Promise<{ address: string }[]> {
  if (config.upstreams.length) return config.upstreams.map((address) => ({ address }));
  try {
    const parsed = parseResolvConf(await readFile(config.resolvConf, 'utf8'));
    return parsed.nameservers.filter((a) => a !== gateway).map((address) => ({ address }));
  } catch (err) {
    logger.warn('cannot read resolv.conf; no upstream DNS servers', { file: config.resolvConf, error: (err as Error).message });
    return [];
  }
}

export function buildDaemon(initialConfig: Config, deps: DaemonDeps): Daemon {
  const { logger } = deps;
  const now = deps.now ?? Date.now;
  let config = initialConfig;
  const closers: { name: string; close: () => Promise<void> | void }[] = [];
  let bridge: BridgeInfo | undefined;
  let core: DhcpServerCore | undefined;
  let store: LeaseStore | undefined;
  let dhcp: DhcpTransport | undefined;
  let dns: DnsServer | undefined;
  let cache: DnsCache | undefined;
  let upstream: UpstreamClient | undefined;
  let leaseNames: LeaseNames | undefined;
  let localNames: LocalNames | undefined;
  let firewall: Firewall | undefined;
  let reservations: SourcedReservation[] = [];
  let control: ControlServer | undefined;
  let closing: Promise<void> | undefined;
  let started = false;
  /** the DHCP and DNS sockets' fds, for the kernel's drop counts in metrics */
  const udpFds: { dhcp?: number; dns?: number } = {};
  const resolveName = (name: string): number | undefined => reservations.find((r) => r.hostname === name)?.address;

  async function start(): Promise<void> {
    try {
      await startInOrder();
      started = true;
      sdNotify('READY=1\nSTATUS=serving');
      logger.info('natd ready', { bridge: config.bridge, subnet: formatSubnet(bridge!.subnet), gateway: formatIpv4(bridge!.gateway) });
    } catch (err) {
      await close();
      throw err;
    }
  }

  async function startInOrder(): Promise<void> {
    // Check the DHCP range against the subnet natd will serve before anything on the system changes; ensureBridge
    // picks the subnet by the same precedence (--subnet, the bridge's address, the default).
    const planned = parseCidr(config.subnetCidr ?? (await readBridgeCidr(config.bridge)) ?? DEFAULT_SUBNET);
    if (!planned) throw new NatdError(ErrorCodes.CONFIG, `subnet: cannot parse the bridge's address`);
    const range = config.dhcpRange ?? defaultDhcpRange(planned.subnet, planned.address);
    checkRange(range, planned.subnet);

    bridge = await ensureBridge({
      name: config.bridge,
      ...(config.subnetCidr ? { wantedCidr: config.subnetCidr } : {}),
      defaultCidr: DEFAULT_SUBNET,
      ...(config.bridgeMac ? { mac: config.bridgeMac } : {}),
      logger,
    });
    await enableForwarding(config.bridge, logger);

    mkdirSync(config.stateDir, { recursive: true, mode: 0o750 });
    store = await LeaseStore.open(config.stateDir, { logger, now });
    closers.push({ name: 'lease store', close: () => store?.close() });
    reservations = await loadReservations(config, bridge, logger);
    // always built: a DECLINE is trusted only after a probe (issue 12); --no-ping only stops probing offers
    const probe = chooseConflictProbe({
      timeoutMs: config.dhcpProbeTimeoutMs,
      openArp: (onSender) => openArpSocket(config.bridge, bridge!.gateway, onSender),
      ping: () => pingProbe({ device: config.bridge, timeoutMs: config.dhcpProbeTimeoutMs }),
      onFallback: (reason) => logger.warn('cannot open the ARP probe socket; probing with ping instead', { reason }),
    });
    closers.push({ name: 'conflict probe', close: () => probe.close() });
    const conflicts = new ConflictDetector({ probe: probe.probe, maxConcurrent: probe.maxConcurrent, now });
    core = buildCore(bridge, range, config.conflictProbe ? conflicts : undefined);

    if (config.dns) {
      localNames = new LocalNames({ ...(config.domain ? { domain: config.domain } : {}), subnet: bridge.subnet, gatewayAddress: bridge.gateway });
      leaseNames = new LeaseNames(localNames, { logger, now, leaseOf: (clientId) => core?.leases.getByClient(clientId) });
      leaseNames.setReservations(reservations);
      leaseNames.restore(core.leases.all());
      localNames.replaceStatic(await loadStaticHosts(config.addnHosts, config.domain, logger));
      await startDns(localNames);
    }
    await startDhcp(core, conflicts);

    if (config.firewall) {
      firewall = new Firewall({ config, bridge, logger, resolveName });
      await firewall.start();
      closers.push({ name: 'firewall', close: () => firewall?.close() });
    }

    control = new ControlServer(config.controlSocket, controlHandlers(), logger);
    await control.start();
    closers.push({ name: 'control socket', close: () => control?.close() });
    if (config.metricsListen) await startMetricsListener(config.metricsListen);

    if (config.dns) {
      // so the host itself resolves the guests' names when systemd-resolved runs; undone on stop
      const resolved = await registerWithResolved({ bridge: config.bridge, address: formatIpv4(bridge.gateway), ...(config.domain ? { domain: config.domain } : {}), logger });
      if (resolved.registered) closers.push({ name: 'systemd-resolved', close: () => resolved.undo() });
    }
  }

  /** The pure DHCP core with the leases the journal holds. */
  function buildCore(served: BridgeInfo, range: { start: number; end: number }, conflicts: ConflictDetector | undefined): DhcpServerCore {
    const gateway = served.gateway;
    const built = new DhcpServerCore(
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
      },
      reservations,
      {
        ...(conflicts ? { isKnownInUse: conflicts.isKnownInUse } : {}),
        // late-bound: the names exist only once DNS is built, after the core (no DNS: no name policy)
        nameAllowed: (name, claimant, binding) => leaseNames?.nameAllowed(name, claimant, binding) ?? true,
      },
    );
    const restored = store!.load(now());
    built.restore(restored.leases, now(), restored.declined);
    logger.info('leases restored', { leases: restored.leases.length, range: describeRange(range) });
    return built;
  }

  /** The DHCP socket (0.0.0.0:67 bound to the bridge, zero UDP checksum) and its transport. */
  async function startDhcp(dhcpCore: DhcpServerCore, conflicts: ConflictDetector | undefined): Promise<void> {
    const socket = dgram.createSocket({ type: 'udp4' });
    udpFds.dhcp = openDeviceUdpSocket(config.bridge, '0.0.0.0', DHCP_SERVER_PORT, true, true);
    await bindFd(socket, udpFds.dhcp);
    dhcp = new DhcpTransport({
      socket,
      bridge: config.bridge,
      core: dhcpCore,
      // names are decided before the journal write, so a refused name is not journaled with the lease (issue 12)
      commit: (changes) => store!.commit(leaseNames ? leaseNames.settle(changes) : changes),
      setNeighbour,
      logger,
      now,
      ...(conflicts ? { conflicts } : {}),
      probeOffers: config.conflictProbe,
    });
    dhcp.start();
    closers.push({ name: 'dhcp', close: () => dhcp?.close() });
    // leases of an idle bridge end too: through the core and the transport's commit, as every other lease change
    const sweep = setInterval(() => void dhcp?.expireLeases(), EXPIRY_SWEEP_MS);
    sweep.unref();
    closers.push({ name: 'expiry sweep', close: () => clearInterval(sweep) });
  }

  async function startDns(localNames: LocalNames): Promise<void> {
    const gatewayText = formatIpv4(bridge!.gateway);
    cache = new DnsCache({ maxEntries: config.cacheSize, maxBytes: config.cacheMaxBytes, now });
    upstream = new UpstreamClient({ servers: await upstreamsFrom(config, gatewayText, logger), logger, now, maxInFlight: config.dnsForwardMax });
    closers.push({ name: 'dns upstream', close: () => upstream?.close() });

    // batched recvmmsg/sendmmsg through the addon: cache hits cost half the CPU they cost through dgram
    udpFds.dns = openDeviceUdpSocket(config.bridge, gatewayText, DNS_PORT);
    const udp = new BatchUdpTransport(udpFds.dns);
    const tcp = net.createServer();
    try {
      await listenFd(tcp, openDeviceTcpListener(config.bridge, gatewayText, DNS_PORT));
    } catch (err) {
      await udp.close();
      throw err;
    }
    dns = new DnsServer({
      udp,
      tcp,
      subnet: bridge!.subnet,
      localNames,
      cache,
      upstream,
      ...(config.domain ? { domain: config.domain } : {}),
      logger,
      maxPendingPerClient: config.dnsMaxPendingPerClient,
      maxTcpConnectionsPerClient: config.dnsMaxTcpPerClient,
    });
    dns.start();
    closers.push({ name: 'dns', close: () => dns?.close() });

    if (!config.upstreams.length) {
      const stop = watchResolvConf(config.resolvConf, (parsed) => {
        const servers = parsed.nameservers.filter((a) => a !== gatewayText).map((address) => ({ address }));
        upstream?.setServers(servers);
        logger.info('resolv.conf changed; upstreams updated', { upstreams: servers.map((s) => s.address) });
      });
      closers.push({ name: 'resolv.conf watch', close: stop });
    }
  }

  /**
   * Re-reads what the config names and applies it. The firewall goes first because it is the part that can refuse
   * (e.g. a forward naming a reservation that is gone): then nothing else changes either.
   */
  async function reload(newConfig?: Config): Promise<void> {
    if (!started || !bridge || !core) return;
    const previous = { config, reservations };
    config = newConfig ?? deps.loadConfig?.() ?? config;
    reservations = await loadReservations(config, bridge, logger);
    try {
      await firewall?.reload(config, resolveName);
    } catch (err) {
      ({ config, reservations } = previous);
      throw err;
    }
    applyReservations();
    localNames?.replaceStatic(await loadStaticHosts(config.addnHosts, config.domain, logger));
    if (upstream) upstream.setServers(await upstreamsFrom(config, formatIpv4(bridge.gateway), logger));
    logger.info('reloaded', { reservations: reservations.length });
  }

  function applyReservations(): void {
    core!.setReservations(reservations);
    leaseNames?.setReservations(reservations);
  }

  async function saveRuntimeReservations(): Promise<void> {
    const runtime = reservations.filter((r) => r.source === 'runtime');
    await writeFileAtomic(path.join(config.stateDir, RUNTIME_RESERVATIONS_FILE), formatHostsfile(runtime));
  }

  async function addReservation(args: Record<string, unknown>): Promise<unknown> {
    const mac = normalizeMac(String(args.mac ?? ''));
    const address = parseIpv4(String(args.address ?? ''));
    const rawName = args.hostname === undefined || args.hostname === null ? undefined : String(args.hostname);
    const hostname = rawName === undefined ? undefined : sanitizeHostname(rawName);
    if (!mac) throw new NatdError(ErrorCodes.CONFIG, `mac: not a MAC address (got "${String(args.mac)}")`);
    if (address === undefined) throw new NatdError(ErrorCodes.CONFIG, `address: not an IPv4 address (got "${String(args.address)}")`);
    if (!subnetContains(bridge!.subnet, address) || address === bridge!.gateway || address === bridge!.subnet.network || address === bridge!.subnet.broadcast)
      throw new NatdError(ErrorCodes.CONFIG, `address: ${formatIpv4(address)} is not a guest address of ${formatSubnet(bridge!.subnet)}`);
    if (rawName !== undefined && hostname !== rawName.toLowerCase())
      throw new NatdError(ErrorCodes.CONFIG, `hostname: "${rawName}" is not a DNS label (letters, digits, '-')`);
    const denied = hostname === undefined ? undefined : deniedNameReason(hostname, { domain: config.domain });
    if (denied) throw new NatdError(ErrorCodes.CONFIG, `hostname: "${hostname}" is ${denied}; natd never publishes it`);
    const clash = reservations.find((r) => r.mac === mac || r.address === address || (hostname && r.hostname === hostname));
    if (clash) throw new NatdError(ErrorCodes.CONFIG, `conflicts with the ${clash.source} reservation ${clash.mac},${formatIpv4(clash.address)}${clash.hostname ? ',' + clash.hostname : ''}`);
    const holder = core!.leases.getByAddress(address);
    if (holder && holder.mac !== mac && holder.expiresAt > now())
      throw new NatdError(ErrorCodes.CONFIG, `address: ${formatIpv4(address)} is leased to ${holder.mac} until ${new Date(holder.expiresAt).toISOString()}`);
    reservations = [...reservations, { mac, address, ...(hostname ? { hostname } : {}), source: 'runtime' }];
    await saveRuntimeReservations();
    applyReservations();
    logger.info('reservation added', { mac, address: formatIpv4(address), hostname });
    return { mac, address: formatIpv4(address), hostname };
  }

  async function removeReservation(args: Record<string, unknown>): Promise<unknown> {
    const key = String(args.key ?? '').toLowerCase();
    const match = reservations.find((r) => r.mac === normalizeMac(key) || formatIpv4(r.address) === key || r.hostname === key);
    if (!match) throw new NatdError(ErrorCodes.CONFIG, `no reservation matches "${key}"`);
    if (match.source !== 'runtime')
      throw new NatdError(ErrorCodes.CONFIG, `the reservation for ${match.mac} comes from the ${match.source}; remove it there and reload`);
    if (match.hostname && firewall?.guestNames().has(match.hostname))
      throw new NatdError(ErrorCodes.CONFIG, `port forwards name "${match.hostname}"; remove them first (natd forwards list)`);
    reservations = reservations.filter((r) => r !== match);
    await saveRuntimeReservations();
    applyReservations();
    logger.info('reservation removed', { mac: match.mac, address: formatIpv4(match.address) });
    return { mac: match.mac, address: formatIpv4(match.address) };
  }

  function controlHandlers(): Record<string, ControlHandler> {
    const needFirewall = (): Firewall => {
      if (!firewall) throw new NatdError(ErrorCodes.CONFIG, 'the firewall is disabled (--no-firewall)');
      return firewall;
    };
    return {
      status: () => status(),
      leases: () =>
        core!.leases.all().filter((l) => l.expiresAt > now()).sort((a, b) => a.address - b.address).map((l) => ({
          address: formatIpv4(l.address), mac: l.mac, hostname: l.hostname, expiresAt: l.expiresAt, clientId: l.clientId,
        })).concat(core!.declined(now()).map((q) => ({ address: formatIpv4(q.address), mac: '', hostname: undefined, expiresAt: q.until, clientId: '', state: 'declined' }))),
      'reservations.list': () =>
        reservations.map((r) => ({ mac: r.mac, address: formatIpv4(r.address), hostname: r.hostname, source: r.source })),
      'reservations.add': addReservation,
      'reservations.remove': removeReservation,
      'forwards.list': () => needFirewall().listForwards(),
      'forwards.add': async (args) => needFirewall().addForward(String(args.spec ?? '')),
      'forwards.remove': async (args) => needFirewall().removeForward(String(args.spec ?? '')),
      reload: () => reload(),
      metrics: () => formatPrometheus(metricsInput()),
    };
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      sdNotify('STOPPING=1');
      for (const c of closers.reverse()) {
        try {
          await c.close();
        } catch (err) {
          logger.warn('error while closing', { component: c.name, error: (err as Error).message });
        }
      }
    })();
    return closing;
  }

  function metricsInput(): MetricsInput {
    const d = dhcp?.stats();
    const c = core?.stats(now());
    const dnsStats = dns?.stats();
    const up = upstream?.stats();
    return {
      bridge: config.bridge,
      dhcp: { received: d?.receivedByType ?? {}, sent: d?.sent ?? {}, dropped: d?.dropped ?? {}, leasesActive: c?.leases ?? 0, freeAddresses: c?.free ?? 0, outcomes: d?.outcomes ?? {}, quarantined: c?.quarantined ?? 0,
        ...(d?.probes ? { probes: d.probes } : {}) },
      kernelDrops: kernelDrops(),
      ...(dnsStats && up
        ? { dns: { queries: dnsStats.queries, cacheHits: dnsStats.cacheHits, cacheEntries: cache?.size ?? 0, upstreamQueries: up.sent, upstreamFailures: up.failures + up.timeouts, upstreamLatencyAvgSeconds: up.latencyMsAvg / 1000,
            ...dnsLimitMetrics(dnsStats, cache?.stats(), up), ...(leaseNames ? { namesRefused: leaseNames.refusals } : {}) } }
        : {}),
      ...(firewall ? { firewall: firewall.counters() } : {}),
      ...(control ? { control: control.stats() } : {}),
    };
  }

  /** Datagrams the kernel dropped at natd's UDP sockets (a full receive buffer): read when metrics are asked for. */
  function kernelDrops(): Record<string, number> {
    const drops: Record<string, number> = {};
    for (const [name, fd] of Object.entries(udpFds)) {
      try {
        drops[name] = socketDrops(fd);
      } catch {
        /* closed meanwhile */
      }
    }
    return drops;
  }

  /** Optional Prometheus endpoint on TCP (the control socket always serves `natd metrics`); loopback unless the
   *  operator opted in (config.ts), and natd's input chain keeps guests away from it either way. */
  async function startMetricsListener(listen: MetricsListen): Promise<void> {
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(formatPrometheus(metricsInput()));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    closers.push({ name: 'metrics listener', close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    logger.info('metrics served', { url: `http://${listen.text}/metrics` });
    if (config.metricsAllowRemote && !config.firewall) {
      logger.warn('metrics listener is not loopback-only and natd manages no firewall: keep guests away from it yourself', { listen: listen.text });
    }
  }

  function status(): Record<string, unknown> {
    return {
      bridge: config.bridge,
      pid: process.pid,
      subnet: bridge ? formatSubnet(bridge.subnet) : undefined,
      gateway: bridge ? formatIpv4(bridge.gateway) : undefined,
      dhcp: { ...dhcp?.stats(), ...core?.stats(now()) },
      dns: dns ? { ...dns.stats(), cache: cache?.stats(), cacheEntries: cache?.size, upstream: upstream?.stats(), namesRefused: leaseNames?.refusals } : undefined,
      firewall: firewall?.status(),
      control: control?.stats(),
    };
  }

  return { start, reload, close, status };
}

function checkRange(range: { start: number; end: number }, subnet: Subnet): void {
  if (!subnetContains(subnet, range.start) || !subnetContains(subnet, range.end)) {
    throw new NatdError(ErrorCodes.CONFIG, `dhcpRange: ${describeRange(range)} is not inside the bridge subnet ${formatSubnet(subnet)}`);
  }
}

function bindFd(socket: dgram.Socket, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ fd }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

function listenFd(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
