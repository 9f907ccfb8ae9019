/**
 * Conflict detection before an OFFER (RFC 2131 §4.4.1 "SHOULD probe"): is some host already using the address?
 *
 * The probe itself is a ProbeFn: by ARP from the addon (arp-probe.ts; every probe in parallel, a short timeout),
 * or, where natd cannot open a packet socket (no CAP_NET_RAW), the older `pingProbe` below: flush the address's
 * neighbour entry, spawn `ping -I <bridge>` (so the kernel ARPs for the address first), read the neighbour entry
 * back. Either way the answering MAC is known, so the client itself still holding the address is no conflict.
 *
 * Results are cached (an address in use for a minute; a free one only a few seconds, since a host may take it at any
 * time) so a retransmitted DISCOVER costs nothing (the DHCP core reads the cache as CoreDeps.conflictVerdict and asks
 * for a probe only without a fresh verdict); probes for the same address share one, and at most `maxConcurrent` run at
 * a time. Past `maxQueued` waiting probes the detector answers 'busy' at once, and so does a probe that could not get
 * its request out: the core then holds the OFFER back (the client retransmits its DISCOVER) rather than offer an
 * address nobody probed (issue 13: it used to offer unprobed past 128 queued).
 * 'skipped' is left for a probe that cannot run at all (ping missing): nothing can be learned, so waiting is useless.
 */
import { execFile } from 'node:child_process';
import { formatIpv4, normalizeMac } from '../net/ipv4.js';
import type { ProbeVerdict } from './types.js';

/** What one probe saw: whether anything answered, and the answering MAC when the neighbour table knows it. */
export interface ProbeAnswer {
  answered: boolean;
  mac?: string;
  /** the probe could not run (ping missing, no permission); treated as "nothing known" */
  error?: string;
  /** with `error`: a passing failure (the request could not be sent now); the caller should wait, not go unprobed */
  retry?: boolean;
}

/** `clientMac`: the client the address is meant for; a probe that can tell answers apart waits for another host. */
export type ProbeFn = (address: string, clientMac?: string) => Promise<ProbeAnswer>;

export type { ProbeVerdict } from './types.js';

export interface ConflictStats {
  probes: number;
  inUse: number;
  skipped: number;
  /** checks answered 'busy' (probe queue full, or no request could be sent) */
  busy: number;
  errors: number;
  running: number;
  queued: number;
}

export interface ConflictDetectorOptions {
  probe: ProbeFn;
  maxConcurrent?: number;
  maxQueued?: number;
  inUseTtlMs?: number;
  freeTtlMs?: number;
  now?: () => number;
}

const DEFAULT_MAX_CONCURRENT = 8;
/** Probes waiting for a slot; past it a check answers 'busy' (the DISCOVER is not answered, the client retries). */
const DEFAULT_MAX_QUEUED = 1024;
const DEFAULT_IN_USE_TTL_MS = 60_000;
const DEFAULT_FREE_TTL_MS = 3_000;
/** Bound on remembered results; entries are cheap but a scan of a /16 should not grow the map forever. */
const MAX_CACHE_ENTRIES = 4096;

interface Cached {
  inUse: boolean;
  until: number;
}

export class ConflictDetector {
  private readonly cache = new Map<number, Cached>();
  private readonly inFlight = new Map<number, Promise<ProbeVerdict>>();
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private readonly counters = { probes: 0, inUse: 0, skipped: 0, busy: 0, errors: 0 };
  private readonly probe: ProbeFn;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly inUseTtlMs: number;
  private readonly freeTtlMs: number;
  private readonly now: () => number;

  constructor(opts: ConflictDetectorOptions) {
    this.probe = opts.probe;
    this.maxConcurrent = Math.max(1, opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT);
    this.maxQueued = Math.max(0, opts.maxQueued ?? DEFAULT_MAX_QUEUED);
    this.inUseTtlMs = opts.inUseTtlMs ?? DEFAULT_IN_USE_TTL_MS;
    this.freeTtlMs = opts.freeTtlMs ?? DEFAULT_FREE_TTL_MS;
    this.now = opts.now ?? Date.now;
  }

  /** The remembered verdict for an address, if still fresh (the DHCP core's CoreDeps.conflictVerdict). */
  cached = (address: number): 'in-use' | 'free' | undefined => {
    const entry = this.cache.get(address >>> 0);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.cache.delete(address >>> 0);
      return undefined;
    }
    return entry.inUse ? 'in-use' : 'free';
  };

  /**
   * Probes the address (or joins the probe already running for it). `clientMac`: the client the address is meant
   * for; its own answer is no conflict. `fresh`: do not answer from the cache (verifying a DECLINE: a "free" seen
   * for the offer a moment ago is exactly what the client disputes). Never rejects.
   */
  check(address: number, clientMac: string, opts: { fresh?: boolean } = {}): Promise<ProbeVerdict> {
    const key = address >>> 0;
    const known = opts.fresh ? undefined : this.cached(key);
    if (known) return Promise.resolve(known);
    const running = this.inFlight.get(key);
    if (running) return running;
    if (this.running >= this.maxConcurrent && this.waiting.length >= this.maxQueued) {
      this.counters.busy++;
      return Promise.resolve('busy');
    }
    const verdict = this.runWhenSlotFree(() => this.probeOnce(key, clientMac)).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, verdict);
    return verdict;
  }

  stats(): ConflictStats {
    return { ...this.counters, running: this.running, queued: this.waiting.length };
  }

  private async probeOnce(address: number, clientMac: string): Promise<ProbeVerdict> {
    this.counters.probes++;
    let answer: ProbeAnswer;
    try {
      answer = await this.probe(formatIpv4(address), clientMac);
    } catch (err) {
      answer = { answered: false, error: (err as Error).message };
    }
    if (answer.error !== undefined) {
      // Nothing learned: do not cache. A passing failure holds the offer back; a probe that cannot run at all does not.
      this.counters.errors++;
      if (answer.retry) {
        this.counters.busy++;
        return 'busy';
      }
      this.counters.skipped++;
      return 'skipped';
    }
    const answeringMac = answer.mac === undefined ? undefined : normalizeMac(answer.mac);
    const byClient = answer.answered && answeringMac !== undefined && answeringMac === normalizeMac(clientMac);
    const inUse = answer.answered && !byClient;
    if (inUse) this.counters.inUse++;
    this.remember(address, inUse);
    return inUse ? 'in-use' : 'free';
  }

  private remember(address: number, inUse: boolean): void {
    if (this.cache.size >= MAX_CACHE_ENTRIES) {
      const now = this.now();
      for (const [key, entry] of this.cache) if (entry.until <= now) this.cache.delete(key);
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    }
    this.cache.set(address, { inUse, until: this.now() + (inUse ? this.inUseTtlMs : this.freeTtlMs) });
  }

  private async runWhenSlotFree<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

export interface PingProbeOptions {
  device: string;
  timeoutMs?: number;
  /** override the binaries (tests) */
  pingCommand?: string;
  ipCommand?: string;
}

/** A ProbeFn: fresh ARP + one ICMP echo out of `device`; answered when either got an answer. */
export function pingProbe(opts: PingProbeOptions): ProbeFn {
  const timeoutMs = opts.timeoutMs ?? 500;
  const seconds = (timeoutMs / 1000).toFixed(3);
  const ipCommand = opts.ipCommand ?? 'ip';
  return async (address) => {
    // natd itself seeds entries for unicast OFFERs: without the flush the echo would go to whichever MAC held the
    // address last, and an old entry would look like an ARP answer
    await run(ipCommand, ['neigh', 'flush', 'to', address, 'dev', opts.device], 2000);
    const ping = await run(opts.pingCommand ?? 'ping', ['-n', '-q', '-c', '1', '-W', seconds, '-I', opts.device, address], timeoutMs + 2000);
    // iputils: 0 = reply received, 1 = no reply, anything else = could not ping at all
    if (ping.code !== 0 && ping.code !== 1) return { answered: false, error: ping.stderr.trim() || `ping exited ${ping.code}` };
    const neigh = await run(ipCommand, ['-j', 'neigh', 'show', 'to', address, 'dev', opts.device], 2000);
    const mac = neigh.code === 0 ? macFromNeighJson(neigh.stdout, address) : undefined;
    if (mac) return { answered: true, mac };
    return { answered: ping.code === 0 };
  };
}

/** The lladdr of `address` in `ip -j neigh` output, if any; tolerant of any shape. */
export function macFromNeighJson(text: string, address: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  for (const entry of parsed as Array<{ dst?: unknown; lladdr?: unknown }>) {
    if (entry && entry.dst === address && typeof entry.lladdr === 'string') return normalizeMac(entry.lladdr);
  }
  return undefined;
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout: stdout ?? '', stderr: stderr || err.message });
    });
  });
}
