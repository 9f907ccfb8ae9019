/**
 * The daemon side of the control interface: a root-only unix socket speaking one JSON request and one JSON response
 * per line. Handlers are plain async functions injected by the daemon, so this module knows nothing about DHCP, DNS
 * or nftables.
 *
 * Two guards, each enough on its own: the socket file is 0600 from the moment it exists (bound inside a private
 * 0700 directory, chmod'ed there, then renamed into place, so no umask opens a window), and every connection's
 * peer credentials (SO_PEERCRED, recorded by the kernel at connect) must be uid 0 or natd's own uid, so a mode
 * loosened later by hand still lets nobody else in.
 */
import net from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CONTROL_TIMEOUT_MS } from '../defaults.js';
import { ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlRequest, ControlResponse } from './protocol.js';
import { peerCredentials, type PeerCredentials } from '../native.js';
import { ControlStream, serveStream, type StreamStats } from './stream.js';

/** One command's handler as the server calls it; the daemon's typed table is turned into these by validate.ts. */
export type ControlHandler = (args: unknown) => Promise<unknown> | unknown;

export type { ControlRequest, ControlResponse } from './protocol.js';

const MAX_REQUEST_BYTES = 64 * 1024;

/** How the server learns a connection's peer; undefined when it cannot tell (then the peer is refused). */
export type PeerLookup = (conn: net.Socket) => PeerCredentials | undefined;

/** The accepted connection's fd is on its libuv handle; Node has no public accessor for it. */
export const peerOfUnixSocket: PeerLookup = (conn) => {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return peerCredentials(fd);
  } catch {
    return undefined;
  }
};

/** Root, or the user natd runs as (a test or an unprivileged set-up), may use the socket. */
export function peerAllowed(peer: PeerCredentials | undefined, ownUid: number): boolean {
  return peer !== undefined && (peer.uid === 0 || peer.uid === ownUid);
}

export class ControlServer {
  private server: net.Server | undefined;
  /** open client connections: closing must not wait for an idle client (SIGTERM has to finish within seconds) */
  private readonly connections = new Set<net.Socket>();
  private refusedPeers = 0;
  private readonly streams: StreamStats = { watchers: 0, cutOff: 0 };

  constructor(
    private readonly socketPath: string,
    private readonly handlers: Record<string, ControlHandler>,
    private readonly logger: Logger,
    private readonly peerOf: PeerLookup = peerOfUnixSocket,
    private readonly ownUid: number = process.getuid?.() ?? 0,
  ) {}

  async start(): Promise<void> {
    const dir = path.dirname(this.socketPath);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // The socket never exists with a looser mode: chmod happens where nobody else can reach it (mkdtemp makes the
    // directory 0700), and the rename puts it in place atomically, replacing a stale socket from a crashed run.
    const privateDir = mkdtempSync(path.join(dir, '.natd-control-'));
    const staging = path.join(privateDir, 'sock');
    const server = net.createServer((conn) => this.serve(conn));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(staging, () => {
          server.off('error', reject);
          resolve();
        });
      });
      chmodSync(staging, 0o600);
      renameSync(staging, this.socketPath);
    } catch (err) {
      server.close();
      throw err;
    } finally {
      rmSync(privateDir, { recursive: true, force: true });
    }
    server.on('error', (err) => this.logger.warn('control socket error', { error: err.message }));
    this.server = server;
  }

  /** Peers refused by the credential check since start (status and metrics). */
  stats(): { refusedPeers: number; watchers: number; watchersCutOff: number } {
    return { refusedPeers: this.refusedPeers, watchers: this.streams.watchers, watchersCutOff: this.streams.cutOff };
  }

  private serve(conn: net.Socket): void {
    const peer = this.peerOf(conn);
    if (!peerAllowed(peer, this.ownUid)) {
      this.refusedPeers++;
      this.logger.warnLimited('control-refused', 'control socket: refused a peer', {
        ...(peer ? { uid: peer.uid, pid: peer.pid } : { uid: 'unknown' }),
        refused: this.refusedPeers,
      });
      conn.on('error', () => conn.destroy());
      const refusal = { ok: false, error: 'permission denied: the control socket serves root only', code: 'EACCES' };
      conn.end(JSON.stringify(refusal) + '\n', () => conn.destroy());
      return;
    }
    this.connections.add(conn);
    conn.once('close', () => this.connections.delete(conn));
    let buffered = '';
    conn.setEncoding('utf8');
    conn.setTimeout(CONTROL_TIMEOUT_MS, () => conn.destroy());
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_REQUEST_BYTES) {
        conn.removeAllListeners('data');
        conn.end(JSON.stringify({ ok: false, error: 'request too large', code: ErrorCodes.CONTROL }) + '\n');
        return;
      }
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      const line = buffered.slice(0, newline);
      conn.removeAllListeners('data');
      void this.answer(line).then((response) => {
        if (response.ok && response.result instanceof ControlStream) serveStream(conn, response.result, this.streams);
        else conn.end(JSON.stringify(response) + '\n');
      });
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let request: ControlRequest;
    try {
      request = JSON.parse(line) as ControlRequest;
      if (request === null || typeof request !== 'object' || typeof request.command !== 'string') throw new Error('no command');
    } catch {
      return { ok: false, error: 'malformed request: expected {"command": NAME, "args": {...}}', code: ErrorCodes.CONTROL };
    }
    const handler = Object.hasOwn(this.handlers, request.command) ? this.handlers[request.command] : undefined;
    if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(request.command.slice(0, 80))}`, code: ErrorCodes.COMMAND };
    try {
      return { ok: true, result: await handler(request.args ?? {}) };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      return { ok: false, error: (err as Error).message, ...(typeof code === 'string' ? { code } : {}) };
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const conn of this.connections) conn.destroy();
    await closed;
    rmSync(this.socketPath, { force: true });
  }
}
