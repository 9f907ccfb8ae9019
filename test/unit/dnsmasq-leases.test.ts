import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDnsmasqLeases } from '../../src/dhcp/dnsmasq-leases.js';
import { parseCidr } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const fixture = fileURLToPath(new URL('../fixtures/dnsmasq-leases.txt', import.meta.url));
const subnet = parseCidr('10.10.0.1/24')!.subnet;
const NOW = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;

describe('parseDnsmasqLeases', () => {
  it('imports a real-looking leases file and reports what it skips', () => {
    const { leases, problems } = parseDnsmasqLeases(readFileSync(fixture, 'utf8'), 'dnsmasq.leases', { now: NOW, subnet });
    expect(leases).toEqual([
      // client id recorded by dnsmasq: kept, lower-case hex without colons
      { clientId: '01525400be0af3', mac: '52:54:00:be:0a:f3', address: ip('10.10.0.5'), hostname: 'web', expiresAt: 1_700_003_600_000 },
      // no client id: '01' (htype Ethernet) + MAC, the key natd derives for clients without option 61
      { clientId: '01525400be0af4', mac: '52:54:00:be:0a:f4', address: ip('10.10.0.6'), expiresAt: 1_700_003_600_000 },
      // expiry 0 (infinite in dnsmasq) becomes a day from now; name sanitised
      {
        clientId: 'ff0000000100012c3a1baa525400be0af5',
        mac: '52:54:00:be:0a:f5',
        address: ip('10.10.0.7'),
        hostname: 'build-box',
        expiresAt: NOW + DAY,
      },
      // already expired: still returned, the store drops it on load
      { clientId: '01525400be0af6', mac: '52:54:00:be:0a:f6', address: ip('10.10.0.8'), hostname: 'old', expiresAt: 1_699_990_000_000 },
    ]);
    const lines = problems.map((p) => [p.line, p.file]);
    expect(lines).toEqual([
      [5, 'dnsmasq.leases'],
      [6, 'dnsmasq.leases'],
      [7, 'dnsmasq.leases'],
    ]);
    expect(problems[0]!.message).toMatch(/address 10.10.0.5 already leased at line 1/);
    expect(problems[1]!.message).toMatch(/expected .* got 3 fields/);
    expect(problems[2]!.message).toMatch(/outside the subnet/);
  });

  it('keys non-Ethernet hardware by its own htype', () => {
    const { leases, problems } = parseDnsmasqLeases('1700003600 06-aa:bb:cc:dd:ee:ff:00:11 10.10.0.9 * *\n', 'f', { now: NOW });
    expect(problems).toEqual([]);
    expect(leases[0]!.clientId).toBe('06aabbccddeeff0011');
  });

  it('reports a lease whose client already appeared', () => {
    const text = '1700003600 52:54:00:00:00:01 10.10.0.5 a *\n1700003600 52:54:00:00:00:01 10.10.0.6 b *\n';
    const { leases, problems } = parseDnsmasqLeases(text, 'f', { now: NOW });
    expect(leases.map((l) => l.address)).toEqual([ip('10.10.0.5')]);
    expect(problems).toEqual([{ file: 'f', line: 2, message: expect.stringMatching(/already has a lease at line 1/) }]);
  });

  it('never throws, and every lease it returns is well formed', () => {
    const field = fc.oneof(
      fc.constantFrom('0', '1700003600', '52:54:00:be:0a:f3', '06-aa:bb', '10.10.0.5', 'fd00::1', '*', 'duid', 'web', '01:aa:bb', 'zz'),
      fc.string({ maxLength: 10 }),
    );
    const line = fc.array(field, { maxLength: 6 }).map((f) => f.join(' '));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 10 }), (lines) => {
        const { leases } = parseDnsmasqLeases(lines.join('\n'), 'f', { now: NOW, subnet });
        for (const l of leases) {
          expect(l.clientId).toMatch(/^[0-9a-f]+$/);
          expect(Number.isFinite(l.expiresAt)).toBe(true);
        }
        expect(new Set(leases.map((l) => l.address)).size).toBe(leases.length);
        expect(new Set(leases.map((l) => l.clientId)).size).toBe(leases.length);
      }),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 500 }), (text) => void parseDnsmasqLeases(text, 'f', { now: NOW })));
  });
});
