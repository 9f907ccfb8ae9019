/**
 * The name router's data path over loopback with real clients: two HTTPS servers with their own self-signed
 * certificates behind one router port, reached by SNI with curl and node's TLS client (the certificate arrives
 * untouched), HTTP by Host, a wildcard (the lookup's job, faked here), unknown names (alert 112, 421), PROXY v2 as the
 * guest side parses it, a ClientHello trickled one byte per segment, a slow-loris head cut at the timeout, a client
 * that never reads (natd's buffers stay bounded), half-close both ways, and the per-client and global limits.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NameRouter, type RouteTarget, type RouterLimits, type RouterProtocol } from '../../src/router/name-router.js';
import { decodeProxyV2 } from '../../src/router/proxy-protocol.js';
import { recordingLogger } from '../support/recording-logger.js';
import { makeSelfSignedCert, type TestCert } from '../support/tls-certs.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

const LIMITS: RouterLimits = {
  maxConnections: 200,
  maxConnectionsPerClient: 100,
  headTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  maxHeadBytes: 16_384,
  connectTimeoutMs: 2000,
};

let dir: string;
let certA: TestCert;
let certB: TestCert;
const servers: net.Server[] = [];
const ports: Record<string, number> = {};
/** what each PROXY backend connection saw: the decoded header and the bytes after it */
const proxySeen: { header: ReturnType<typeof decodeProxyV2>; rest: string }[] = [];
let bigSent = 0;
let bigBackendSocket: net.Socket | undefined;

async function listenOn(server: net.Server, name: string): Promise<void> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  ports[name] = (server.address() as net.AddressInfo).port;
}

/** the fake wiring: exact names, *.wild.test → B, per protocol */
const lookups: { name: string | undefined; port: number; protocol: RouterProtocol }[] = [];
function lookup(name: string | undefined, port: number, protocol: RouterProtocol): RouteTarget | undefined {
  lookups.push({ name, port, protocol });
  const at = (backend: string, route: string, extra: Partial<RouteTarget> = {}): RouteTarget => ({
    address: '127.0.0.1',
    port: ports[backend]!,
    route,
    ...extra,
  });
  if (protocol === 'tls') {
    if (name === 'a.test') return at('httpsA', 'a');
    if (name === 'b.test' || name?.endsWith('.wild.test')) return at('httpsB', 'b');
    if (name === 'proxy.test') return at('proxy', 'proxy', { proxyProtocol: 'v2' });
    if (name === 'down.test') return at('closed', 'down');
    return undefined;
  }
  if (name === 'a.test') return at('httpA', 'a');
  if (name === 'b.test' || name?.endsWith('.wild.test')) return at('httpB', 'b');
  if (name === 'proxy.test') return at('proxy', 'proxy', { proxyProtocol: 'v2' });
  if (name === 'big.test') return at('big', 'big');
  if (name === 'pattern.test') return at('pattern', 'pattern');
  if (name === 'half.test') return at('half', 'half');
  if (name === 'down.test') return at('closed', 'down');
  if (name === 'badport.test') return { address: '127.0.0.1', port: 70_000, route: 'badport' };
  return undefined;
}

const PATTERN_BYTES = 24 * 1024 * 1024;
function patternBytes(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 31 + ((offset + i) >>> 16)) & 0xff;
  return b;
}

function startRouter(limits: Partial<RouterLimits> = {}) {
  const logger = recordingLogger();
  const router = new NameRouter({ logger, limits: { ...LIMITS, ...limits }, lookup, closeGraceMs: 200 });
  return { router, logger };
}

async function routerPort(router: NameRouter): Promise<number> {
  await router.listen([{ port: 0, address: '127.0.0.1' }]);
  return router.stats().listening[0]!.port;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'natd-router-'));
  certA = makeSelfSignedCert(dir, 'a', ['a.test']);
  certB = makeSelfSignedCert(dir, 'b', ['b.test', '*.wild.test']);
  await listenOn(https.createServer({ cert: certA.cert, key: certA.key }, (_req, res) => res.end('from A\n')), 'httpsA');
  await listenOn(https.createServer({ cert: certB.cert, key: certB.key }, (req, res) => res.end(`from B for ${req.headers.host}\n`)), 'httpsB');
  await listenOn(http.createServer((_req, res) => res.end('plain A\n')), 'httpA');
  await listenOn(http.createServer((req, res) => res.end(`plain B for ${req.headers.host}\n`)), 'httpB');
  // PROXY v2 backend: decode the header, answer with what followed it
  await listenOn(
    net.createServer((socket) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const header = decodeProxyV2(buf);
        if (header.state === 'need-more') return;
        const rest = header.state === 'done' ? buf.subarray(header.length).toString('latin1') : '';
        if (!rest.includes('\r\n\r\n')) return;
        proxySeen.push({ header, rest });
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
      });
      socket.on('error', () => {});
    }),
    'proxy',
  );
  // a backend that sends 64 MiB as fast as the router takes it
  await listenOn(
    net.createServer((socket) => {
      bigBackendSocket = socket;
      socket.on('error', () => {});
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (bigSent < 64 * 1024 * 1024) {
          bigSent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.end();
      };
      socket.once('data', pump);
    }),
    'big',
  );
  // issue 17: PATTERN_BYTES of a position-dependent pattern in writes of varying size, to check the bulk read
  // buffers the router reuses are never overwritten while a write to the client still holds them
  await listenOn(
    net.createServer((socket) => {
      socket.on('error', () => {});
      let sent = 0;
      let size = 1000;
      const pump = () => {
        while (sent < PATTERN_BYTES) {
          size = (size * 7 + 4093) % (200 * 1024) + 1;
          const chunk = patternBytes(sent, Math.min(size, PATTERN_BYTES - sent));
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.end();
      };
      socket.once('data', pump);
    }),
    'pattern',
  );
  // half-close: answers with everything it got once the client's FIN arrives, and keeps reading after its own FIN
  await listenOn(
    net.createServer({ allowHalfOpen: true }, (socket) => {
      const got: Buffer[] = [];
      socket.on('data', (d: Buffer) => {
        got.push(d);
        const text = Buffer.concat(got).toString('latin1');
        if (text.endsWith('server-first-fin\n') && !socket.writableEnded) socket.end('bye before you\n');
      });
      socket.on('end', () => {
        const text = Buffer.concat(got).toString('latin1');
        if (!socket.writableEnded) socket.end(`got ${text.length} bytes\n`);
        else halfCloseLateBytes = text;
      });
      socket.on('error', () => {});
    }),
    'half',
  );
  // a port nothing listens on
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  ports.closed = (closed.address() as net.AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
});

let halfCloseLateBytes = '';

afterAll(async () => {
  for (const s of servers) {
    (s as http.Server).closeAllConnections?.();
    s.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '10', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function tlsConnect(port: number, servername: string, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** sends raw bytes, collects everything until the router closes */
function rawExchange(port: number, send: string | Buffer, endAfter = true): Promise<{ data: Buffer; closedBy: 'end' | 'error' }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => resolve({ data: Buffer.concat(chunks), closedBy: 'error' }));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), closedBy: 'end' }));
    if (endAfter) socket.end(send);
    else socket.write(send);
  });
}

describe('name router: TLS by SNI', () => {
  let router: NameRouter;
  let port: number;
  let logger: ReturnType<typeof recordingLogger>;
  beforeAll(async () => {
    ({ router, logger } = startRouter());
    port = await routerPort(router);
  });
  afterAll(() => router.close());

  it('curl reaches each server by name and verifies its own certificate', async () => {
    const a = await curl(['--resolve', `a.test:${port}:127.0.0.1`, '--cacert', certA.certPath, `https://a.test:${port}/`]);
    expect(a).toMatchObject({ code: 0, stdout: 'from A\n' });
    expect(lookups.at(-1)).toEqual({ name: 'a.test', port, protocol: 'tls' });
    const b = await curl(['--resolve', `b.test:${port}:127.0.0.1`, '--cacert', certB.certPath, `https://b.test:${port}/`]);
    expect(b).toMatchObject({ code: 0, stdout: `from B for b.test:${port}\n` });
    // the wrong CA fails: the router did not swap certificates
    const wrong = await curl(['--resolve', `a.test:${port}:127.0.0.1`, '--cacert', certB.certPath, `https://a.test:${port}/`]);
    expect(wrong.code).toBe(60);
  });

  it('node TLS sees the exact certificate of the server the name belongs to, wildcards included', async () => {
    for (const [name, cert] of [['a.test', certA], ['b.test', certB], ['x.wild.test', certB], ['Y.Wild.Test', certB]] as const) {
      const socket = await tlsConnect(port, name, { ca: cert.cert, rejectUnauthorized: true });
      expect(socket.getPeerCertificate().fingerprint256).toBe(cert.fingerprint256);
      socket.destroy();
    }
    const stats = router.stats();
    expect(stats.routes.a!.total).toBeGreaterThanOrEqual(2);
    expect(stats.routes.b!.total).toBeGreaterThanOrEqual(4);
    expect(stats.routes.a!.bytesIn).toBeGreaterThan(200);
    expect(stats.routes.a!.bytesOut).toBeGreaterThan(200);
  });

  it('an unknown name gets a fatal unrecognized_name alert: node, curl and openssl s_client see it', async () => {
    const err = await tlsConnect(port, 'nobody.test').then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe('ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    const c = await curl(['--resolve', `nobody.test:${port}:127.0.0.1`, `https://nobody.test:${port}/`]);
    expect(c.code).toBe(35);
    expect(c.stderr).toMatch(/unrecognized name/i);
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'nobody.test'], { timeout: 10_000 }).catch(
      (e: { stdout: string; stderr: string }) => e,
    );
    expect(`${s.stdout}${s.stderr}`).toMatch(/alert unrecognized name|alert number 112/i);
    expect(router.stats().unknownNames).toBeGreaterThanOrEqual(3);
    expect(logger.messages('limited').some((m) => m.msg.includes('no route') && m.name === 'nobody.test')).toBe(true);
  });

  it('a ClientHello without SNI is looked up with no name', async () => {
    const before = router.stats().noName;
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }); // an IP: node sends no SNI
      socket.on('error', resolve);
    });
    expect(err.code).toBe('ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    expect(router.stats().noName).toBe(before + 1);
  });

  it('a guest that is down: alert internal_error, counted', async () => {
    const err = await tlsConnect(port, 'down.test').then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR');
    expect(router.stats().connectFailed).toBeGreaterThanOrEqual(1);
  });

  it('a ClientHello trickled one byte per TCP segment still routes, and the handshake completes', async () => {
    // a relay in front of the router that forwards the client's first 2 KiB one byte per write, 1 ms apart
    const trickle = net.createServer((inbound) => {
      const outbound = net.connect({ port, host: '127.0.0.1', noDelay: true });
      let queue = Buffer.alloc(0);
      let sentSlowly = 0;
      let busy = false;
      const next = () => {
        if (queue.length === 0) {
          busy = false;
          return;
        }
        busy = true;
        if (sentSlowly < 2048) {
          outbound.write(queue.subarray(0, 1));
          queue = queue.subarray(1);
          sentSlowly++;
          setTimeout(next, 1);
        } else {
          outbound.write(queue);
          queue = Buffer.alloc(0);
          busy = false;
        }
      };
      inbound.on('data', (d: Buffer) => {
        queue = Buffer.concat([queue, d]);
        if (!busy) next();
      });
      outbound.pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
      inbound.on('close', () => outbound.destroy());
    });
    await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
    const trickleServer = trickle;
    try {
      const trickleport = (trickleServer.address() as net.AddressInfo).port;
      const socket = await tlsConnect(trickleport, 'b.test', { ca: certB.cert, rejectUnauthorized: true });
      expect(socket.getPeerCertificate().fingerprint256).toBe(certB.fingerprint256);
      socket.destroy();
    } finally {
      trickleServer.close();
    }
  });

  it('garbage that starts like TLS gets a decode_error alert and is counted invalid', async () => {
    const before = router.stats().invalid;
    const { data } = await rawExchange(port, Buffer.from([22, 3, 1, 0, 5, 2, 0, 0, 1, 0]));
    expect([...data]).toEqual([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50]);
    expect(router.stats().invalid).toBe(before + 1);
  });
});

describe('name router: HTTP by Host', () => {
  let router: NameRouter;
  let port: number;
  beforeAll(async () => {
    ({ router } = startRouter());
    port = await routerPort(router);
  });
  afterAll(() => router.close());

  it('curl reaches each server by Host, wildcard included', async () => {
    expect(await curl(['--resolve', `a.test:${port}:127.0.0.1`, `http://a.test:${port}/`])).toMatchObject({ stdout: 'plain A\n' });
    expect(lookups.at(-1)).toEqual({ name: 'a.test', port, protocol: 'http' });
    expect(await curl(['--resolve', `q.wild.test:${port}:127.0.0.1`, `http://q.wild.test:${port}/`])).toMatchObject({
      stdout: `plain B for q.wild.test:${port}\n`,
    });
  });

  it('unknown Host: 421 with Connection: close; duplicate Host: 400; no Host on 1.1: 400', async () => {
    const unknown = await curl(['-i', '--resolve', `zzz.test:${port}:127.0.0.1`, `http://zzz.test:${port}/`]);
    expect(unknown.stdout).toMatch(/^HTTP\/1.1 421 Misdirected Request\r\n/);
    expect(unknown.stdout).toMatch(/\r\nConnection: close\r\n/);
    const dup = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n');
    expect(dup.data.toString()).toMatch(/^HTTP\/1.1 400 /);
    const none = await rawExchange(port, 'GET / HTTP/1.1\r\nAccept: */*\r\n\r\n');
    expect(none.data.toString()).toMatch(/^HTTP\/1.1 400 /);
  });

  it('a guest that is down: 502; a target with an impossible port: 502, no exception', async () => {
    const { data } = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: down.test\r\n\r\n');
    expect(data.toString()).toMatch(/^HTTP\/1.1 502 /);
    const bad = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: badport.test\r\n\r\n');
    expect(bad.data.toString()).toMatch(/^HTTP\/1.1 502 /);
    await waitFor('released', () => router.stats().routes.badport?.active === 0);
  });

  it('a head larger than maxHeadBytes: 431', async () => {
    const { data } = await rawExchange(port, `GET / HTTP/1.1\r\nHost: a.test\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`);
    expect(data.toString()).toMatch(/^HTTP\/1.1 431 /);
    expect(router.stats().tooLarge).toBe(1);
  });

  it('PROXY v2: the guest parses the real client address and the address it came in on, then the request intact', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const localPort = socket.localPort;
    const request = 'GET /p HTTP/1.1\r\nHost: proxy.test\r\n\r\n';
    socket.write(request);
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    expect(reply).toMatch(/^HTTP\/1.1 200 OK/);
    const seen = proxySeen.at(-1)!;
    expect(seen.header).toMatchObject({
      state: 'done',
      command: 'PROXY',
      family: 'TCP4',
      endpoints: { sourceAddress: '127.0.0.1', sourcePort: localPort, destinationAddress: '127.0.0.1', destinationPort: port },
    });
    expect(seen.rest).toBe(request);
  });

  it('half-close: the client FIN reaches the guest, its answer still comes back', async () => {
    const { data } = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: half.test\r\n\r\n12345');
    expect(data.toString()).toBe(`got ${'POST / HTTP/1.1\r\nHost: half.test\r\n\r\n12345'.length} bytes\n`);
  });

  it('half-close the other way: after the guest FIN the client can still send', async () => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.write('POST / HTTP/1.1\r\nHost: half.test\r\n\r\nserver-first-fin\n');
    let reply = '';
    socket.on('data', (d: Buffer) => (reply += d.toString()));
    await new Promise((resolve) => socket.once('end', resolve));
    expect(reply).toBe('bye before you\n');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.end('late bytes after the guest FIN\n');
    await waitFor('guest got the late bytes', () => halfCloseLateBytes.endsWith('late bytes after the guest FIN\n'));
    await closed;
    await waitFor('connection released', () => router.stats().routes.half!.active === 0);
  });

  it('bulk downloads to a stalled and to fast clients at once arrive byte for byte (reused read buffers)', async () => {
    const download = (stall?: Promise<unknown>) =>
      new Promise<{ bytes: number; bad: number }>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        let bytes = 0;
        let bad = -1;
        socket.on('data', (d: Buffer) => {
          if (bad < 0 && !d.equals(patternBytes(bytes, d.length))) bad = bytes;
          bytes += d.length;
          if (stall && bytes > 1024 * 1024) {
            // stop reading until the others are done: the router's write to this client waits, holding its buffer
            socket.pause();
            void stall.then(() => socket.resume());
            stall = undefined;
          }
        });
        socket.on('end', () => resolve({ bytes, bad }));
        socket.on('error', reject);
        socket.write('GET /pattern HTTP/1.1\r\nHost: pattern.test\r\n\r\n');
      });
    let others!: () => void;
    const othersDone = new Promise<void>((resolve) => (others = resolve));
    const stalled = download(othersDone);
    // the stalled client's kernel buffers are full once the router has to queue a write to it
    await waitFor('a write to the stalled client queued in the router', () => router.stats().bufferedBytes > 0, 20_000, 20);
    const fast = await Promise.all([download(), download()]);
    others();
    for (const r of [...fast, await stalled]) expect(r).toEqual({ bytes: PATTERN_BYTES, bad: -1 });
    await waitFor('connections released', () => router.stats().routes.pattern!.active === 0);
  });

  it('a client that never reads cannot make the router buffer the guest data', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write('GET /big HTTP/1.1\r\nHost: big.test\r\n\r\n');
    socket.pause(); // never read: the kernel buffers fill, then the router must stop reading the guest
    // wait until the guest cannot send any more (its own socket buffers are full)
    let last = -1;
    await waitFor(
      'guest stalled',
      () => {
        const stalled = bigSent > 0 && bigSent === last && (bigBackendSocket?.writableLength ?? 0) > 0;
        last = bigSent;
        return stalled;
      },
      20_000,
      200,
    );
    const stats = router.stats();
    // natd holds at most about one socket highWaterMark each way plus a read chunk, whatever the guest sends
    expect(stats.bufferedBytes).toBeLessThan(256 * 1024);
    expect(bigSent).toBeLessThan(64 * 1024 * 1024);
    // what passed the router is bounded by the kernel's socket buffers, not by the transfer size
    expect(stats.routes.big!.bytesOut).toBeLessThan(32 * 1024 * 1024);
    socket.destroy();
    await waitFor('connection released', () => router.stats().routes.big!.active === 0);
  });
});

describe('name router: all addresses, IPv4 and IPv6', () => {
  it('a port without an address takes IPv4 and IPv6 clients; PROXY v2 carries each in its own family', async () => {
    const { router } = startRouter();
    await router.listen([{ port: 0 }]);
    const port = router.stats().listening[0]!.port;
    const request = 'GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n';
    for (const [host, family, address] of [['127.0.0.1', 'TCP4', '127.0.0.1'], ['::1', 'TCP6', '0:0:0:0:0:0:0:1']] as const) {
      const socket = net.connect(port, host);
      socket.on('data', () => {});
      socket.write(request);
      await new Promise((resolve) => socket.once('close', resolve));
      expect(proxySeen.at(-1)!.header).toMatchObject({
        state: 'done',
        family,
        endpoints: { sourceAddress: address, destinationAddress: address, destinationPort: port },
      });
    }
    await router.close();
  });

  it('an ECH ClientHello is routed by its public name and counted', async () => {
    const { router, logger } = startRouter();
    const port = await routerPort(router);
    const { buildClientHelloMessage, toRecords } = await import('../support/tls-records.js');
    const { data } = await rawExchange(port, toRecords(buildClientHelloMessage({ serverName: 'public.nowhere.test', ech: true }), [50]));
    expect([...data]).toEqual([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]); // the fake lookup knows no such public name
    expect(router.stats()).toMatchObject({ ech: 1, unknownNames: 1, noName: 0 });
    expect(logger.messages('limited')).toContainEqual(expect.objectContaining({ name: 'public.nowhere.test', protocol: 'tls' }));
    await router.close();
  });
});

describe('name router: limits and lifecycle', () => {
  it('a routed connection without traffic is closed after idleTimeoutMs', async () => {
    const { router } = startRouter({ idleTimeoutMs: 300 });
    const port = await routerPort(router);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('POST / HTTP/1.1\r\nHost: half.test\r\n\r\n'); // the guest waits for a FIN that never comes
    await waitFor('routed', () => router.stats().routed === 1);
    await new Promise((resolve) => socket.once('close', resolve));
    expect(router.stats().idleTimeouts).toBe(1);
    await router.close();
  });

  it('a guest that never completes the TCP handshake: connect timeout, 502, counted', async () => {
    // a listening socket that never accepts, its backlog filled: further SYNs are dropped, connect() hangs
    const { spawn } = await import('node:child_process');
    const child = spawn('/usr/bin/python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)']);
    try {
      const stuckPort = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
      const fillers = [net.connect(stuckPort, '127.0.0.1'), net.connect(stuckPort, '127.0.0.1')];
      for (const f of fillers) f.on('error', () => {});
      await new Promise((resolve) => setTimeout(resolve, 100));
      const saved = ports.closed!;
      ports.closed = stuckPort; // down.test now points at the stuck listener
      try {
        const { router, logger } = startRouter({ connectTimeoutMs: 300 });
        const port = await routerPort(router);
        const { data } = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: down.test\r\n\r\n');
        expect(data.toString()).toMatch(/^HTTP\/1.1 502 /);
        expect(router.stats().connectFailed).toBe(1);
        expect(logger.messages('limited')).toContainEqual(expect.objectContaining({ route: 'down', reason: 'connect timeout' }));
        await router.close();
        // a client that resets while the router is still connecting frees its slot at once (a FIN would be a
        // half-close: the request still goes to the guest once connected)
        const patient = startRouter({ connectTimeoutMs: 20_000 }).router;
        const patientPort = await routerPort(patient);
        const leaving = net.connect(patientPort, '127.0.0.1');
        leaving.on('error', () => {});
        leaving.write('GET / HTTP/1.1\r\nHost: down.test\r\n\r\n');
        await waitFor('connecting', () => patient.stats().routes.down?.active === 1);
        leaving.resetAndDestroy();
        await waitFor('slot freed', () => patient.stats().active === 0 && patient.stats().routes.down!.active === 0, 3000);
        expect(patient.stats().connectFailed).toBe(0);
        await patient.close();
      } finally {
        ports.closed = saved;
        for (const f of fillers) f.destroy();
      }
    } finally {
      child.kill();
    }
  });

  it('a slow-loris head is cut at headTimeoutMs', async () => {
    const { router } = startRouter({ headTimeoutMs: 300 });
    const port = await routerPort(router);
    const socket = net.connect(port, '127.0.0.1');
    let sent = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(sent++ === 0 ? 'GET / HTTP/1.1\r\n' : 'X-a: b\r\n');
    }, 50);
    const closed = await new Promise<boolean>((resolve) => {
      socket.on('close', () => resolve(true));
      socket.on('error', () => {});
    });
    clearInterval(drip);
    expect(closed).toBe(true);
    expect(router.stats().headTimeouts).toBe(1);
    expect(router.stats().routed).toBe(0);
    await router.close();
  });

  it('connections per client and in all are limited; refused ones are closed at once and counted', async () => {
    const { router } = startRouter({ maxConnectionsPerClient: 2, maxConnections: 3 });
    const port = await routerPort(router);
    const open: net.Socket[] = [];
    const connect = (host = '127.0.0.1') =>
      new Promise<net.Socket>((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: host });
        s.on('error', () => {});
        s.once('connect', () => {
          s.write('GET / HTTP/1.1\r\n'); // an unfinished head holds the slot
          resolve(s);
        });
      });
    open.push(await connect(), await connect());
    await waitFor('two held', () => router.stats().active === 2);
    const third = await connect();
    await new Promise((resolve) => third.once('close', resolve));
    expect(router.stats().refusedByLimit).toBe(1);
    // another client address still gets in, up to the global limit
    open.push(await connect('127.0.0.2'));
    await waitFor('three held', () => router.stats().active === 3);
    const fourth = await connect('127.0.0.3');
    await new Promise((resolve) => fourth.once('close', resolve));
    expect(router.stats().refusedByLimit).toBe(2);
    // a freed slot is usable again
    open.shift()!.destroy();
    await waitFor('slot freed', () => router.stats().active === 2);
    const again = await connect();
    // the router's accept is polled for (our connect can complete first, and a loaded machine's pause outlasts a fixed
    // 50 ms); then 50 ms in which a refusal would close it
    await waitFor('the new connection held', () => router.stats().active === 3, 5000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(again.destroyed).toBe(false);
    expect(router.stats().active).toBe(3);
    for (const s of [...open, again]) s.destroy();
    await router.close();
  });

  it('listen() swaps ports: the old one stops accepting, its open connection continues; close() ends it', async () => {
    const { router } = startRouter();
    const first = await routerPort(router);
    const socket = net.connect({ port: first, host: '127.0.0.1', allowHalfOpen: true });
    socket.write('POST / HTTP/1.1\r\nHost: half.test\r\n\r\n');
    await waitFor('routed', () => router.stats().routed === 1);
    await router.listen([{ port: 0, address: '127.0.0.2' }]);
    const listening = router.stats().listening;
    expect(listening).toHaveLength(1);
    expect(listening[0]!.address).toBe('127.0.0.2');
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(first, '127.0.0.1');
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
      s.on('connect', () => resolve('connected'));
    });
    expect(refused).toBe('ECONNREFUSED');
    // the old connection still works: its FIN gets the guest's answer
    let reply = '';
    socket.on('data', (d: Buffer) => (reply += d.toString()));
    socket.end();
    await waitFor('answer on the old connection', () => reply.startsWith('got '));
    await router.close();
    expect(router.stats().active).toBe(0);
    expect(router.stats().listening).toEqual([]);
  });
});
