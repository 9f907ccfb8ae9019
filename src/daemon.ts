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
import type { Config } from './config.js';
import { DEFAULT_SUBNET, defaultDhcpRange, describeRange } from './config.js';
import { ErrorCodes, NatdError } from './errors.js';
import type { Logger } from './log.js';
import { ensureBridge, type BridgeInfo } from './net/bridge.js';
import { enableForwarding } from './net/sysctl.js';
import { formatIpv4, formatSubnet, subnetContains } from './net/ipv4.js';
import { openDeviceTcpListener, openDeviceUdpSocket, sdNotify, setNeighbour } from './native.js';
import { DhcpServerCore } from './dhcp/server-core.js';
import { LeaseStore } from './dhcp/lease-store.js';
import { parseHostsfile } from './dhcp/hostsfile.js';
import { DhcpTransport } from './dhcp/transport.js';
import type { Reservation } from './dhcp/types.js';
import { LocalNames } from './dns/local-names.js';
import { DnsCache } from './dns/cache.js';
import { UpstreamClient } from './dns/upstream.js';
import { DnsServer } from './dns/server.js';
import { parseResolvConf, watchResolvConf } from './dns/resolv-conf.js';
import { LeaseNames } from './lease-names.js';
import { Firewall } from './firewall.js';

const DHCP_SERVER_PORT = 67;
const DNS_PORT = 53;
const EXPIRY_SWEEP_MS = 30_000;

export interface DaemonDeps {
  logger: Logger;
  now?: () => number;
}

export interface Daemon {
  start(): Promise<void>;
  /** Re-reads config-derived inputs (hostsfile, resolv.conf, forwards) and re-applies the ruleset. */
  reload(config?: Config): Promise<void>;
  close(): Promise<void>;
  status(): Record<string, unknown>;
}

/** Reservations from the config plus the hostsfile; hostsfile problems are logged with file:line, the rest loads. */
async function loadReservations(config: Config, bridge: BridgeInfo, logger: Logger): Promise<Reservation[]> {
  const reservations: Reservation[] = config.reservations.map((r) => ({ ...r }));
  if (config.hostsfile) {
    let text: string;
    try {
      text = await readFile(config.hostsfile, 'utf8');
    } catch (err) {
      logger.warn('cannot read hostsfile; no reservations from it', { file: config.hostsfile, error: (err as Error).message });
      return reservations;
    }
    const parsed = parseHostsfile(text, config.hostsfile, bridge.subnet);
    for (const p of parsed.problems) logger.warn('hostsfile problem', { file: p.file, line: p.line, problem: p.message });
    const taken = new Set(reservations.map((r) => r.mac));
    for (const r of parsed.reservations) if (!taken.has(r.mac)) reservations.push(r);
  }
  for (const r of reservations) {
    if (!subnetContains(bridge.subnet, r.address)) logger.warn('reservation outside the bridge subnet ignored', { mac: r.mac, address: formatIpv4(r.address) });
  }
  return reservations.filter((r) => subnetContains(bridge.subnet, r.address) && r.address !== bridge.gateway);
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
  let firewall: Firewall | undefined;
  let closing: Promise<void> | undefined;
  let started = false;

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
    bridge = await ensureBridge({
      name: config.bridge,
      ...(config.subnetCidr ? { wantedCidr: config.subnetCidr } : {}),
      defaultCidr: DEFAULT_SUBNET,
      ...(config.bridgeMac ? { mac: config.bridgeMac } : {}),
      logger,
    });
    await enableForwarding(config.bridge, logger);

    const range = config.dhcpRange ?? defaultDhcpRange(bridge.subnet, bridge.gateway);
    if (!subnetContains(bridge.subnet, range.start) || !subnetContains(bridge.subnet, range.end)) {
      throw new NatdError(ErrorCodes.CONFIG, `dhcpRange: ${describeRange(range)} is not inside the bridge subnet ${formatSubnet(bridge.subnet)}`);
    }

    mkdirSync(config.stateDir, { recursive: true, mode: 0o750 });
    store = await LeaseStore.open(config.stateDir, { logger, now });
    closers.push({ name: 'lease store', close: () => store?.close() });
    const restored = store.load(now());

    const reservations = await loadReservations(config, bridge, logger);
    const gateway = bridge.gateway;
    core = new DhcpServerCore(
      {
        serverAddress: gateway,
        subnet: bridge.subnet,
        router: gateway,
        dnsServers: config.dns ? [gateway] : [],
        ...(config.domain ? { domain: config.domain, searchDomains: [config.domain] } : {}),
        leaseTimeSeconds: config.leaseTimeSeconds,
        rangeStart: range.start,
        rangeEnd: range.end,
      },
      reservations,
    );
    core.restore(restored.leases, now());
    for (const d of restored.declined) core.leases.decline(d.address, d.until);
    logger.info('leases restored', { leases: restored.leases.length, range: describeRange(range) });

    if (config.dns) {
      const localNames = new LocalNames({ ...(config.domain ? { domain: config.domain } : {}), subnet: bridge.subnet, gatewayAddress: gateway });
      leaseNames = new LeaseNames(localNames);
      leaseNames.setReservations(reservations);
      leaseNames.restore(core.leases.all());
      await startDns(localNames);
    }

    const dhcpSocket = dgram.createSocket({ type: 'udp4' });
    await bindFd(dhcpSocket, openDeviceUdpSocket(config.bridge, '0.0.0.0', DHCP_SERVER_PORT, true));
    dhcp = new DhcpTransport({
      socket: dhcpSocket,
      bridge: config.bridge,
      core,
      commit: (changes) => store!.commit(changes),
      onCommitted: (changes) => leaseNames?.apply(changes),
      setNeighbour,
      logger,
      now,
    });
    dhcp.start();
    closers.push({ name: 'dhcp', close: () => dhcp?.close() });
    const sweep = setInterval(sweepExpired, EXPIRY_SWEEP_MS);
    sweep.unref();
    closers.push({ name: 'expiry sweep', close: () => clearInterval(sweep) });

    if (config.firewall) {
      firewall = new Firewall({ config, bridge, logger, resolveName: (name) => reservations.find((r) => r.hostname === name)?.address });
      await firewall.start();
      closers.push({ name: 'firewall', close: () => firewall?.close() });
    }
  }

  async function startDns(localNames: LocalNames): Promise<void> {
    const gatewayText = formatIpv4(bridge!.gateway);
    cache = new DnsCache({ maxEntries: config.cacheSize, now });
    upstream = new UpstreamClient({ servers: await upstreamsFrom(config, gatewayText, logger), logger, now });
    closers.push({ name: 'dns upstream', close: () => upstream?.close() });

    const udp = dgram.createSocket({ type: 'udp4' });
    await bindFd(udp, openDeviceUdpSocket(config.bridge, gatewayText, DNS_PORT));
    const tcp = net.createServer();
    await listenFd(tcp, openDeviceTcpListener(config.bridge, gatewayText, DNS_PORT));
    dns = new DnsServer({
      udp,
      tcp,
      subnet: bridge!.subnet,
      localNames,
      cache,
      upstream,
      ...(config.domain ? { domain: config.domain } : {}),
      logger,
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

  function sweepExpired(): void {
    if (!core) return;
    const expired = core.leases.sweepExpired(now(), 0);
    if (expired.length) leaseNames?.apply(expired.map((l) => ({ kind: 'release' as const, clientId: l.clientId, address: l.address })));
  }

  async function reload(newConfig?: Config): Promise<void> {
    if (!started || !bridge || !core) return;
    if (newConfig) config = newConfig;
    const reservations = await loadReservations(config, bridge, logger);
    core.setReservations(reservations);
    leaseNames?.setReservations(reservations);
    if (upstream && !config.upstreams.length) upstream.setServers(await upstreamsFrom(config, formatIpv4(bridge.gateway), logger));
    else if (upstream) upstream.setServers(config.upstreams.map((address) => ({ address })));
    await firewall?.reload(config, (name) => reservations.find((r) => r.hostname === name)?.address);
    logger.info('reloaded', { reservations: reservations.length });
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

  function status(): Record<string, unknown> {
    return {
      bridge: config.bridge,
      subnet: bridge ? formatSubnet(bridge.subnet) : undefined,
      gateway: bridge ? formatIpv4(bridge.gateway) : undefined,
      dhcp: { ...dhcp?.stats(), ...core?.stats() },
      dns: dns ? { ...dns.stats(), cache: cache?.stats(), cacheEntries: cache?.size, upstream: upstream?.stats() } : undefined,
      firewall: firewall?.status(),
    };
  }

  return { start, reload, close, status };
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
