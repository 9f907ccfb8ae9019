/**
 * The ARP conflict probe (src/dhcp/arp-probe.ts) over a fake packet socket: one batch of requests per event-loop
 * turn, replies matched by sender address, the client's own answer no conflict, one retransmission, the timeout,
 * requests the kernel would not take, and the fallback to ping when the socket cannot be opened.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ArpProber, chooseConflictProbe, type ArpSocket } from '../../src/dhcp/arp-probe.js';
import { ConflictDetector, type ProbeAnswer } from '../../src/dhcp/probe.js';
import { formatIpv4, parseIpv4 } from '../../src/net/ipv4.js';

const ip = (text: string): number => parseIpv4(text)!;
const CLIENT = '52:54:00:00:00:01';
const OTHER = '52:54:00:99:99:99';

/** A packet socket that records each send() as the list of targets, and lets the test play other hosts' senders. */
function fakeSocket(opts: { accept?: (count: number) => number } = {}) {
  const sends: string[][] = [];
  let onSender: (address: number, mac: string) => void = () => {};
  let closed = false;
  const open = (cb: (address: number, mac: string) => void): ArpSocket => {
    onSender = cb;
    return {
      send(targets, count) {
        const taken = opts.accept ? opts.accept(count) : count;
        sends.push([...targets.subarray(0, taken)].map(formatIpv4));
        return taken;
      },
      close() {
        closed = true;
      },
    };
  };
  return { open, sends, answer: (address: string, mac: string) => onSender(ip(address), mac), closed: () => closed };
}

/** Resolves to the answer, or 'pending' while the promise is unsettled. */
async function peek(p: Promise<ProbeAnswer>): Promise<ProbeAnswer | 'pending'> {
  return Promise.race([p, Promise.resolve('pending' as const)]);
}

describe('ArpProber', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('sends one request per address, all probes of a turn in one batch, and ends a probe at the first other host', async () => {
    const s = fakeSocket();
    const prober = new ArpProber({ open: s.open, timeoutMs: 250 });
    const a = prober.probe('10.0.0.5', CLIENT);
    const b = prober.probe('10.0.0.6', CLIENT);
    await vi.advanceTimersByTimeAsync(0);
    expect(s.sends).toEqual([['10.0.0.5', '10.0.0.6']]);
    s.answer('10.0.0.5', OTHER.toUpperCase());
    expect(await peek(a)).toEqual({ answered: true, mac: OTHER });
    expect(await peek(b)).toBe('pending');
    expect(prober.outstanding).toBe(1);
  });

  it('answers "free" after the timeout with one retransmission at half of it, and ignores late and unrelated senders', async () => {
    const s = fakeSocket();
    const prober = new ArpProber({ open: s.open, timeoutMs: 200 });
    const a = prober.probe('10.0.0.5', CLIENT);
    s.answer('10.0.0.9', OTHER); // nobody asked about .9
    await vi.advanceTimersByTimeAsync(199);
    expect(await peek(a)).toBe('pending');
    expect(s.sends).toEqual([['10.0.0.5'], ['10.0.0.5']]);
    await vi.advanceTimersByTimeAsync(1);
    expect(await a).toEqual({ answered: false });
    s.answer('10.0.0.5', OTHER); // too late: nothing waits for it
    expect(prober.counters).toMatchObject({ requests: 2, answers: 0, ignoredSenders: 2 });
  });

  it("does not take the client's own answer for a conflict, but still hears another host claiming the address", async () => {
    const s = fakeSocket();
    const prober = new ArpProber({ open: s.open, timeoutMs: 100 });
    const own = prober.probe('10.0.0.5', CLIENT);
    const both = prober.probe('10.0.0.6', CLIENT);
    await vi.advanceTimersByTimeAsync(0);
    s.answer('10.0.0.5', CLIENT);
    s.answer('10.0.0.6', CLIENT);
    expect(await peek(own)).toBe('pending');
    s.answer('10.0.0.6', OTHER);
    expect(await peek(both)).toEqual({ answered: true, mac: OTHER });
    await vi.advanceTimersByTimeAsync(100);
    // answered by the client only: the detector sees the client's MAC and calls it no conflict
    expect(await own).toEqual({ answered: true, mac: CLIENT });
  });

  it('runs hundreds of probes at once: one batch, one timeout for all', async () => {
    const s = fakeSocket();
    const prober = new ArpProber({ open: s.open, timeoutMs: 250 });
    const addresses = Array.from({ length: 500 }, (_, i) => formatIpv4(ip('10.1.0.0') + i));
    const answers = addresses.map((a) => prober.probe(a, CLIENT));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.sends).toHaveLength(1);
    expect(s.sends[0]).toHaveLength(500);
    s.answer('10.1.0.7', OTHER);
    await vi.advanceTimersByTimeAsync(250);
    const settled = await Promise.all(answers);
    expect(settled.filter((a) => a.answered)).toEqual([{ answered: true, mac: OTHER }]);
    expect(prober.outstanding).toBe(0);
  });

  it('sends what the kernel would not take with the retransmission, and says "retry" when nothing went out', async () => {
    let budget = 1;
    const s = fakeSocket({ accept: (count) => Math.min(count, budget) });
    const prober = new ArpProber({ open: s.open, timeoutMs: 100 });
    const first = prober.probe('10.0.0.5', CLIENT);
    const second = prober.probe('10.0.0.6', CLIENT);
    await vi.advanceTimersByTimeAsync(0);
    expect(s.sends).toEqual([['10.0.0.5']]);
    budget = 0;
    await vi.advanceTimersByTimeAsync(100);
    expect(await first).toEqual({ answered: false });
    expect(await second).toMatchObject({ answered: false, retry: true });
    // through the detector: no verdict, so the caller does not offer the address
    const detector = new ConflictDetector({ probe: prober.probe });
    const verdict = detector.check(ip('10.0.0.7'), CLIENT);
    await vi.advanceTimersByTimeAsync(100);
    expect(await verdict).toBe('busy');
  });

  it('ends waiting probes with "nothing learned" on close and closes the socket once', async () => {
    const s = fakeSocket();
    const prober = new ArpProber({ open: s.open, timeoutMs: 100 });
    const a = prober.probe('10.0.0.5', CLIENT);
    prober.close();
    prober.close();
    expect(await a).toMatchObject({ answered: false, error: 'ARP probe closed' });
    expect(s.closed()).toBe(true);
  });
});

describe('chooseConflictProbe', () => {
  it('uses ARP when the socket opens', () => {
    const s = fakeSocket();
    const fallback = vi.fn();
    const choice = chooseConflictProbe({ timeoutMs: 250, openArp: s.open, ping: () => async () => ({ answered: false }), onFallback: fallback });
    expect(choice).toMatchObject({ kind: 'arp', maxConcurrent: 1024 });
    expect(fallback).not.toHaveBeenCalled();
    choice.close();
    expect(s.closed()).toBe(true);
  });

  it('falls back to ping, saying why once, when the packet socket cannot be opened (no CAP_NET_RAW)', async () => {
    const fallback = vi.fn();
    const ping = vi.fn(() => async () => ({ answered: true, mac: OTHER }));
    const choice = chooseConflictProbe({
      timeoutMs: 250,
      openArp: () => {
        throw Object.assign(new Error('socket(br0): Operation not permitted'), { code: 'EPERM' });
      },
      ping,
      onFallback: fallback,
    });
    expect(choice).toMatchObject({ kind: 'ping', maxConcurrent: 8 });
    expect(fallback).toHaveBeenCalledTimes(1);
    expect(fallback.mock.calls[0]![0]).toMatch(/^EPERM/);
    expect(await choice.probe('10.0.0.5')).toEqual({ answered: true, mac: OTHER });
  });
});
