/**
 * The upstream client's TCP retry (RFC 7766 §6.1): a truncated UDP reply is asked again of the same server over a
 * fresh TCP connection, one framed exchange per connection.
 */
import net from 'node:net';
import type { Logger } from '../log.js';
import { FrameDecoder } from './tcp-framing.js';

/** A reply frame too short to hold a DNS header: it answers nothing, and the caller counts it as spoofed. */
const TOO_SHORT_REPLY = Buffer.alloc(0);

export interface TcpTarget {
  readonly address: string;
  readonly port: number;
  readonly label: string;
}

export class UpstreamTcp {
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly logger: Logger) {}

  /**
   * Sends `framed` (one message with its length prefix) and resolves with the first reply message, or an empty one
   * when the reply frame is too short for a DNS message; undefined on error, close or time-out. Never rejects.
   */
  exchange(server: TcpTarget, framed: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: server.address, port: server.port, noDelay: true });
      this.sockets.add(socket);
      const frames = new FrameDecoder();
      let settled = false;
      const settle = (reply: Buffer | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sockets.delete(socket);
        socket.destroy();
        resolve(reply);
      };
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      socket.on('connect', () => socket.write(framed));
      socket.on('data', (chunk: Buffer) => {
        frames.push(chunk);
        const reply = frames.next();
        if (reply !== 'incomplete') settle(reply === 'too-short' ? TOO_SHORT_REPLY : reply);
      });
      socket.on('error', (err) => {
        this.logger.warnLimited('dns-upstream-tcp', 'TCP query to upstream failed', { server: server.label, error: String(err) });
        settle(undefined);
      });
      socket.on('close', () => settle(undefined));
    });
  }

  /** Ends every exchange in flight (each resolves undefined as its socket closes). */
  close(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}
