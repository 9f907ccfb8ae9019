/**
 * issue 14: `ip -6 monitor neigh` lines carry addresses and MACs guests choose. Random text and mutated well-formed
 * lines never throw and yield an event only for a line that starts with an IPv6 address (after Deleted/miss); every
 * well-formed line reads back; and a learner fed any sequence of lines keeps its bounds (tracked pairs, per-MAC
 * pairs, the table's per-guest cap) and publishes only addresses in the /64.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIpv6, networkOf, parseIpv6, sameBytes } from '../../src/ipv6/address.js';
import { GuestAddresses } from '../../src/ipv6/guest-addresses.js';
import { parseMonitorLine } from '../../src/ipv6/neigh-monitor-line.js';
import { NeighbourLearner } from '../../src/ipv6/neighbours.js';
import { recordingLogger } from '../support/recording-logger.js';

const NET = parseIpv6('fd00:10:10::')!;
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const inNet = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((low) => formatIpv6(Uint8Array.from([...NET.subarray(0, 8), ...low])));
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const fewMacs = fc.constantFrom('52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03');
const state = fc.constantFrom('REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'INCOMPLETE', 'PERMANENT', 'NOARP', 'router', 'extern_learn');
const prefix = fc.constantFrom('', 'Deleted ', 'miss ', '[NEIGH]');

function line(address: string, dev: string | null, lladdr: string | null, states: string[], pre: string): string {
  return pre + [address, ...(dev ? ['dev', dev] : []), ...(lladdr ? ['lladdr', lladdr] : []), ...states].join(' ');
}
const wellFormed = fc.tuple(fc.oneof(bytes16.map(formatIpv6), inNet), fc.option(fc.constantFrom('br0', 'eth0')), fc.option(fc.oneof(mac, fewMacs)), fc.array(state, { maxLength: 3 }), prefix)
  .map(([a, d, l, s, p]) => line(a, d, l, s, p));
/** a well-formed line with a few characters replaced, inserted or cut */
const mutated = fc.tuple(wellFormed, fc.array(fc.tuple(fc.nat(), fc.constantFrom('replace', 'insert', 'cut'), fc.string({ maxLength: 3 })), { maxLength: 4 }))
  .map(([text, edits]) => edits.reduce((t, [at, how, s]) => {
    const i = t.length ? at % t.length : 0;
    return how === 'cut' ? t.slice(0, i) : how === 'insert' ? t.slice(0, i) + s + t.slice(i) : t.slice(0, i) + s + t.slice(i + 1);
  }, text));

describe('ip -6 monitor neigh lines', () => {
  it('random and mutated lines never throw; an event always has a canonical IPv6 address and a MAC in colon form', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 }), mutated), (text) => {
      const event = parseMonitorLine(text);
      if (!event) return;
      expect(formatIpv6(parseIpv6(event.entry.address)!)).toBe(event.entry.address);
      if (event.entry.mac !== undefined) expect(event.entry.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      expect(['new', 'deleted', 'miss']).toContain(event.kind);
    }), { numRuns: 4000 });
  });

  it('only lines that start with an IPv6 address produce events', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }).filter((s) => !parseIpv6(s.trim().split(/\s+/)[0] ?? '')), prefix, (head, pre) => {
      const first = head.trim().split(/\s+/)[0] ?? '';
      if (['Deleted', 'miss'].includes(first) || head.trim().startsWith('[NEIGH]')) return;
      expect(parseMonitorLine(pre + head)).toBeUndefined();
    }), { numRuns: 3000 });
  });

  it('reads back every well-formed line', () => {
    fc.assert(fc.property(bytes16, fc.option(fc.constantFrom('br0', 'virbr0')), fc.option(mac), fc.array(state, { maxLength: 3 }), fc.constantFrom(['', 'new'], ['Deleted ', 'deleted'], ['miss ', 'miss']),
      (address, dev, lladdr, states, [pre, kind]) => {
        const text = formatIpv6(address);
        expect(parseMonitorLine(line(text, dev, lladdr, states, pre!) + ' ')).toEqual({ kind, entry: { address: text, ...(dev ? { dev } : {}), ...(lladdr ? { mac: lladdr } : {}), states } });
      }), { numRuns: 2000 });
  });
});

describe('the learner under any sequence of monitor lines', () => {
  it('keeps its bounds and publishes only addresses in the /64', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.oneof(wellFormed, mutated, fc.string({ maxLength: 60 })), fc.boolean(), fc.nat(500)), { maxLength: 300 }), (steps) => {
      const table = new GuestAddresses(NET, { perGuest: 4, total: 10 });
      let t = 0;
      const l = new NeighbourLearner({ bridge: 'br0', network: NET, table, namesByMac: () => new Map(), read: () => Promise.resolve(''), logger: recordingLogger(),
        now: () => t, graceMs: 5000, freshMs: 1000, maxTracked: 20, maxPerMac: 6, probe: () => undefined });
      for (const [text, flush, dt] of steps) {
        t += dt;
        l.observeLine(text);
        if (flush) l.flush();
      }
      l.flush();
      expect(l.stats().tracked).toBeLessThanOrEqual(20);
      expect(table.stats().addresses).toBeLessThanOrEqual(10);
      for (const entry of table.list()) {
        expect(entry.addresses.length).toBeLessThanOrEqual(4);
        for (const a of entry.addresses) expect(sameBytes(networkOf(parseIpv6(a)!, 64), NET)).toBe(true);
      }
      l.close();
    }), { numRuns: 300 });
  });
});
