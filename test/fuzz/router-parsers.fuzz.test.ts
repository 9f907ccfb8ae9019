/**
 * Property tests (fast-check) of what the name router reads from the network before it knows where a connection
 * goes: the ClientHello SNI parser and the HTTP/1.x head parser never throw on any bytes (random, or mutations of
 * valid heads); a generated ClientHello with a random name, cut into random records and fed in random TCP chunks,
 * parses to that name (lower-cased) and is 'need-more' before its last byte; an HTTP head fed in random chunks
 * (resuming where the last call stopped) gives the same answer as the whole head; PROXY v2 round-trips.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeHostName, parseClientHello } from '../../src/router/client-hello.js';
import { parseHttpHead } from '../../src/router/http-head.js';
import { decodeProxyV2, encodeProxyV1, encodeProxyV2, ipv6Bytes } from '../../src/router/proxy-protocol.js';
import { buildClientHelloMessage, toRecords } from '../support/tls-records.js';

const SEED = Number(process.env.NATD_FUZZ_SEED ?? 0x5171);
const RUNS = 1000;

const NAME_RE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** a random-case domain name */
const hostName = fc
  .tuple(fc.domain(), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }))
  .map(([d, upper]) => [...d].map((c, i) => (upper[i % 64] ? c.toUpperCase() : c)).join(''));

function checkClientHelloResult(r: ReturnType<typeof parseClientHello>): void {
  expect(['need-more', 'done', 'invalid']).toContain(r.state);
  if (r.state === 'done' && r.serverName !== undefined) expect(r.serverName).toMatch(NAME_RE);
}

describe('ClientHello parser (fuzz)', () => {
  it('random bytes, with or without a handshake record header, never throw', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.constantFrom([], [22, 3, 1], [22, 3, 3], [22, 3, 1, 0, 200, 1, 0, 0]),
        (bytes, prefix) => {
          checkClientHelloResult(parseClientHello(Uint8Array.from([...prefix, ...bytes])));
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('mutations of a valid ClientHello never throw and never yield a malformed name', () => {
    const base = toRecords(buildClientHelloMessage({ serverName: 'mutate.example.org', ech: true }), [40]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: base.length }),
        (changes, cut) => {
          const bytes = Buffer.from(base);
          for (const [at, value] of changes) bytes[at] = value;
          checkClientHelloResult(parseClientHello(bytes.subarray(0, cut)));
          checkClientHelloResult(parseClientHello(bytes));
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('any generated ClientHello, cut into random records and TCP chunks, parses to its name', () => {
    fc.assert(
      fc.property(
        hostName,
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 12 }),
        fc.record({ ech: fc.boolean(), padding: fc.nat({ max: 1500 }), fillerBefore: fc.nat({ max: 6 }), sessionIdLength: fc.constantFrom(0, 32) }),
        (name, recordCuts, tcpCuts, spec) => {
          const records = toRecords(buildClientHelloMessage({ serverName: name, ...spec }), recordCuts);
          let at = 0;
          for (const cut of tcpCuts) {
            at = Math.min(at + cut, records.length - 1);
            expect(parseClientHello(records.subarray(0, at)).state).toBe('need-more');
          }
          expect(parseClientHello(records)).toEqual({ state: 'done', serverName: name.toLowerCase(), ech: spec.ech, length: records.length });
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('normalizeHostName never throws and keeps only host names', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const name = normalizeHostName(bytes);
        if (name !== undefined) expect(name).toMatch(NAME_RE);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const fieldValue = fc.stringMatching(/^[\x20-\x7e]{0,30}$/).map((s) => s.trim());

describe('HTTP head parser (fuzz)', () => {
  it('random bytes and mutated heads never throw', () => {
    const base = Buffer.from('GET /index.html HTTP/1.1\r\nHost: www.example.com:8080\r\nAccept: */*\r\n\r\nbody', 'latin1');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }),
          fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }).map((changes) => {
            const b = Buffer.from(base);
            for (const [at, v] of changes) b[at] = v;
            return b;
          }),
        ),
        fc.nat({ max: 2000 }),
        (bytes, resumeAt) => {
          for (const r of [parseHttpHead(bytes), parseHttpHead(bytes, Math.min(resumeAt, bytes.length))]) {
            expect(['need-more', 'done', 'invalid']).toContain(r.state);
            if (r.state === 'done') {
              expect(r.headLength).toBeLessThanOrEqual(bytes.length);
              if (r.host !== undefined) expect(r.host).toMatch(/^([a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])$/);
            }
          }
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('a head fed in random chunks, resuming each time, gives the answer of the whole head', () => {
    fc.assert(
      fc.property(
        token,
        hostName,
        fc.option(fc.integer({ min: 0, max: 65535 })),
        fc.array(fc.tuple(token, fieldValue), { maxLength: 8 }),
        fc.nat({ max: 8 }),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
        (method, host, port, fields, hostAt, bareLf, cuts) => {
          const eol = bareLf ? '\n' : '\r\n';
          const headers = fields.filter(([n]) => n.toLowerCase() !== 'host').map(([n, v]) => `${n}: ${v}`);
          headers.splice(Math.min(hostAt, headers.length), 0, `Host: ${host}${port === null ? '' : `:${port}`}`);
          const head = `${method} / HTTP/1.1${eol}${headers.join(eol)}${eol}${eol}`;
          const bytes = Buffer.from(head + 'BODY', 'latin1');
          const whole = parseHttpHead(bytes);
          expect(whole).toEqual({ state: 'done', host: host.toLowerCase(), headLength: head.length, method, version: '1.1' });
          let resumeAt = 0;
          let at = 0;
          for (const cut of cuts) {
            at = Math.min(at + cut, head.length - 1);
            const r = parseHttpHead(bytes.subarray(0, at), resumeAt);
            expect(r.state).toBe('need-more');
            if (r.state === 'need-more') resumeAt = r.resumeAt;
          }
          expect(parseHttpHead(bytes, resumeAt)).toEqual(whole);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('PROXY protocol (fuzz)', () => {
  it('v2 encode → decode round-trips IPv4 and IPv6 endpoints', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.ipV4(), fc.ipV4()),
          fc.tuple(fc.ipV6(), fc.ipV6()),
          fc.tuple(fc.ipV4().map((a) => `::ffff:${a}`), fc.ipV4()),
        ),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        ([source, destination], sourcePort, destinationPort) => {
          const header = encodeProxyV2({ sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort });
          const decoded = decodeProxyV2(Buffer.concat([header, Buffer.from('GET')]));
          expect(decoded.state).toBe('done');
          if (decoded.state !== 'done') return;
          expect(decoded.length).toBe(header.length);
          const e = decoded.endpoints!;
          expect([e.sourcePort, e.destinationPort]).toEqual([sourcePort, destinationPort]);
          const v6 = source.includes(':') && !source.startsWith('::ffff:');
          expect(decoded.family).toBe(v6 ? 'TCP6' : 'TCP4');
          if (v6) {
            expect(ipv6Bytes(e.sourceAddress)).toEqual(ipv6Bytes(source));
            expect(ipv6Bytes(e.destinationAddress)).toEqual(ipv6Bytes(destination));
          } else {
            expect(e.sourceAddress).toBe(source.replace('::ffff:', ''));
            expect(e.destinationAddress).toBe(destination);
          }
          const v1 = encodeProxyV1({ sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort }).toString();
          expect(v1).toMatch(/^PROXY TCP[46] \S+ \S+ \d+ \d+\r\n$/);
          expect(v1.length).toBeLessThanOrEqual(107); // the spec's maximum v1 line
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('v2 decoding of random bytes never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, signed) => {
        const input = signed ? Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]), bytes]) : bytes;
        expect(['need-more', 'done', 'invalid']).toContain(decodeProxyV2(input).state);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
