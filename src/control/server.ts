/**
 * The daemon side of the control interface: a root-only unix socket (mode 0600) speaking one JSON request and
 * one JSON response per line. Handlers are plain async functions injected by the daemon, so this module knows
 * nothing about DHCP, DNS or nftables.
 */
import net from 'node:net';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';

export type ControlHandler = (args: Record<string, unknown>) => Promise<unknown> | unknown;

export interface ControlRequest {
  command: string;
  args?: Record<string, unknown>;
}

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; code?: string };

const MAX_REQUEST_BYTES = 64 * 1024;

export class ControlServer {
  private server: net.Server | undefined;
  /** open client connections: closing must not wait for an idle client (SIGTERM has to finish within seconds) */
  private readonly connections = new Set<net.Socket>();

  constructor(
    private readonly socketPath: string,
    private readonly handlers: Record<string, ControlHandler>,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    rmSync(this.socketPath, { force: true }); // a stale socket from a crashed run
    const server = net.createServer((conn) => this.serve(conn));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.socketPath, 0o600);
    server.on('error', (err) => this.logger.warn('control socket error', { error: err.message }));
    this.server = server;
  }

  private serve(conn: net.Socket): void {
    this.connections.add(conn);
    conn.once('close', () => this.connections.delete(conn));
    let buffered = '';
    conn.setEncoding('utf8');
    conn.setTimeout(10_000, () => conn.destroy());
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_REQUEST_BYTES) {
        conn.removeAllListeners('data');
        conn.end(JSON.stringify({ ok: false, error: 'request too large' }) + '\n');
        return;
      }
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      const line = buffered.slice(0, newline);
      conn.removeAllListeners('data');
      void this.answer(line).then((response) => conn.end(JSON.stringify(response) + '\n'));
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let request: ControlRequest;
    try {
      request = JSON.parse(line) as ControlRequest;
      if (typeof request.command !== 'string') throw new Error('no command');
    } catch {
      return { ok: false, error: 'malformed request' };
    }
    const handler = Object.hasOwn(this.handlers, request.command) ? this.handlers[request.command] : undefined;
    if (!handler) return { ok: false, error: `unknown command ${request.command}` };
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
