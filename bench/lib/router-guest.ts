#!/usr/bin/env node
/**
 * issue 17: the guest side of the name-router benchmark, one process per guest namespace: a TLS server on 443 with
 * the guest's own self-signed certificate (so the client can tell which guest it reached), speaking just enough
 * HTTP/1.1 for the bench:
 *   GET /small       -> "HTTP/1.1 200 OK" with a 2-byte body, then the server closes (Connection: close)
 *   GET /bytes/N     -> N bytes of body (a 1 MiB buffer written again and again, with backpressure), then close
 * Node's TLS rather than `openssl s_server`: s_server serves one connection at a time (-www forks nothing), which
 * would be the bottleneck of the connection-rate measurement. The bench reads this process's CPU from /proc to show
 * it was not the limit.
 *
 *   node build/bench/lib/router-guest.js --cert C --key K [--address 0.0.0.0] [--port 443]
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const CHUNK = Buffer.alloc(1024 * 1024, 0x61);
/** a request head larger than this is not ours: the connection is dropped */
const MAX_HEAD = 4096;

function serve(socket: tls.TLSSocket): void {
  let head = '';
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  const onData = (data: Buffer): void => {
    head += data.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_HEAD) socket.destroy();
      return;
    }
    socket.off('data', onData);
    const path = head.slice(0, head.indexOf('\r\n')).split(' ')[1] ?? '/';
    const bytes = /^\/bytes\/(\d+)$/.exec(path);
    if (!bytes) {
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      return;
    }
    let left = Number(bytes[1]);
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${left}\r\nConnection: close\r\n\r\n`);
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    pump();
  };
  socket.on('data', onData);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      cert: { type: 'string' },
      key: { type: 'string' },
      address: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string', default: '443' },
    },
  });
  if (!values.cert || !values.key) throw new Error('router-guest: --cert and --key are required');
  const server = tls.createServer({ cert: readFileSync(values.cert), key: readFileSync(values.key) }, serve);
  // a client that aborts mid-handshake is routine under load, not a reason to stop
  server.on('tlsClientError', () => {});
  server.listen({ host: values.address, port: Number(values.port), backlog: 4096 }, () => {
    process.stdout.write(`router-guest listening on ${values.address}:${values.port}\n`);
  });
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
