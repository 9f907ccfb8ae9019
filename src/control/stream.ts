/**
 * Streaming answers on the control socket (`natd leases --watch`): a handler returns a ControlStream instead of a
 * value; the server then writes `{"ok":true,"stream":true}` and one JSON line per item until either side closes.
 *
 * A watcher that does not read is cut off, never buffered for: once more than MAX_BACKLOG_BYTES wait in the
 * connection's write buffer the connection is destroyed (the client sees the stream end early and can reconnect).
 */
import type net from 'node:net';

export const MAX_BACKLOG_BYTES = 1024 * 1024;

/** Starts sending; returns the function that stops (called once, when the connection closes). */
export type StreamStart = (send: (item: unknown) => void) => () => void;

export class ControlStream {
  constructor(readonly start: StreamStart) {}
}

export interface StreamStats {
  /** watchers connected now */
  watchers: number;
  /** watchers cut off because they did not read */
  cutOff: number;
}

/** Serves one stream on an accepted connection; `stats` is updated in place. */
export function serveStream(conn: net.Socket, stream: ControlStream, stats: StreamStats): void {
  conn.setTimeout(0); // a watcher may wait for hours between events
  conn.write(JSON.stringify({ ok: true, stream: true }) + '\n');
  stats.watchers++;
  let open = true;
  const stop = stream.start((item) => {
    if (!open) return;
    if (conn.writableLength > MAX_BACKLOG_BYTES) {
      stats.cutOff++;
      conn.destroy();
      return;
    }
    conn.write(JSON.stringify(item) + '\n');
  });
  conn.once('close', () => {
    open = false;
    stats.watchers--;
    stop();
  });
}
