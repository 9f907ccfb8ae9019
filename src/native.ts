/**
 * Typed access to natd's N-API addon (native/natd_native.c). Errors from the addon carry an errno `code`; they are
 * turned into NatdError here with a message an operator can act on.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes, NatdError } from './errors.js';

interface NativeAddon {
  openUdpSocket(device: string, address: string, port: number, noChecksum?: boolean, broadcast?: boolean): number;
  openTcpListener(device: string, address: string, port: number, backlog?: number): number;
  setNeighbour(device: string, address: string, mac: string): void;
  sdNotify(state: string): boolean;
  udpReceiverStart(fd: number, slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: BatchCallback): UdpReceiverHandle;
  udpReceiverStop(handle: UdpReceiverHandle): void;
  udpSendBatch(fd: number, datagrams: Buffer[], meta: Uint32Array, count: number): { failed: number; errno: number } | undefined;
  /** issue 14: as udpSendBatch for an IPv6 socket, meta (4 address words, port) per datagram */
  udpSendBatch6(fd: number, datagrams: Buffer[], meta: Uint32Array, count: number): { failed: number; errno: number } | undefined;
  openUdpClientSocket(address: string, port: number): number;
  udpSendQuery(fd: number, query: Uint8Array, id: number): number;
  udpGroupStart(slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: BatchCallback): UdpGroupHandle;
  udpGroupAdd(handle: UdpGroupHandle, fd: number, tag: number): void;
  udpGroupRemove(handle: UdpGroupHandle, fd: number): void;
  udpGroupStop(handle: UdpGroupHandle): void;
  getPeerCredentials(fd: number): PeerCredentials;
  arpProbeOpen(device: string, senderIp: number, out: Uint32Array, onSenders: BatchCallback): ArpProbeHandle;
  arpProbeSend(handle: ArpProbeHandle, targets: Uint32Array, count: number): number;
  arpProbeClose(handle: ArpProbeHandle): void;
  socketDrops(fd: number): number;
  // issue 14: native/icmp6_socket.c
  icmp6Open(device: string, onPacket: (data: Buffer | number, source?: Buffer | boolean, hopLimit?: number) => void): Icmp6Handle;
  icmp6Send(handle: Icmp6Handle, destination: Buffer, message: Buffer): number;
  icmp6Close(handle: Icmp6Handle): void;
  // issue 14: native/udp6_socket.c (DHCPv6)
  openUdp6Socket(device: string, port: number, group?: string): number;
  // issue 18: native/journal_writer.c (absent from an addon built before it: the journal falls back to node:fs)
  journalWriterOpen?(fd: number): JournalWriterHandle;
  journalWriterSubmit(handle: JournalWriterHandle, data: Buffer, replies: Buffer[] | undefined, meta: Uint32Array | undefined, done: JournalBatchDone): void;
  journalWriterReset(handle: JournalWriterHandle, fd: number): void;
  journalWriterClose(handle: JournalWriterHandle): void;
}

/** issue 18: opaque handle of the lease journal's writer thread (an N-API external). */
export type JournalWriterHandle = { readonly __journalWriter: unique symbol };

/**
 * issue 18: a journal batch's outcome, on the loop, in submission order: errno 0 when its lines (and every line before
 * them) are fdatasync'd; syncMicros the write + fdatasync of its group (0 unless it is the group's first batch, so a
 * sum over batches counts each sync once); waitMicros from submission until its replies left (or it was durable);
 * replyErrnos per reply (0: sent), only when errno is 0 and the batch had replies.
 */
export type JournalBatchDone = (errno: number, syncMicros: number, waitMicros: number, replyErrnos: number[] | undefined) => void;

/** issue 14: opaque handle of the router-advertisement ICMPv6 socket (an N-API external). */
export type Icmp6Handle = { readonly __icmp6: unique symbol };

/** Opaque handle of an ARP probe socket (an N-API external). */
export type ArpProbeHandle = { readonly __arpProbe: unique symbol };

/** Who is on the other end of a connected unix socket, as the kernel recorded it at connect() (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * count >= 0: that many entries are ready. count < 0: the poll reported an error (a negative errno; libuv stops a
 * handle on POLLERR) and `rearmed` says whether receiving goes on (false: it stopped, after many errors in a row).
 */
export type BatchCallback = (count: number, rearmed?: boolean) => void;

/** Opaque handle of a running batch receiver (an N-API external). */
export type UdpReceiverHandle = { readonly __udpReceiver: unique symbol };
/** Opaque handle of a receiver group (an N-API external). */
export type UdpGroupHandle = { readonly __udpGroup: unique symbol };

let addon: NativeAddon | undefined;

function findProjectRoot(): string {
  // dist/src/native.js or src/native.ts (vitest): walk up to the folder holding native/
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    dir = path.dirname(dir);
    const candidate = path.join(dir, 'native', 'build', 'Release', 'natd_native.node');
    try {
      createRequire(import.meta.url).resolve(candidate);
      return dir;
    } catch {
      /* keep walking */
    }
  }
  throw new NatdError(ErrorCodes.NATIVE, 'native addon not built: run `npm ci` (it builds native/ with node-gyp)');
}

export function loadNative(): NativeAddon {
  if (!addon) {
    const root = findProjectRoot();
    addon = createRequire(import.meta.url)(path.join(root, 'native', 'build', 'Release', 'natd_native.node')) as NativeAddon;
  }
  return addon;
}

function explain(err: unknown, what: string, device: string): NatdError {
  const code = (err as { code?: string }).code;
  const detail = (err as Error).message;
  let hint: string;
  switch (code) {
    case 'ENODEV': hint = `interface ${device} does not exist`; break;
    case 'EPERM':
    case 'EACCES': hint = 'permission denied: natd needs CAP_NET_RAW (bind to device) and CAP_NET_BIND_SERVICE'; break;
    case 'EADDRINUSE': hint = 'address already in use: another DHCP/DNS server (dnsmasq?) holds it on this interface'; break;
    case 'EADDRNOTAVAIL': hint = `the address is not configured on ${device}`; break;
    default: hint = detail;
  }
  return new NatdError(ErrorCodes.BIND, `cannot open ${what} on ${device}: ${hint}`, { cause: err });
}

/** `broadcast`: SO_BROADCAST (DHCP only; the DNS socket must never send to a broadcast address). */
export function openDeviceUdpSocket(device: string, address: string, port: number, noChecksum = false, broadcast = false): number {
  try {
    return loadNative().openUdpSocket(device, address, port, noChecksum, broadcast);
  } catch (err) {
    if (err instanceof NatdError) throw err;
    throw explain(err, `UDP ${address}:${port}`, device);
  }
}

export function openDeviceTcpListener(device: string, address: string, port: number, backlog = 128): number {
  try {
    return loadNative().openTcpListener(device, address, port, backlog);
  } catch (err) {
    if (err instanceof NatdError) throw err;
    throw explain(err, `TCP ${address}:${port}`, device);
  }
}

export function setNeighbour(device: string, address: string, mac: string): void {
  loadNative().setNeighbour(device, address, mac);
}

/** Sends a state to systemd's notify socket; false when not started by systemd. */
/** SO_PEERCRED of a connected unix socket's fd; throws the addon's errno error (EBADF, ENOTSOCK, …). */
export function peerCredentials(fd: number): PeerCredentials {
  return loadNative().getPeerCredentials(fd);
}

export function sdNotify(state: string): boolean {
  return loadNative().sdNotify(state);
}

/**
 * Batched UDP I/O (native/udp_batch.c), for the DNS socket. The receiver takes the fd over (stop closes it) and
 * calls onBatch(count) once per recvmmsg() with slot i of `slab` holding datagram i and meta[3i..3i+2] its length,
 * source address (IPv4 as a number) and port; a length of 0xffffffff marks a datagram that did not fit its slot.
 * sendBatch sends datagrams[i] to (meta[2i], meta[2i+1]) for i < count with sendmmsg(); it reports how many could
 * not be sent and why.
 */
export const udpBatch = {
  start: (fd: number, slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: BatchCallback): UdpReceiverHandle =>
    loadNative().udpReceiverStart(fd, slab, meta, slotSize, onBatch),
  stop: (handle: UdpReceiverHandle): void => loadNative().udpReceiverStop(handle),
  send: (fd: number, datagrams: Buffer[], meta: Uint32Array, count: number): { failed: number; errno: number } | undefined =>
    loadNative().udpSendBatch(fd, datagrams, meta, count),
  /** issue 14: an IPv6 socket's receiver fills meta[6i..6i+5] = (length, port, 4 address words); send6 takes 5 words
   * (4 address words, port) per datagram */
  send6: (fd: number, datagrams: Buffer[], meta: Uint32Array, count: number): { failed: number; errno: number } | undefined =>
    loadNative().udpSendBatch6(fd, datagrams, meta, count),
};

/**
 * The forwarder's upstream sockets (native/udp_client.c).
 * - open: a UDP socket connected to an IPv4 server from a random ephemeral port.
 * - sendQuery: sends `query` with its id replaced by `id` (the buffer is not changed). 0: sent; a positive errno: not
 *   sent; a negative errno: sent, after the socket reported that error for an earlier datagram (an ICMP error).
 * - groupStart/Add/Remove/Stop: one receiver for many such sockets. Each wakeup reads every ready socket, then calls
 *   onBatch(count) once: entry i is meta[4i..4i+3] = (length, source address as a number, source port, the tag the
 *   socket was added with), its bytes in slot i of `slab`. A length of UDP_GROUP_TRUNCATED marks a datagram that
 *   did not fit its slot, UDP_GROUP_ERROR a receive error (its errno in the address field, e.g. ECONNREFUSED after an
 *   ICMP port unreachable). add hands the fd over; remove closes it; stop does not close member fds.
 */
export const UDP_GROUP_TRUNCATED = 0xffff_ffff;
export const UDP_GROUP_ERROR = 0xffff_fffe;
export const udpClient = {
  open: (address: string, port: number): number => loadNative().openUdpClientSocket(address, port),
  sendQuery: (fd: number, query: Uint8Array, id: number): number => loadNative().udpSendQuery(fd, query, id),
  groupStart: (slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: BatchCallback): UdpGroupHandle =>
    loadNative().udpGroupStart(slab, meta, slotSize, onBatch),
  groupAdd: (handle: UdpGroupHandle, fd: number, tag: number): void => loadNative().udpGroupAdd(handle, fd, tag),
  groupRemove: (handle: UdpGroupHandle, fd: number): void => loadNative().udpGroupRemove(handle, fd),
  groupStop: (handle: UdpGroupHandle): void => loadNative().udpGroupStop(handle),
};

/**
 * issue 18: the lease journal's writer thread (native/journal_writer.c): batches submitted to it are appended to `fd`
 * in order, each group of queued batches with one writev + fdatasync, and the replies a batch carries (IPv4 UDP:
 * fd, address, port per reply in `meta`) are sent from that thread once it is durable. undefined when the addon is
 * not built or predates it (the journal then uses node:fs).
 */
export interface JournalWriter {
  submit(data: Buffer, replies: Buffer[] | undefined, meta: Uint32Array | undefined, done: JournalBatchDone): void;
  /** after a failure was rolled back, or compaction reopened the journal; only with nothing outstanding */
  reset(fd: number): void;
  /** only with nothing outstanding; the fd stays open */
  close(): void;
}

export function openJournalWriter(fd: number): JournalWriter | undefined {
  let native: NativeAddon;
  try {
    native = loadNative();
  } catch {
    return undefined;
  }
  if (typeof native.journalWriterOpen !== 'function') return undefined;
  const handle = native.journalWriterOpen(fd);
  return {
    submit: (data, replies, meta, done) => native.journalWriterSubmit(handle, data, replies, meta, done),
    reset: (newFd) => native.journalWriterReset(handle, newFd),
    close: () => native.journalWriterClose(handle),
  };
}

/** The name of an errno the addon returned (ECONNREFUSED...), for log lines. */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** Senders reported per callback at most (the addon calls again for the rest). */
const ARP_SENDER_BATCH = 256;

/**
 * The ARP conflict probe's packet socket on `device` (native/arp_probe.c), as dhcp/arp-probe.ts wants it: requests
 * "who-has X tell senderIp", and every other host's ARP sender reported to `onSender`. Throws the addon's errno
 * error (EPERM without CAP_NET_RAW, EAFNOSUPPORT where AF_PACKET is filtered, ENODEV).
 */
export function openArpSocket(
  device: string,
  senderIp: number,
  onSender: (address: number, mac: string) => void,
  /** the socket reported an error (poll status); `detail` says whether receiving goes on */
  onPollError: (detail: string) => void = () => {},
): { send(targets: Uint32Array, count: number): number; close(): void } {
  const native = loadNative();
  const out = new Uint32Array(ARP_SENDER_BATCH * 3);
  const handle = native.arpProbeOpen(device, senderIp >>> 0, out, (count, rearmed) => {
    if (rearmed !== undefined) {
      onPollError(`${errnoName(-count)}; ${rearmed ? 'still receiving' : 'receiving STOPPED after repeated errors'}`);
      return;
    }
    for (let i = 0; i < count; i++) {
      const high = out[3 * i + 1]!;
      const low = out[3 * i + 2]!;
      const mac = [high >>> 8, high & 0xff, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff]
        .map((b) => b.toString(16).padStart(2, '0')).join(':');
      onSender(out[3 * i]!, mac);
    }
  });
  let closed = false;
  return {
    send: (targets, count) => native.arpProbeSend(handle, targets, count),
    close: () => {
      if (closed) return;
      closed = true;
      native.arpProbeClose(handle);
    },
  };
}

/** Datagrams the kernel dropped for this socket since it opened (SO_MEMINFO; a full receive buffer, mostly). */
export function socketDrops(fd: number): number {
  return loadNative().socketDrops(fd);
}

/** issue 14: the Router Solicitation / Advertisement socket on a bridge (native/icmp6_socket.c). */
export interface Icmp6Socket {
  /** sends one ICMPv6 message to `destination` (16 bytes) on the bridge; throws the errno error */
  send(destination: Uint8Array, message: Buffer): void;
  close(): void;
}

/**
 * issue 14: a raw ICMPv6 socket on `device` that passes only Router Solicitations (kernel filter), each handed to
 * onSolicitation with its source address and the hop limit it arrived with. Throws the addon's errno error (EPERM
 * without CAP_NET_RAW, ENODEV).
 */
export function openIcmp6Socket(
  device: string,
  onSolicitation: (data: Buffer, source: Buffer, hopLimit: number) => void,
  onPollError: (detail: string) => void = () => {},
): Icmp6Socket {
  const native = loadNative();
  const handle = native.icmp6Open(device, (data, source, hopLimit) => {
    if (typeof data === 'number') {
      onPollError(`${errnoName(-data)}; ${source ? 'still receiving' : 'receiving STOPPED after repeated errors'}`);
      return;
    }
    onSolicitation(data, source as Buffer, hopLimit ?? -1);
  });
  let closed = false;
  return {
    send: (destination, message) => void native.icmp6Send(handle, Buffer.from(destination), message),
    close: () => {
      if (closed) return;
      closed = true;
      native.icmp6Close(handle);
    },
  };
}

/**
 * issue 14: a UDP socket on [::]:port bound to `device` (SO_BINDTODEVICE), IPv6 only, joined to `group` on it (the
 * DHCPv6 server socket: port 547, ff02::1:2); the fd is for a dgram 'udp6' socket. Throws a NatdError naming the cause.
 */
export function openDeviceUdp6Socket(device: string, port: number, group?: string): number {
  try {
    return loadNative().openUdp6Socket(device, port, group);
  } catch (err) {
    if (err instanceof NatdError) throw err;
    throw explain(err, `UDP [::]:${port}${group ? ` (group ${group})` : ''}`, device);
  }
}
