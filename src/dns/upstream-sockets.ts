/**
 * The upstream client's UDP sockets (see upstream.ts for why these two kinds): sockets of the addon connected to one
 * IPv4 server each, all read by one receiver group, and unconnected dgram sockets shared by every server of an
 * address family. Both report replies, in place, to a SocketOwner.
 */
import dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import { errnoName, UDP_GROUP_ERROR, UDP_GROUP_TRUNCATED, udpClient, type UdpGroupHandle } from '../native.js';
import { NOT_IPV4 } from '../net/ipv4.js';
import { setId } from './wire.js';

/** What a socket needs to know of the server it sends to. */
export interface SocketTarget {
  readonly address: string;
  readonly port: number;
  /** how logs name it */
  readonly label: string;
  /** the pool its sockets belong to: its own pool of connected sockets, or its family's shared dgram pool */
  readonly pool: PooledSocket[];
}

/** One socket of a pool. Replies go to the client's onReply; `keep` turns a reply accepted there into a Buffer. */
export interface PooledSocket {
  readonly pool: PooledSocket[];
  uses: number;
  inFlight: number;
  retired: boolean;
  send(raw: Uint8Array, id: number, server: SocketTarget): void;
  keep(buf: Buffer, start: number, length: number): Buffer;
  close(): void;
}

/** What a pooled socket reports to its client. */
export interface SocketOwner {
  /** `pooled` undefined: a datagram for a socket closed since it arrived (a late reply) */
  onReply(pooled: PooledSocket | undefined, buf: Buffer, start: number, length: number, address: number | string, port: number): void;
  onSendError(server: SocketTarget, error: string): void;
  /** a socket that cannot be used any more (dgram error) */
  onSocketError(pooled: PooledSocket, error: string): void;
  /** an error the kernel reported on a connected socket: an ICMP unreachable for an earlier query */
  onReceiveError(server: SocketTarget, error: string): void;
  /** the addon's receiver group reported a poll error (see BatchCallback) */
  onGroupPollError(detail: string): void;
}

/** Receive slots of the addon's sockets: a whole UDP datagram fits (replies are as large as the client allows). */
const RECEIVE_SLOT = 65_536;
/** Replies handed to JS at most per call, from all of a client's addon sockets. The slab is mostly untouched
 * address space: only the pages replies land in are ever backed by memory. */
const RECEIVE_BATCH = 64;

/**
 * The addon's receiver for all of a client's IPv4 sockets (native/udp_client.c): one epoll set, one JS call per
 * wakeup for the replies of every socket. Each socket is known to it by a tag that is never reused (until 2^31
 * sockets later), so a datagram read before its socket closed cannot be taken for one of a newer socket.
 */
export class NativeSocketGroup {
  // allocUnsafeSlow: a buffer of its own (not a slice of Node's shared pool), as the addon holds on to it
  private readonly slab = Buffer.allocUnsafeSlow(RECEIVE_SLOT * RECEIVE_BATCH);
  private readonly meta = new Uint32Array(4 * RECEIVE_BATCH);
  private readonly handle: UdpGroupHandle;
  private readonly byTag = new Map<number, NativeUpstreamSocket>();
  private nextTag = 0;
  private stopped = false;

  constructor(readonly owner: SocketOwner) {
    this.handle = udpClient.groupStart(this.slab, this.meta, RECEIVE_SLOT, this.onBatch);
  }

  open(server: SocketTarget): NativeUpstreamSocket {
    const fd = udpClient.open(server.address, server.port);
    const tag = this.nextTag;
    try {
      udpClient.groupAdd(this.handle, fd, tag);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.nextTag = (tag + 1) & 0x7fff_ffff;
    const socket = new NativeUpstreamSocket(this, fd, tag, server);
    this.byTag.set(tag, socket);
    return socket;
  }

  close(socket: NativeUpstreamSocket): void {
    if (this.byTag.get(socket.tag) !== socket) return;
    this.byTag.delete(socket.tag);
    udpClient.groupRemove(this.handle, socket.fd); // closes the fd
  }

  /** After every socket was closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    udpClient.groupStop(this.handle);
  }

  private readonly onBatch = (count: number, rearmed?: boolean): void => {
    const { slab, meta, owner } = this;
    if (count < 0) {
      owner.onGroupPollError(`${errnoName(-count)}; ${rearmed ? 'still receiving' : 'receiving STOPPED after repeated errors'}`);
      return;
    }
    for (let i = 0; i < count; i++) {
      const length = meta[4 * i]!;
      const socket = this.byTag.get(meta[4 * i + 3]!);
      if (length === UDP_GROUP_ERROR) {
        if (socket) owner.onReceiveError(socket.server, errnoName(meta[4 * i + 1]!));
      } else if (length === UDP_GROUP_TRUNCATED) {
        owner.onReply(socket, slab, 0, 0, NOT_IPV4, 0); // larger than a slot cannot happen over IPv4: matches nothing
      } else {
        owner.onReply(socket, slab, i * RECEIVE_SLOT, length, meta[4 * i + 1]!, meta[4 * i + 2]!);
      }
    }
  };
}

/** A socket of the addon connected to one IPv4 server, read by the client's NativeSocketGroup. */
class NativeUpstreamSocket implements PooledSocket {
  readonly pool: PooledSocket[];
  uses = 0;
  inFlight = 0;
  retired = false;

  constructor(
    private readonly group: NativeSocketGroup,
    readonly fd: number,
    readonly tag: number,
    readonly server: SocketTarget,
  ) {
    this.pool = server.pool;
  }

  send(raw: Uint8Array, id: number, server: SocketTarget): void {
    const errno = udpClient.sendQuery(this.fd, raw, id);
    if (errno > 0) this.group.owner.onSendError(server, errnoName(errno));
    else if (errno < 0) this.group.owner.onReceiveError(server, errnoName(-errno)); // sent; an earlier one was refused
  }

  keep(buf: Buffer, start: number, length: number): Buffer {
    const copy = Buffer.allocUnsafe(length);
    buf.copy(copy, 0, start, start + length);
    return copy;
  }

  close(): void {
    this.group.close(this);
  }
}

/** An unconnected dgram socket on a random port, shared by every server of its address family. */
export class DgramUpstreamSocket implements PooledSocket {
  uses = 0;
  inFlight = 0;
  retired = false;
  private readonly socket: dgram.Socket;

  constructor(private readonly owner: SocketOwner, family: 4 | 6, readonly pool: PooledSocket[]) {
    this.socket = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    this.socket.on('message', (msg, rinfo) => owner.onReply(this, msg, 0, msg.length, rinfo.address, rinfo.port));
    this.socket.on('error', (err) => owner.onSocketError(this, String(err)));
    // port 0: the kernel picks a random ephemeral port; sends issued before the bind completes are queued by Node
    this.socket.bind({ port: 0, address: family === 4 ? '0.0.0.0' : '::' });
  }

  send(raw: Uint8Array, id: number, server: SocketTarget): void {
    const message = Buffer.from(raw);
    setId(message, id);
    this.socket.send(message, server.port, server.address, (err) => {
      if (err) this.owner.onSendError(server, String(err));
    });
  }

  keep(buf: Buffer): Buffer {
    return buf; // dgram gave this datagram a Buffer of its own
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
