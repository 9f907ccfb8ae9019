/**
 * 100,000 datagrams, half random bytes and half mutations of valid queries and responses, through everything
 * natd runs on a datagram before deciding what to send: nothing may throw (wire helpers only DnsWireError).
 * A fixed seed keeps a failure reproducible; the failing datagram is printed in hex.
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { parseQuery } from '../../src/dns/query.js';
import { buildErrorResponse, truncateForUdp } from '../../src/dns/answers.js';
import { DnsCache } from '../../src/dns/cache.js';
import { DnsWireError, minTtl, responseQuestionKey, rewriteTtls } from '../../src/dns/wire.js';

const DATAGRAMS = 100_000;

/** xorshift32: deterministic, so a failure replays with the same datagram */
function rng(seed: number) {
  let state = seed >>> 0 || 1;
  return (limit: number) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % limit;
  };
}

const seeds: Buffer[] = [
  dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'example.com' }] }),
  dnsPacket.encode({
    type: 'query',
    id: 2,
    questions: [{ type: 'AAAA', name: 'vm1.lan' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
  }),
  dnsPacket.encode({
    type: 'response',
    id: 3,
    questions: [{ type: 'A', name: 'example.com' }],
    answers: [
      { type: 'CNAME', name: 'example.com', ttl: 30, data: 'www.example.com' },
      { type: 'A', name: 'www.example.com', ttl: 60, data: '192.0.2.1' },
    ],
    authorities: [
      {
        type: 'SOA',
        name: 'example.com',
        ttl: 90,
        data: { mname: 'ns', rname: 'h', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 },
      },
    ],
  }),
];

function randomBytes(length: number, next: (limit: number) => number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = next(256);
  return out;
}

function mutate(seed: Buffer, next: (limit: number) => number): Buffer {
  let out = Buffer.from(seed);
  const edits = 1 + next(4);
  for (let i = 0; i < edits; i++) {
    switch (next(4)) {
      case 0: // overwrite a byte
        out[next(out.length)] = next(256);
        break;
      case 1: // truncate
        out = out.subarray(0, next(out.length + 1));
        break;
      case 2: // grow with junk
        out = Buffer.concat([out, randomBytes(1 + next(16), next)]);
        break;
      default: // plant a compression pointer
        if (out.length > 1) {
          const at = next(out.length - 1);
          out[at] = 0xc0 | next(2);
          out[at + 1] = next(256);
        }
    }
  }
  return out;
}

function tolerateWireError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof DnsWireError)) throw err;
  }
}

describe('DNS datagram fuzz', () => {
  it(`survives ${DATAGRAMS.toLocaleString('en')} random and mutated datagrams`, () => {
    const next = rng(0x5eed);
    const cache = new DnsCache({ maxEntries: 500 });
    const outcomes = new Map<string, number>();
    for (let n = 0; n < DATAGRAMS; n++) {
      const datagram =
        n % 2 === 0 ? randomBytes(next(300), next) : mutate(seeds[next(seeds.length)]!, next);
      try {
        const result = parseQuery(datagram);
        const outcome = result.ok ? 'ok' : result.rejected.reason;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (!result.ok && result.rejected.rcode !== undefined) buildErrorResponse({ id: result.rejected.id!, raw: datagram }, result.rejected.rcode);
        if (result.ok) buildErrorResponse(result.query, 2);

        // the same bytes seen as an upstream reply
        responseQuestionKey(datagram);
        truncateForUdp(datagram, 512);
        tolerateWireError(() => minTtl(datagram));
        tolerateWireError(() => rewriteTtls(datagram, 7));
        cache.store(`k${n % 1000}`, datagram);
        cache.get(`k${(n * 7) % 1000}`, n & 0xffff, datagram);
      } catch (err) {
        throw new Error(`datagram ${n} threw: ${datagram.toString('hex')}`, { cause: err });
      }
    }
    // the mix reached both the accepting and the rejecting paths
    expect(outcomes.get('ok')).toBeGreaterThan(1000);
    expect(outcomes.get('malformed')).toBeGreaterThan(1000);
    expect(outcomes.get('response')).toBeGreaterThan(1000);
  }, 120_000); // CPU-bound: seconds alone, far more when the machine is shared
});
