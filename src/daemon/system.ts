/**
 * Everything the daemon does to the host, behind functions a test can replace: the bridge and sysctl step, the
 * sockets, the nft binary, the neighbour table, the conflict probe, systemd-resolved and sd_notify. The defaults
 * here are the real ones; test/unit/daemon.test.ts runs the daemon with fakes for all of them.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../log.js';
import { ensureBridge, readBridgeCidr, type BridgeInfo } from '../net/bridge.js';
import { enableForwarding } from '../net/sysctl.js';
import { openArpSocket, openDeviceTcpListener, openDeviceUdpSocket, sdNotify, setNeighbour, socketDrops } from '../native.js';
import { pingProbe } from '../dhcp/probe.js';
import { chooseConflictProbe, type ConflictProbeChoice } from '../dhcp/arp-probe.js';
import { BatchUdpTransport, type DnsUdpTransport } from '../dns/udp-transport.js';
import { BatchUdp6Transport } from '../dns/udp6-transport.js';
import type { NftExec } from '../nft/runner.js';
import { registerWithResolved, type ResolvedRegistration } from './resolved.js';
// issue 14: IPv6 for the guests
import { setUpIpv6Host } from '../ipv6/host.js';
import type { Ipv6Served } from '../ipv6/settings.js';
import { readMachineId } from '../ipv6/ula.js';
import type { RaSocket } from '../ipv6/ra-server.js';
import { raGuard, type RaGuard } from '../ipv6/ra-guard.js';
import { openIcmp6Socket } from '../native.js';
import { readFileSync } from 'node:fs';
import { openDeviceUdp6Socket } from '../native.js';
import { ALL_DHCP_SERVERS, DHCP6_SERVER_PORT, type Dhcp6Port } from '../dhcp6/transport.js';

const DHCP_SERVER_PORT = 67;
const DNS_PORT = 53;

/** The bridge and sysctl step (ip link/addr and /proc/sys). */
export interface BridgeSetup {
  /** the bridge's current address with prefix, if it exists and has one */
  readCidr(name: string): Promise<string | undefined>;
  ensure(opts: { name: string; wantedCidr?: string; defaultCidr: string; mac?: string; mtu?: number; logger: Logger }): Promise<BridgeInfo>;
  enableForwarding(bridge: string, logger: Logger): Promise<void>;
}

/** Opens the sockets natd serves on; each returned object is owned (and closed) by the daemon. */
export interface DaemonSockets {
  /** 0.0.0.0:67 bound to the bridge, zero UDP checksum, broadcast allowed (the daemon's: batched, as DNS) */
  openDhcp(bridge: string): Promise<dgram.Socket | DnsUdpTransport>;
  /** gateway:53 bound to the bridge (issue 14: the IPv6 gateway too) */
  openDnsUdp(bridge: string, address: string): DnsUdpTransport;
  openDnsTcp(bridge: string, address: string): Promise<net.Server>;
  /** datagrams the kernel dropped at the UDP sockets opened here (a full receive buffer), by socket */
  kernelDrops(): Record<string, number>;
  /** issue 16: address:port bound to the bridge for the TFTP server (69, or 0 for a transfer's ephemeral port) */
  openTftp?(bridge: string, address: string, port: number): Promise<dgram.Socket>;
  /** issue 14: [::]:547 bound to the bridge, joined to ff02::1:2 there (the DHCPv6 server) */
  openDhcp6?(bridge: string): Promise<dgram.Socket | Dhcp6Port>;
}

export interface DaemonSystem {
  now: () => number;
  bridgeSetup: BridgeSetup;
  sockets: DaemonSockets;
  /** runs nft for the firewall (runner.ts); undefined: the real nft binary */
  nftExec: NftExec | undefined;
  setNeighbour(device: string, address: string, mac: string): void;
  /** the conflict probe on this bridge: ARP from the addon, ping when no packet socket can be opened (arp-probe.ts) */
  conflictProbe(opts: { bridge: string; gateway: number; timeoutMs: number; logger: Logger }): ConflictProbeChoice;
  registerDns(opts: { bridge: string; address: string; domain?: string; logger: Logger }): Promise<ResolvedRegistration>;
  /** sd_notify(3) */
  notify(state: string): void;
  /** issue 14: the IPv6 host step (gateway address on the bridge, accept_ra=2 where needed, forwarding) */
  ipv6Host(bridge: string, served: Ipv6Served, logger: Logger): Promise<void>;
  /** issue 14: the Router Solicitation / Advertisement socket on the bridge (native/icmp6_socket.c) */
  openRaSocket(bridge: string, onSolicitation: (data: Buffer, source: Buffer, hopLimit: number) => void, logger: Logger): RaSocket;
  /** issue 14: the RA guard's bridge-family table (ipv6/ra-guard.ts) */
  raGuard(bridge: string): RaGuard;
  /** issue 14: the bridge's MTU (the RA's MTU option), undefined when unreadable */
  linkMtu(bridge: string): number | undefined;
  /** issue 14: the host's machine-id (the ULA of --ipv6 auto is derived from it), undefined when unreadable */
  machineId(): string | undefined;
  /** issue 14: the bridge's IPv6 neighbour table as `ip -6 neigh show dev <bridge>` prints it (default: runs ip) */
  readNeighbours?(bridge: string): Promise<string>;
}

export const realBridgeSetup: BridgeSetup = {
  readCidr: (name) => readBridgeCidr(name),
  ensure: (opts) => ensureBridge(opts),
  enableForwarding,
};

export function realSockets(): DaemonSockets {
  /** the DHCP and DNS sockets' fds, for the kernel's drop counts */
  const udpFds: Record<string, number> = {};
  return {
    // issue 18: batched through the addon like DNS (recvmmsg/sendmmsg, one JS call per batch of requests)
    async openDhcp(bridge) {
      udpFds.dhcp = openDeviceUdpSocket(bridge, '0.0.0.0', DHCP_SERVER_PORT, true, true);
      return new BatchUdpTransport(udpFds.dhcp, 'DHCP');
    },
    // batched recvmmsg/sendmmsg through the addon: cache hits cost half the CPU they cost through dgram
    openDnsUdp(bridge, address) {
      // issue 15: --listen-address sockets (on lo) are counted under their own name
      const v6 = address.includes(':'); // issue 14: the IPv6 gateway's socket, counted as dns6
      const name = bridge === 'lo' ? `dns-${address}` : v6 ? 'dns6' : 'dns';
      const fd = (udpFds[name] = openDeviceUdpSocket(bridge, address, DNS_PORT));
      return v6 ? new BatchUdp6Transport(fd) : new BatchUdpTransport(fd);
    },
    async openDnsTcp(bridge, address) {
      const tcp = net.createServer();
      await listenFd(tcp, openDeviceTcpListener(bridge, address, DNS_PORT));
      return tcp;
    },
    // issue 16: the TFTP server's port 69 and each transfer's ephemeral port, bound to the bridge like DNS
    async openTftp(bridge, address, port) {
      const socket = dgram.createSocket({ type: 'udp4' });
      const fd = openDeviceUdpSocket(bridge, address, port);
      if (port !== 0) udpFds.tftp = fd;
      await bindFd(socket, fd);
      return socket;
    },
    // issue 14: DHCPv6 (native/udp6_socket.c binds to the bridge and joins ff02::1:2), batched through the addon
    // like DHCPv4 and DNS (recvmmsg/sendmmsg, one JS call per batch of requests)
    async openDhcp6(bridge) {
      udpFds.dhcp6 = openDeviceUdp6Socket(bridge, DHCP6_SERVER_PORT, ALL_DHCP_SERVERS);
      return new BatchUdp6Transport(udpFds.dhcp6, 'DHCPv6');
    },
    kernelDrops() {
      const drops: Record<string, number> = {};
      for (const [name, fd] of Object.entries(udpFds)) {
        try {
          drops[name] = socketDrops(fd);
        } catch {
          /* closed meanwhile */
        }
      }
      return drops;
    },
  };
}

export function realSystem(): DaemonSystem {
  return {
    now: Date.now,
    bridgeSetup: realBridgeSetup,
    sockets: realSockets(),
    nftExec: undefined,
    setNeighbour,
    conflictProbe: ({ bridge, gateway, timeoutMs, logger }) =>
      chooseConflictProbe({
        timeoutMs,
        openArp: (onSender) =>
          openArpSocket(bridge, gateway, onSender, (detail) => logger.warnLimited('dhcp-arp-poll', `ARP probe socket reported ${detail}`)),
        ping: () => pingProbe({ device: bridge, timeoutMs }),
        onFallback: (reason) => logger.warn('cannot open the ARP probe socket; probing with ping instead', { reason }),
      }),
    registerDns: (opts) => registerWithResolved(opts),
    notify: (state) => void sdNotify(state),
    // issue 14
    ipv6Host: (bridge, served, logger) => setUpIpv6Host(bridge, served, logger),
    machineId: () => readMachineId(),
    openRaSocket: (bridge, onSolicitation, logger) =>
      openIcmp6Socket(bridge, onSolicitation, (detail) => logger.warnLimited('ipv6-ra-poll', `router solicitation socket reported ${detail}`)),
    raGuard: (bridge) => raGuard(bridge),
    linkMtu: (bridge) => {
      try {
        return Number(readFileSync(`/sys/class/net/${bridge}/mtu`, 'utf8').trim()) || undefined;
      } catch {
        return undefined;
      }
    },
  };
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
