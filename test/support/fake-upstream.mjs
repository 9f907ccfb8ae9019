/**
 * The fake upstream DNS server for tests and benchmarks: one copy, used two ways (plain JS so it runs anywhere
 * without a build step; typed by fake-upstream.d.mts):
 *   - in-process: `await startFakeUpstream({ listen: ['127.0.0.1:0'] })` (unit tests of the DNS I/O modules);
 *   - as a process in a namespace: `node test/fixtures/fake-upstream.mjs --listen 198.51.100.2:53 [--listen ...]
 *     [--log FILE] [--delay-ms N] [--drop]` (runFakeUpstreamCli; test/support/fake-upstream-ns.ts starts it).
 *
 * Serves UDP and TCP on every listen address (port 0 = pick one; UDP and TCP share it). The process prints
 * `listening <addr:port> ...` on stdout once every socket is ready. Zone data:
 *   <name>.example.test   A 203.0.113.x / AAAA 2001:db8::x (x from a hash of the name), MX, TXT, HTTPS(65) and
 *                          TYPE64999 as raw rdata; other types NODATA with SOA
 *   big.example.test      TXT of ~3000 bytes (TC over UDP when the client's payload limit is smaller)
 *   nx.example.test       NXDOMAIN with SOA          servfail.example.test   SERVFAIL
 *   <anything>.bench.test A (unique names for cache-miss benchmarks)
 *   <anything>.huge.example.test TXT of ~60 KB (TC over UDP: only TCP carries it; hostile-guest tests)
 *   hugettl.example.test  A with TTL 2^31 + 100 (RFC 2181 §8 says: treat as 0)
 *   <anything>.blackhole.test never answered (logged): an upstream zone that times out
 *   x.113.0.203.in-addr.arpa PTR host-x.example.test
 *   anything else         REFUSED
 * Every query is one line `<transport> <name> <TYPE>`, so tests can count upstream queries: in-process in the
 * handle's `queries`, and appended to the log file (--log FILE) when there is one.
 * drop (--drop) logs queries but never answers (a dead upstream); delayMs (--delay-ms) delays every answer.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import dnsPacket from 'dns-packet';
import rcodes from 'dns-packet/rcodes.js';

const SOA_TTL = 60;
const soaFor = (zone) => ({
  name: zone,
  type: 'SOA',
  ttl: SOA_TTL,
  data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: SOA_TTL },
});

function hashByte(name) {
  return createHash('sha256').update(name).digest()[0] % 254 + 1;
}

/** 235 strings of 255 bytes: about 60 KB of rdata, within one 64 KiB TCP message. */
const HUGE_TXT = Array.from({ length: 235 }, (_, i) => `${String(i).padStart(3, '0')}${'h'.repeat(252)}`);
const HIGH_BIT_TTL = 2 ** 31 + 100;

const BIG_TXT = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(248)}`);

/** Returns { rcode, answers, authorities } for one question. */
function resolve(name, type) {
  const lower = name.toLowerCase();
  if (lower.endsWith('.113.0.203.in-addr.arpa')) {
    const host = lower.split('.')[0];
    if (type === 'PTR') return { rcode: 'NOERROR', answers: [{ name, type: 'PTR', ttl: 300, data: `host-${host}.example.test` }] };
    return { rcode: 'NOERROR', answers: [], authorities: [soaFor('113.0.203.in-addr.arpa')] };
  }
  if (lower.endsWith('.bench.test')) {
    if (type === 'A') return { rcode: 'NOERROR', answers: [{ name, type: 'A', ttl: 300, data: `203.0.113.${hashByte(lower)}` }] };
    return { rcode: 'NOERROR', answers: [], authorities: [soaFor('bench.test')] };
  }
  if (lower !== 'example.test' && !lower.endsWith('.example.test')) return { rcode: 'REFUSED', answers: [] };
  if (lower.endsWith('.huge.example.test') && type === 'TXT') {
    return { rcode: 'NOERROR', answers: [{ name, type: 'TXT', ttl: 300, data: HUGE_TXT }] };
  }
  if (lower === 'hugettl.example.test' && type === 'A') {
    return { rcode: 'NOERROR', answers: [{ name, type: 'A', ttl: HIGH_BIT_TTL, data: '203.0.113.231' }] };
  }
  if (lower === 'nx.example.test') return { rcode: 'NXDOMAIN', answers: [], authorities: [soaFor('example.test')] };
  if (lower === 'servfail.example.test') return { rcode: 'SERVFAIL', answers: [] };
  const x = hashByte(lower);
  const rr = (t, data) => ({ rcode: 'NOERROR', answers: [{ name, type: t, ttl: 300, data }] });
  switch (type) {
    case 'A': return rr('A', `203.0.113.${x}`);
    case 'AAAA': return rr('AAAA', `2001:db8::${x.toString(16)}`);
    case 'MX': return rr('MX', { preference: 10, exchange: `mail.${lower}` });
    case 'TXT': return rr('TXT', lower === 'big.example.test' ? BIG_TXT : [`hello ${lower}`]);
    // HTTPS: SvcPriority 1, TargetName "." , no params — encoded by hand since dns-packet treats type 65 as unknown
    case 'UNKNOWN_65': return rr('UNKNOWN_65', Buffer.from([0, 1, 0]));
    case 'UNKNOWN_64999': return rr('UNKNOWN_64999', Buffer.from([0xde, 0xad, 0xbe, 0xef, x]));
    default: return { rcode: 'NOERROR', answers: [], authorities: [soaFor('example.test')] };
  }
}

function log(options, transport, question) {
  if (!options.log && !options.queries) return;
  const type = question.type.startsWith('UNKNOWN_') ? `TYPE${question.type.slice(8)}` : question.type;
  const line = `${transport} ${question.name} ${type}`;
  if (options.log) appendFileSync(options.log, `${line}\n`);
  options.queries?.push(line);
}

/** Builds the response bytes, or undefined for input we ignore (responses, junk). */
function answer(msg, transport, options) {
  let query;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return undefined;
  }
  if (query.type !== 'query' || query.questions.length !== 1) return undefined;
  const question = query.questions[0];
  log(options, transport, question);
  if (options.drop || question.name.toLowerCase().endsWith('.blackhole.test')) return undefined;
  const result = resolve(question.name, question.type);
  const opt = query.additionals.find((r) => r.type === 'OPT');
  const response = {
    id: query.id,
    type: 'response',
    // dns-packet takes the rcode from the low bits of `flags`, not from a field
    flags: (query.flags & dnsPacket.RECURSION_DESIRED) | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER |
      rcodes.toRcode(result.rcode),
    questions: [question],
    answers: result.answers,
    authorities: result.authorities ?? [],
    additionals: opt ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: opt.flags ?? 0, options: [] }] : [],
  };
  let bytes = dnsPacket.encode(response);
  const limit = opt ? Math.max(512, opt.udpPayloadSize) : 512;
  if (transport === 'udp' && bytes.length > limit) {
    bytes = dnsPacket.encode({ ...response, flags: response.flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
  }
  return bytes;
}

function serveUdp(socket, options, later) {
  socket.on('message', (msg, rinfo) => {
    const bytes = answer(msg, 'udp', options);
    if (bytes) later(() => socket.send(bytes, rinfo.port, rinfo.address));
  });
  socket.on('error', () => {});
}

function serveTcp(conn, options, later) {
  let pending = Buffer.alloc(0);
  conn.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const msg = pending.subarray(2, 2 + pending.readUInt16BE(0));
      pending = pending.subarray(2 + msg.length);
      const bytes = answer(msg, 'tcp', options);
      if (!bytes) continue;
      const framed = Buffer.alloc(2 + bytes.length);
      framed.writeUInt16BE(bytes.length, 0);
      bytes.copy(framed, 2);
      later(() => conn.destroyed || conn.write(framed));
    }
  });
  conn.on('error', () => {});
}

/** Binds UDP then TCP on the same port; with port 0, retries when TCP finds the port taken. */
async function listenOn(spec, options, later, sockets) {
  const colon = spec.lastIndexOf(':');
  const host = spec.slice(0, colon).replace(/^\[|\]$/g, '');
  const wanted = Number(spec.slice(colon + 1));
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise((ok, fail) => { udp.once('error', fail); udp.bind(wanted, host, ok); });
    const port = udp.address().port;
    const tcp = net.createServer((conn) => {
      sockets.add(conn);
      conn.once('close', () => sockets.delete(conn));
      serveTcp(conn, options, later);
    });
    try {
      await new Promise((ok, fail) => { tcp.once('error', fail); tcp.listen(port, host, ok); });
    } catch (err) {
      udp.close();
      if (wanted !== 0 || attempt > 20) throw err;
      continue;
    }
    serveUdp(udp, options, later);
    sockets.add(udp).add(tcp);
    return { address: net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`, port };
  }
}

/** Starts serving on every `listen` address (default 127.0.0.1:0) in this process. */
export async function startFakeUpstream(options = {}) {
  const queries = options.keepQueries === false ? undefined : [];
  const settings = { log: options.log, queries, drop: options.drop ?? false };
  const delayMs = options.delayMs ?? 0;
  const timers = new Set();
  const later = (fn) => {
    if (delayMs <= 0) return fn();
    const timer = setTimeout(() => { timers.delete(timer); fn(); }, delayMs);
    timers.add(timer);
  };
  const sockets = new Set();
  const bound = [];
  for (const spec of options.listen ?? ['127.0.0.1:0']) bound.push(await listenOn(spec, settings, later, sockets));
  return {
    addresses: bound.map((b) => b.address),
    port: bound[0].port,
    queries: queries ?? [],
    close() {
      for (const timer of timers) clearTimeout(timer);
      for (const s of sockets) {
        if (s instanceof net.Socket) s.destroy();
        else s.close();
      }
    },
  };
}

/** The process: parses the flags above, serves, prints `listening ...`; SIGTERM ends it. */
export function runFakeUpstreamCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', multiple: true },
      log: { type: 'string' },
      'delay-ms': { type: 'string', default: '0' },
      drop: { type: 'boolean', default: false },
    },
  });
  return startFakeUpstream({
    listen: values.listen ?? ['127.0.0.1:5353'],
    log: values.log,
    delayMs: Number(values['delay-ms']),
    drop: values.drop,
    keepQueries: false, // a long soak must not grow the process: --log is its record
  }).then((server) => {
    process.stdout.write(`listening ${server.addresses.join(' ')}\n`);
    process.on('SIGTERM', () => process.exit(0));
  });
}
