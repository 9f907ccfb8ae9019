/**
 * The CLI side of the control interface: one request, one response, a clear error when no daemon listens.
 * `call()` is typed by the command table (protocol.ts); `callDaemon()` is the untyped wire call under it.
 */
import net from 'node:net';
import { CONTROL_TIMEOUT_MS } from '../defaults.js';
import { ErrorCodes, NatdError, type ErrorCode } from '../errors.js';
import type { ArgsOf, CommandName, ControlResponse, ResultOf } from './protocol.js';

/**
 * A streaming command (`leases --watch`): calls `onItem` for each line the daemon sends after its header; resolves
 * when the daemon closes the stream (it stopped), rejects when it refuses the command.
 */
export function watchDaemon(socketPath: string, command: string, args: Record<string, unknown>, onItem: (item: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socketPath);
    let buffered = '';
    let header: ControlResponse | { ok: true; stream: true } | undefined;
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify({ command, args }) + '\n'));
    conn.on('error', (err: NodeJS.ErrnoException) => reject(connectError(err, socketPath)));
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          conn.destroy();
          return reject(new NatdError(ErrorCodes.CONTROL, 'malformed answer from natd'));
        }
        if (header) {
          onItem(value);
          continue;
        }
        header = value as ControlResponse;
        if (!header.ok) {
          conn.destroy();
          return reject(new NatdError(knownCode(header.code) ?? ErrorCodes.CONTROL, header.error));
        }
      }
    });
    conn.on('end', () => resolve());
  });
}

function connectError(err: NodeJS.ErrnoException, socketPath: string): NatdError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return new NatdError(ErrorCodes.NO_DAEMON, `no daemon is running (no control socket at ${socketPath})`);
  if (err.code === 'EACCES') return new NatdError(ErrorCodes.CONTROL, `permission denied on ${socketPath}: run as root`);
  return new NatdError(ErrorCodes.CONTROL, `control socket ${socketPath}: ${err.message}`);
}

/** One command of the table, its arguments and its result typed by it. */
export function call<K extends CommandName>(socketPath: string, command: K, args: ArgsOf<K>, timeoutMs = CONTROL_TIMEOUT_MS): Promise<ResultOf<K>> {
  return callDaemon(socketPath, command, args, timeoutMs) as Promise<ResultOf<K>>;
}

export function callDaemon(socketPath: string, command: string, args: unknown = {}, timeoutMs = CONTROL_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socketPath);
    let buffered = '';
    conn.setEncoding('utf8');
    conn.setTimeout(timeoutMs, () => {
      conn.destroy();
      reject(new NatdError(ErrorCodes.CONTROL, `no answer from natd at ${socketPath} within ${timeoutMs} ms`));
    });
    conn.on('connect', () => conn.write(JSON.stringify({ command, args }) + '\n'));
    conn.on('data', (chunk: string) => (buffered += chunk));
    conn.on('error', (err: NodeJS.ErrnoException) => reject(connectError(err, socketPath)));
    conn.on('end', () => {
      let response: ControlResponse;
      try {
        response = JSON.parse(buffered) as ControlResponse;
      } catch {
        reject(new NatdError(ErrorCodes.CONTROL, 'malformed answer from natd'));
        return;
      }
      if (response.ok) resolve(response.result);
      // the daemon's own code decides the CLI's exit status (a refused config change is 78, not a control failure)
      else reject(new NatdError(knownCode(response.code) ?? ErrorCodes.CONTROL, response.error));
    });
  });
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));

/** The daemon's error code when it is one of ours; anything else (an older or newer daemon) is a control error. */
function knownCode(code: string | undefined): ErrorCode | undefined {
  return code !== undefined && KNOWN_CODES.has(code) ? (code as ErrorCode) : undefined;
}
