/**
 * issue 18: the cache-hit fast path (server.ts tryFastHit, hit-fast-path.ts, cache.ts getVetted) must answer byte for
 * byte what the normal pipeline answers. Two servers with the same names, clock and upstream, one with the fast path
 * and one without, get the same random datagrams (random letter case, ids, flags, EDNS sizes and DO, CD, trailing
 * bytes, broken headers, sources inside and outside the subnet), while the clock moves (TTL aging, expiry) and local
 * names appear and go (a cached name that becomes local must be answered locally at once). Every reply must be the
 * same bytes, or both absent; and the fast path must have answered a good share of them.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4.js';
import { DnsCache } from '../../src/dns/cache.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { DnsServer } from '../../src/dns/server.js';
import { parseQuery } from '../../src/dns/query.js';
import type { DnsUdpTransport, UdpHandlers } from '../../src/dns/udp-transport.js';
import type { UpstreamClient } from '../../src/dns/upstream.js';
import type { ClientAddress } from '../../src/dns/client-address.js';

const SUBNET = parseCidr('10.9.0.1/24')!.subnet;
const CLIENT = parseIpv4('10.9.0.20')!;
const OUTSIDER = parseIpv4('192.0.2.7')!;
const BROADCAST = parseIpv4('10.9.0.255')!;

const NAMES = ['h0.example.com', 'h1.example.com', 'h2.example.org', 'big.example.com', 'nx.example.com', 'cname.example.net', 'web', 'web.vm.test', 'a-b.example.com'];
const TYPES = [1, 28, 16, 15, 255, 12];

/** A receive slot as the batch transport hands it over: a view, overwritten once the handler returns. */
const slot = Buffer.alloc(2048);

class CaptureTransport implements DnsUdpTransport {
  handlers!: UdpHandlers;
  readonly replies: Buffer[] = [];
  start(handlers: UdpHandlers): void {
    this.handlers = handlers;
  }
  reply(message: Buffer): void {
    this.replies.push(Buffer.from(message));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  /** as the batch transports deliver: in place in the slab at a slot's offset when the handlers take that, else a view */
  deliver(message: Buffer, address: ClientAddress, port: number): void {
    const at = 2048 - message.length - (message[0]! & 7); // anywhere in the slot, junk after it when not at the end
    message.copy(slot, at);
    if (this.handlers.messageAt) this.handlers.messageAt(slot, at, message.length, address, port);
    else this.handlers.message(slot.subarray(at, at + message.length), address, port);
    slot.fill(0xa5);
  }
}

/** A deterministic upstream: the answer depends on the question only, the question comes back as it was asked. */
function answerFor(raw: Uint8Array): Buffer {
  const parsed = parseQuery(raw);
  if (!parsed.ok) throw new Error('the server forwarded a query it should not have');
  const { query } = parsed;
  const lower = query.question.name;
  const question = { name: lower, type: typeName(query.question.type), class: 'IN' };
  const opt = query.hasEdns ? { flags: query.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } : undefined;
  const ttl = 30 + (lower.length * 37) % 200;
  const base = { id: query.id, type: 'response' as const, questions: [question] as never[], additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: opt.flags ?? 0 } as never] : [] };
  if (lower.startsWith('nx.')) {
    return withAskedSpelling(dnsPacket.encode({
      ...base, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3,
      authorities: [{ name: 'example.com', type: 'SOA', ttl: 900, data: { mname: 'ns.example.com', rname: 'h.example.com', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 60 } } as never],
    }), raw);
  }
  const answers: never[] = [];
  if (lower.startsWith('big.')) {
    for (let i = 0; i < 4; i++) answers.push({ name: question.name, type: 'TXT', ttl: ttl + i, data: ['x'.repeat(200), `part ${i}`] } as never);
  } else if (lower.startsWith('cname.')) {
    answers.push({ name: question.name, type: 'CNAME', ttl, data: 'h0.example.com' } as never);
    answers.push({ name: 'h0.example.com', type: 'A', ttl: ttl + 5, data: '192.0.2.9' } as never);
  } else if (question.type === 'A') {
    answers.push({ name: question.name, type: 'A', ttl, data: '192.0.2.1' } as never, { name: question.name, type: 'A', ttl: ttl * 2, data: '192.0.2.2' } as never);
  }
  return withAskedSpelling(dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, answers }), raw);
}

/** The question as the client spelled it (dns-packet writes it as given, uncompressed, right after the header). */
function withAskedSpelling(response: Buffer, raw: Uint8Array): Buffer {
  const end = Buffer.from(raw).indexOf(0, 12) + 1;
  response.set(raw.subarray(12, end), 12);
  return response;
}

function typeName(type: number): string {
  return ({ 1: 'A', 28: 'AAAA', 16: 'TXT', 15: 'MX', 12: 'PTR', 255: 'ANY' } as Record<number, string>)[type] ?? `TYPE${type}`;
}

interface Query {
  name: number;
  caseMask: number;
  type: number;
  id: number;
  flagBits: number;
  edns: undefined | { size: number; dnssecOk: boolean; rdata: number };
  trailing: number;
  qclass: number;
  source: number;
  port: number;
  cut: number;
}

function encodeQuery(q: Query): Buffer {
  const name = NAMES[q.name % NAMES.length]!.split('').map((c, i) => ((q.caseMask >>> (i % 31)) & 1 ? c.toUpperCase() : c)).join('');
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const question = Buffer.concat([...labels, Buffer.from([0]), Buffer.from([q.type >> 8, q.type & 0xff, q.qclass >> 8, q.qclass & 0xff])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(q.flagBits, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(q.edns ? 1 : 0, 10);
  const parts = [header, question];
  if (q.edns) {
    const opt = Buffer.alloc(11 + q.edns.rdata);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(q.edns.size, 3);
    opt.writeUInt16BE(q.edns.dnssecOk ? 0x8000 : 0, 7);
    opt.writeUInt16BE(q.edns.rdata, 9);
    parts.push(opt);
  }
  parts.push(Buffer.alloc(q.trailing, 0x42));
  const whole = Buffer.concat(parts);
  return q.cut > 0 ? whole.subarray(0, Math.max(0, whole.length - q.cut)) : whole;
}

const queryArb: fc.Arbitrary<Query> = fc.record({
  name: fc.nat(NAMES.length - 1),
  caseMask: fc.oneof(fc.constant(0), fc.nat()),
  type: fc.oneof({ weight: 12, arbitrary: fc.constant(1) }, { weight: 6, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
  id: fc.nat(0xffff),
  // mostly RD with CD now and then; rarely anything (QR, opcodes, AD, Z)
  flagBits: fc.oneof({ weight: 16, arbitrary: fc.constant(0x0100) }, { weight: 8, arbitrary: fc.constantFrom(0x0110, 0x0000, 0x0010, 0x0120) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
  edns: fc.option(fc.record({
    size: fc.oneof({ weight: 8, arbitrary: fc.constant(1232) }, { weight: 4, arbitrary: fc.constantFrom(512, 4096, 0, 600) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
    dnssecOk: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    rdata: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(6) }),
  }), { nil: undefined, freq: 2 }),
  trailing: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(5) }),
  qclass: fc.oneof({ weight: 10, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(3, 255) }),
  source: fc.oneof({ weight: 10, arbitrary: fc.constant(CLIENT) }, { weight: 1, arbitrary: fc.constantFrom(OUTSIDER, BROADCAST) }),
  port: fc.oneof({ weight: 20, arbitrary: fc.constant(40_000) }, { weight: 1, arbitrary: fc.constant(0) }),
  cut: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(8) }),
});

type Step =
  | { kind: 'query'; query: Query }
  | { kind: 'again'; template: number; id: number; caseMask: number }
  | { kind: 'clock'; ms: number }
  | { kind: 'local'; name: number; add: boolean };

/** mostly questions asked before (a few per run), in other letter case and with other ids: the hits */
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 15, arbitrary: queryArb.map((query) => ({ kind: 'query' as const, query })) },
  { weight: 45, arbitrary: fc.record({ template: fc.nat(), id: fc.nat(0xffff), caseMask: fc.nat() }).map((s) => ({ kind: 'again' as const, ...s })) },
  { weight: 8, arbitrary: fc.oneof({ weight: 8, arbitrary: fc.nat(2500) }, { weight: 1, arbitrary: fc.constantFrom(60_000, 400_000) }).map((ms) => ({ kind: 'clock' as const, ms })) },
  { weight: 1, arbitrary: fc.record({ name: fc.nat(NAMES.length - 1), add: fc.boolean() }).map((s) => ({ kind: 'local' as const, ...s })) },
);

function makePair(clock: { now: number }) {
  const localNames = new LocalNames({ domain: 'vm.test', subnet: SUBNET, gatewayAddress: parseIpv4('10.9.0.1')! });
  localNames.setHost('web', parseIpv4('10.9.0.50')!, 'lease');
  let upstreamCalls = 0;
  const upstream = {
    query: (raw: Uint8Array) => {
      upstreamCalls++;
      return Promise.resolve(answerFor(raw));
    },
  } as unknown as UpstreamClient;
  const make = (hitFastPath: boolean) => {
    const udp = new CaptureTransport();
    const cache = new DnsCache({ maxEntries: 1000, now: () => clock.now });
    const server = new DnsServer({ udp, subnet: SUBNET, localNames, cache, upstream, domain: 'vm.test', logger: silentLogger, hitFastPath });
    server.start();
    return { udp, cache, server };
  };
  return { fast: make(true), slow: make(false), localNames, calls: () => upstreamCalls };
}

/** Lets the fake upstream's promises and the answers behind them settle. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('DNS cache-hit fast path', () => {
  it('answers exactly what the normal path answers', async () => {
    let fastHits = 0;
    let queries = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(queryArb, { minLength: 1, maxLength: 6 }), fc.array(stepArb, { minLength: 40, maxLength: 200 }), async (templates, steps) => {
        const clock = { now: 1_800_000_000_000 };
        const { fast, slow, localNames } = makePair(clock);
        for (const step of steps) {
          if (step.kind === 'clock') {
            clock.now += step.ms;
            continue;
          }
          if (step.kind === 'local') {
            const name = NAMES[step.name]!;
            if (step.add) localNames.setHost(name, parseIpv4('10.9.0.60')!, 'static');
            else localNames.removeHost(name, undefined, 'static');
            continue;
          }
          const query = step.kind === 'query' ? step.query : { ...templates[step.template % templates.length]!, id: step.id, caseMask: step.caseMask };
          const message = encodeQuery(query);
          fast.udp.deliver(message, query.source, query.port);
          slow.udp.deliver(message, query.source, query.port);
          await settle();
          queries++;
          expect(fast.udp.replies.length).toBe(slow.udp.replies.length);
          const a = fast.udp.replies.at(-1);
          const b = slow.udp.replies.at(-1);
          if (a === undefined || b === undefined) expect(a).toBe(b);
          else expect(a.toString('hex')).toBe(b.toString('hex'));
        }
        // the same counts, but for which path answered the hits
        expect({ ...fast.server.stats(), fastHits: 0 }).toEqual(slow.server.stats());
        expect(fast.cache.stats()).toEqual(slow.cache.stats());
        expect(slow.server.stats().fastHits).toBe(0);
        fastHits += fast.server.stats().fastHits;
        await Promise.all([fast.server.close(), slow.server.close()]);
      }),
      { numRuns: 150, seed: 18 },
    );
    // the property is only worth something if the fast path answered a fair share
    expect(fastHits).toBeGreaterThan(queries / 4);
  }, 120_000);

  it('answers a repeated question from the cache without the normal path, and a name made local at once locally', async () => {
    const clock = { now: 1_800_000_000_000 };
    const { fast, localNames, calls } = makePair(clock);
    const ask = (id: number, name = 'h0.example.com') => encodeQuery({ name: NAMES.indexOf(name), caseMask: 0, type: 1, id, flagBits: 0x0100, edns: undefined, trailing: 0, qclass: 1, source: CLIENT, port: 40_000, cut: 0 });
    fast.udp.deliver(ask(1), CLIENT, 40_000);
    await settle(); // forwarded and cached
    fast.udp.deliver(ask(2), CLIENT, 40_000); // a hit through the normal path, which vets the entry
    fast.udp.deliver(ask(3), CLIENT, 40_000);
    clock.now += 5000;
    fast.udp.deliver(ask(4), CLIENT, 40_000);
    expect(fast.server.stats().fastHits).toBe(2);
    expect(calls()).toBe(1);
    const last = dnsPacket.decode(fast.udp.replies.at(-1)!) as unknown as { id: number; answers: { ttl: number }[] };
    const first = dnsPacket.decode(fast.udp.replies[0]!) as unknown as { answers: { ttl: number }[] };
    expect(last.id).toBe(4);
    expect(last.answers[0]!.ttl).toBe(first.answers[0]!.ttl - 5);

    localNames.setHost('h0.example.com', parseIpv4('10.9.0.61')!, 'static');
    fast.udp.deliver(ask(5), CLIENT, 40_000);
    expect(fast.server.stats().fastHits).toBe(2);
    const local = dnsPacket.decode(fast.udp.replies.at(-1)!) as unknown as { answers: { data: string }[] };
    expect(local.answers.map((a) => a.data)).toEqual(['10.9.0.61']);

    // a source outside the subnet is REFUSED, never answered from the cache
    localNames.removeHost('h0.example.com');
    fast.udp.deliver(ask(6), CLIENT, 40_000); // re-vetted
    fast.udp.deliver(ask(7), OUTSIDER, 40_000);
    expect(fast.server.stats().fastHits).toBe(0 + 2);
    expect((dnsPacket.decode(fast.udp.replies.at(-1)!) as unknown as { rcode: string }).rcode).toBe('REFUSED');
    await fast.server.close();
  });
});
