/**
 * The conflict probe by ARP (issue 13): a ProbeFn (probe.ts) that asks the bridge "who-has X tell <gateway>" and
 * waits a short, configurable time for anyone to claim X. ARP is answered by every host that uses an address, even
 * one whose firewall drops ICMP echo, and costs one 42-byte frame instead of a `ping` process; all probes run in
 * parallel on one packet socket (native/arp_probe.c), so a boot storm of new VMs waits one timeout, not a queue.
 *
 * The socket reports the sender of every ARP frame another host puts on the bridge; this class keeps the probes
 * waiting for an address and their timers, and matches senders by IP. The client the address is meant for is no
 * conflict (a client re-using its old address answers for it): its answer is noted, the probe goes on waiting for
 * another host, and says "answered by the client" at the end. One retransmission at half the timeout covers a lost
 * frame. Requests the kernel could not take (a full queue) go out with the retransmission; a probe that never got
 * a request out answers `retry` (the caller holds the offer back rather than offer an unprobed address).
 */
import { formatIpv4, normalizeMac, parseIpv4 } from '../net/ipv4.js';
import type { ProbeAnswer, ProbeFn } from './probe.js';

/** What the prober needs from the packet socket; the addon's is in src/native.ts, tests pass a fake. */
export interface ArpSocket {
  /** sends one request per target (the first `count`); returns how many the kernel took */
  send(targets: Uint32Array, count: number): number;
  close(): void;
}

/** Opens the socket; `onSender` hears every other host's ARP sender (address as a number, MAC as text). */
export type ArpSocketOpener = (onSender: (address: number, mac: string) => void) => ArpSocket;

/** RFC 5227 waits 1-2 s per probe for hosts that may be slow; a VM on the local bridge answers in well under 1 ms.
 *  Kea's ping check waits 100 ms per echo by default, dnsmasq 3 s (PING_WAIT). */
export const DEFAULT_ARP_PROBE_TIMEOUT_MS = 250;

interface Pending {
  resolve: (answer: ProbeAnswer) => void;
  /** the client's own MAC: its answer is remembered, not a conflict */
  clientMac: string | undefined;
  clientAnswered: boolean;
  /** a request for it was taken by the kernel at least once */
  sent: boolean;
  timers: NodeJS.Timeout[];
}

export interface ArpProberOptions {
  open: ArpSocketOpener;
  timeoutMs?: number;
}

export class ArpProber {
  private readonly pending = new Map<number, Pending>();
  /** addresses whose request waits for the next send (one native call per event-loop turn) */
  private readonly toSend = new Set<number>();
  private sendScheduled = false;
  private sendBuffer = new Uint32Array(64);
  private readonly socket: ArpSocket;
  private readonly timeoutMs: number;
  private closed = false;
  readonly counters = { requests: 0, sendShortfalls: 0, answers: 0, ignoredSenders: 0 };

  constructor(opts: ArpProberOptions) {
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? DEFAULT_ARP_PROBE_TIMEOUT_MS);
    this.socket = opts.open((address, mac) => this.onSender(address, mac));
  }

  /** The ProbeFn for ConflictDetector. Two probes of one address share the first's answer (the detector already
   *  joins them; this only guards the map). */
  readonly probe: ProbeFn = (addressText, clientMac) => {
    const address = parseIpv4(addressText);
    if (address === undefined) return Promise.resolve({ answered: false, error: `not an IPv4 address: ${addressText}` });
    if (this.closed) return Promise.resolve({ answered: false, error: 'ARP probe closed' });
    const running = this.pending.get(address);
    if (running) {
      return new Promise((resolve) => {
        const first = running.resolve;
        running.resolve = (answer) => {
          first(answer);
          resolve(answer);
        };
      });
    }
    return new Promise((resolve) => {
      const entry: Pending = { resolve, clientMac: clientMac === undefined ? undefined : normalizeMac(clientMac), clientAnswered: false, sent: false, timers: [] };
      this.pending.set(address, entry);
      entry.timers.push(setTimeout(() => this.queueSend(address), Math.max(1, Math.floor(this.timeoutMs / 2))));
      entry.timers.push(setTimeout(() => this.finish(address), this.timeoutMs));
      this.queueSend(address);
    });
  };

  /** Probes still waiting for their answer or timeout. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** Ends every waiting probe with an error answer (nothing learned) and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const address of [...this.pending.keys()]) this.finish(address, { answered: false, error: 'ARP probe closed' });
    this.socket.close();
  }

  private onSender(address: number, mac: string): void {
    const entry = this.pending.get(address >>> 0);
    if (!entry) {
      this.counters.ignoredSenders++;
      return;
    }
    const sender = normalizeMac(mac);
    if (sender !== undefined && sender === entry.clientMac) {
      entry.clientAnswered = true;
      return;
    }
    this.counters.answers++;
    this.finish(address >>> 0, { answered: true, ...(sender ? { mac: sender } : {}) });
  }

  private queueSend(address: number): void {
    if (this.closed || !this.pending.has(address)) return;
    this.toSend.add(address);
    if (this.sendScheduled) return;
    this.sendScheduled = true;
    // every DISCOVER of one receive batch is probed by one native call
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.sendScheduled = false;
    if (this.closed || this.toSend.size === 0) return;
    if (this.sendBuffer.length < this.toSend.size) this.sendBuffer = new Uint32Array(this.toSend.size * 2);
    const order = [...this.toSend];
    this.toSend.clear();
    order.forEach((address, i) => (this.sendBuffer[i] = address));
    let taken: number;
    try {
      taken = this.socket.send(this.sendBuffer, order.length);
    } catch {
      taken = 0; // the bridge is down or gone: the retransmission tries again, the timeout ends the probe
    }
    this.counters.requests += taken;
    if (taken < order.length) this.counters.sendShortfalls++;
    for (let i = 0; i < taken; i++) {
      const entry = this.pending.get(order[i]!);
      if (entry) entry.sent = true;
    }
  }

  private finish(address: number, answer?: ProbeAnswer): void {
    const entry = this.pending.get(address);
    if (!entry) return;
    this.pending.delete(address);
    this.toSend.delete(address);
    for (const timer of entry.timers) clearTimeout(timer);
    entry.resolve(answer ?? this.timedOut(entry, address));
  }

  /** The answer when nobody but (maybe) the client itself answered within the timeout. */
  private timedOut(entry: Pending, address: number): ProbeAnswer {
    if (!entry.sent) return { answered: false, error: `no ARP request for ${formatIpv4(address)} could be sent`, retry: true };
    if (entry.clientAnswered && entry.clientMac) return { answered: true, mac: entry.clientMac };
    return { answered: false };
  }
}

/** The probe natd runs and the detector limits that suit it. */
export interface ConflictProbeChoice {
  kind: 'arp' | 'ping';
  probe: ProbeFn;
  /** probes the detector may run at once: ARP ones cost a frame and a timer each, ping ones a process */
  maxConcurrent: number;
  /** stops the ARP socket (no-op for ping) */
  close(): void;
}

/** ARP probes outstanding at once: more than a boot storm of new VMs needs, few enough to bound the timers. */
export const ARP_MAX_CONCURRENT = 1024;
/** ping probes running at once (each is a process or three) */
export const PING_MAX_CONCURRENT = 8;

export interface ChooseProbeOptions {
  timeoutMs: number;
  /** opens the packet socket (openArpSocket from src/native.ts bound to the bridge and the gateway address) */
  openArp: ArpSocketOpener;
  /** the fallback */
  ping: () => ProbeFn;
  /** told once when natd falls back to ping */
  onFallback(reason: string): void;
}

/** The ARP probe, or ping when the packet socket cannot be opened (no CAP_NET_RAW, AF_PACKET filtered out). */
export function chooseConflictProbe(opts: ChooseProbeOptions): ConflictProbeChoice {
  try {
    const prober = new ArpProber({ open: opts.openArp, timeoutMs: opts.timeoutMs });
    return { kind: 'arp', probe: prober.probe, maxConcurrent: ARP_MAX_CONCURRENT, close: () => prober.close() };
  } catch (err) {
    const code = (err as { code?: string }).code;
    opts.onFallback(code ? `${code}: ${(err as Error).message}` : (err as Error).message);
    return { kind: 'ping', probe: opts.ping(), maxConcurrent: PING_MAX_CONCURRENT, close: () => {} };
  }
}
