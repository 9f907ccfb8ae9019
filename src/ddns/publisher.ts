/**
 * Keeps a DNS server's zone in step with the lease names, as Kea's kea-dhcp-ddns does: an A record NAME.ZONE for
 * each named lease and (with a reverse zone) its PTR, added when a lease is granted or changes, removed when it ends.
 *
 * DHCP never waits for DNS. The DHCP side only records what each name should be (setAddress: O(1), synchronous);
 * the updates go out in the background, up to 8 at once for different names (never two for one name). Per DNS
 * name only the latest wish counts (a name that changes five times while the server is down is sent once, with its
 * last value), so the work queued is bounded by the names themselves (two per lease) whatever the churn, and by
 * maxNames on top: past it a change is counted and made good by a reconcile once the queue has drained.
 *
 * Failures:
 * - the server is unreachable, answers SERVFAIL/NOTAUTH, or rejects the key: every name waits; retried with
 *   exponential back-off (1 s doubling to 1 min; a rejected key 1 min doubling to 15 min, since retrying a wrong key
 *   fast only fills logs). The state and the last error are in `natd status`.
 * - the server refuses one name (REFUSED, NOTZONE, …): that name waits 5 min (then retries), the others go on.
 * - the name is somebody else's (updates.ts): a conflict, counted and logged, not retried until its value changes.
 *
 * What natd owns: every name it has asked to publish is written to a small journal in the state directory
 * (owned-names.ts) before the update goes out, and dropped from it once the server confirms the name gone. The
 * resync at start (`resync`) replaces the records of every current lease and removes every owned name without a
 * lease: that is how names of leases that ended while natd was down leave DNS. The owner TXT (updates.ts) makes
 * sure such a removal can only ever delete what natd itself put there.
 */
import type { Logger } from '../log.js';
import type { Exchanger } from './client.js';
import { rcodeName } from './message.js';
import type { OwnedNames } from './owned-names.js';
import { buildStep, describeValue, interpret, reverseName, type ManagedName, type RecordValue, type Step } from './updates.js';

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** a rejected key */
  authBaseMs: number;
  authMaxMs: number;
  /** one name the server refused */
  nameRetryMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 60_000, authBaseMs: 60_000, authMaxMs: 15 * 60_000, nameRetryMs: 5 * 60_000 };

export interface PublisherOptions {
  exchanger: Exchanger;
  owned: OwnedNames;
  /** forward zone: names are LABEL.zone */
  zone: string;
  /** the reverse zone of the subnet, when PTRs are published */
  reverseZone: string | undefined;
  /** written into the ownership TXT: host/bridge */
  owner: string;
  ttlSeconds: number;
  logger: Logger;
  now?: () => number;
  timers?: Timers;
  backoff?: Partial<BackoffPolicy>;
  /** names tracked at most (default 2^17: two per lease of a /16, plus removals); see want() */
  maxNames?: number;
  /** updates in flight at once, for different names (default 8: a resync is bound by round trips, not CPU) */
  maxInFlight?: number;
}

export type PublisherState = 'starting' | 'ok' | 'retrying' | 'key-rejected';

interface Entry extends ManagedName {
  /** null: the name should not exist */
  desired: RecordValue | null;
  /** what the server is known to hold; undefined when unknown (at start, after a failure) */
  confirmed: RecordValue | null | undefined;
  /** the value a conflict was found for: not retried until the desired value changes */
  conflictFor?: RecordValue | null;
  /** a per-name retry timer (the server refused this name) */
  parked?: unknown;
}

export interface PublisherStats {
  state: PublisherState;
  /** UPDATE messages sent */
  sent: number;
  /** names brought to their wanted state */
  succeeded: number;
  /** attempts that failed (server down, key rejected, name refused) */
  failed: number;
  /** names somebody else owns, not published */
  conflicts: number;
  /** names waiting to be updated now */
  pending: number;
  /** names natd owns on the server (as far as it knows) */
  owned: number;
  /** changes not tracked because maxNames was reached (each one is made good by a reconcile once the queue drains) */
  overflowed: number;
  lastError: { message: string; at: string } | undefined;
  lastSuccessAt: string | undefined;
  /** when the next attempt is due while the server is failing */
  retryAt: string | undefined;
}

const keyOf = (kind: string, name: string): string => `${kind} ${name}`;

export class DdnsPublisher {
  /** names with work to do (or in conflict): bounded by maxNames */
  private readonly entries = new Map<string, Entry>();
  /** names whose value the server is known to hold (two per named lease at most) */
  private readonly settled = new Map<string, RecordValue>();
  /** the key being sent now */
  private readonly inFlight = new Set<string>();
  /** keys to work on, in order; a key is in it at most once */
  private readonly queue = new Set<string>();
  private readonly byAddress = new Map<number, string>();
  private readonly byName = new Map<string, number>();
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly backoff: BackoffPolicy;
  private readonly logger: Logger;
  private closed = false;
  private started = false;
  private failures = 0;
  private retryTimer: unknown;
  private retryAt: number | undefined;
  private state: PublisherState = 'starting';
  private counters = { sent: 0, succeeded: 0, failed: 0 };
  private conflicts = new Set<string>();
  private lastError: { message: string; at: number } | undefined;
  private lastSuccessAt: number | undefined;
  private readonly maxNames: number;
  private readonly maxInFlight: number;
  private pumpScheduled = false;
  private overflowed = 0;
  /** a change was dropped at the bound: reconcile once the queue has drained */
  private reconcileWanted = false;

  constructor(private readonly opts: PublisherOptions) {
    this.now = opts.now ?? Date.now;
    this.timers = opts.timers ?? realTimers;
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.logger = opts.logger;
    this.maxNames = opts.maxNames ?? 2 ** 17;
    this.maxInFlight = opts.maxInFlight ?? 8;
  }

  /** Starts sending (after the resync has recorded what every name should be). */
  start(): void {
    this.started = true;
    this.pump();
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer !== undefined) this.timers.clear(this.retryTimer);
    for (const e of this.entries.values()) if (e.parked !== undefined) this.timers.clear(e.parked);
    this.opts.owned.close();
  }

  /**
   * The full state at start: `leases` are the named leases now (label, address). Every one is re-sent (the
   * server may have lost or changed them while natd was down); every owned name not among them is removed.
   */
  resync(leases: Iterable<{ address: number; label: string }>): void {
    for (const { address, label } of leases) this.setAddress(address, label);
    for (const e of this.entries.values()) e.confirmed = undefined;
    this.settled.clear();
    for (const owned of this.opts.owned.list()) {
      const key = keyOf(owned.kind, owned.name);
      if (!this.entries.has(key)) this.want(owned, null);
    }
    for (const [key, e] of this.entries) if (e.desired !== null) this.enqueue(key, e);
  }

  /** `label` (a lease's host name, no domain) now names `address`; undefined: the address has no name any more. */
  setAddress(address: number, label: string | undefined): void {
    const lower = label?.toLowerCase();
    const old = this.byAddress.get(address);
    if (old === lower) return;
    if (old !== undefined) {
      this.byAddress.delete(address);
      if (this.byName.get(old) === address) {
        this.byName.delete(old);
        this.want(this.forward(old), null);
      }
      if (this.opts.reverseZone) this.want(this.reverse(address), null);
    }
    if (lower === undefined) return;
    const previous = this.byName.get(lower);
    if (previous !== undefined && previous !== address) {
      this.byAddress.delete(previous);
      if (this.opts.reverseZone) this.want(this.reverse(previous), null);
    }
    this.byAddress.set(address, lower);
    this.byName.set(lower, address);
    const forward = this.forward(lower);
    this.want(forward, address);
    if (this.opts.reverseZone) this.want(this.reverse(address), forward.name);
  }

  /** A new TSIG key (reload): names waiting for a rejected key are tried at once. */
  retryNow(): void {
    if (this.retryTimer !== undefined) this.timers.clear(this.retryTimer);
    this.retryTimer = undefined;
    this.retryAt = undefined;
    this.failures = 0;
    this.pump();
  }

  stats(): PublisherStats {
    const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
    let pending = 0;
    for (const e of this.entries.values()) if (this.needsWork(e)) pending++;
    return {
      state: this.state,
      ...this.counters,
      conflicts: this.conflicts.size,
      pending,
      overflowed: this.overflowed,
      owned: this.opts.owned.size,
      lastError: this.lastError ? { message: this.lastError.message, at: iso(this.lastError.at)! } : undefined,
      lastSuccessAt: iso(this.lastSuccessAt),
      retryAt: iso(this.retryAt),
    };
  }

  /** Re-derives every name's wish from the address→name tables (after changes were dropped at the bound). */
  private reconcile(): void {
    this.reconcileWanted = false;
    const wanted = new Set<string>();
    for (const [address, label] of this.byAddress) {
      const forward = this.forward(label);
      wanted.add(keyOf('A', forward.name));
      this.want(forward, address);
      if (this.opts.reverseZone) {
        const reverse = this.reverse(address);
        wanted.add(keyOf('PTR', reverse.name));
        this.want(reverse, forward.name);
      }
    }
    for (const owned of this.opts.owned.list()) if (!wanted.has(keyOf(owned.kind, owned.name))) this.want(owned, null);
  }

  private forward(label: string): ManagedName {
    return { kind: 'A', name: `${label}.${this.opts.zone}`, zone: this.opts.zone };
  }

  private reverse(address: number): ManagedName {
    return { kind: 'PTR', name: reverseName(address), zone: this.opts.reverseZone! };
  }

  /**
   * Records that `target` should have `value`. A name whose value the server is known to hold needs no entry; the
   * entries are the work (and the conflicts), and they are bounded: past maxNames a change is dropped, counted, and
   * made good by reconcile() once the queue has drained (the address→name tables, bounded by the leases, hold it).
   */
  private want(target: ManagedName, value: RecordValue | null): void {
    const key = keyOf(target.kind, target.name);
    let e = this.entries.get(key);
    if (!e) {
      // natd records a name as owned before it sends anything for it: a name not owned has nothing of natd's there
      const confirmed = this.settled.has(key) ? this.settled.get(key)! : this.opts.owned.has(target) ? undefined : null;
      if (confirmed === value) return;
      if (this.entries.size >= this.maxNames) {
        this.overflowed++;
        this.reconcileWanted = true;
        this.logger.warnLimited('ddns:overflow', 'DDNS: too many names waiting; this change is sent once the queue has drained', { name: target.name, maxNames: this.maxNames });
        return;
      }
      e = { ...target, desired: value, confirmed };
      this.entries.set(key, e);
    } else {
      // a name owned under another zone (the zone changed) keeps its zone until it is removed
      if (value !== null) e.zone = target.zone;
      e.desired = value;
    }
    if (e.conflictFor !== undefined && e.conflictFor !== value) {
      e.conflictFor = undefined;
      this.conflicts.delete(key);
    }
    if (this.needsWork(e)) this.enqueue(key, e);
    else if (e.conflictFor === undefined && e.parked === undefined && !this.inFlight.has(key)) this.settle(key, e);
  }

  /** The entry's work is done: its value moves to `settled` (or nowhere, when the name should not exist). */
  private settle(key: string, e: Entry): void {
    this.entries.delete(key);
    if (e.confirmed === null || e.confirmed === undefined) this.settled.delete(key);
    else this.settled.set(key, e.confirmed);
  }

  private needsWork(e: Entry): boolean {
    return e.desired !== e.confirmed && !(e.conflictFor !== undefined && e.conflictFor === e.desired);
  }

  private enqueue(key: string, e: Entry): void {
    if (e.parked !== undefined) return; // its own timer brings it back
    this.queue.add(key);
    this.schedulePump();
  }

  /**
   * Sending waits for the event loop's next turn: a lease change only records the wish, the DHCP path never builds,
   * signs or sends an update itself (and a batch of changes is looked at once).
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Starts updates until maxInFlight are out (different names; one name is never updated twice at once). */
  private pump(): void {
    while (!this.closed && this.started && this.retryAt === undefined && this.inFlight.size < this.maxInFlight) {
      let next = this.takeNext();
      if (!next && this.reconcileWanted && this.inFlight.size === 0) {
        this.reconcile();
        next = this.takeNext();
      }
      if (!next) return;
      const [key, e] = next;
      this.inFlight.add(key);
      void this.work(key, e)
        .catch((err: unknown) => this.unsendable(key, e, err))
        .finally(() => {
          this.inFlight.delete(key);
          this.pump();
        });
    }
  }

  private takeNext(): [string, Entry] | undefined {
    for (const key of this.queue) {
      if (this.inFlight.has(key)) continue; // it goes again when its update is answered
      this.queue.delete(key);
      const e = this.entries.get(key);
      if (e && this.needsWork(e) && e.parked === undefined) return [key, e];
    }
    return undefined;
  }

  /** Brings one name to its desired value: one or two UPDATEs. */
  private async work(key: string, e: Entry): Promise<void> {
    const value = e.desired;
    const target: ManagedName = { kind: e.kind, name: e.name, zone: e.zone };
    if (value !== null) this.opts.owned.add(target); // before the update goes out: a crash leaves it to the resync
    let step: Step = value === null ? 'remove-if-ours' : 'add-if-free';
    for (;;) {
      this.counters.sent++;
      const result = await this.opts.exchanger.exchange(buildStep(0, step, target, value, this.opts.owner, this.opts.ttlSeconds));
      if (this.closed) return;
      if (!result.ok) return this.serverFailed(key, e, result.kind === 'auth', result.message);
      const outcome = interpret(step, result.rcode);
      switch (outcome.kind) {
        case 'next':
          step = outcome.step;
          continue;
        case 'done':
          return this.succeeded(key, e, value);
        case 'conflict':
          return this.conflict(key, e, value);
        case 'server-failed':
          return this.serverFailed(key, e, false, `${e.name}: the server answered ${rcodeName(outcome.rcode)}${outcome.rcode === 9 ? ' (not authoritative for the zone, or the key is not accepted)' : ''}`);
        case 'name-failed':
          return this.nameFailed(key, e, outcome.rcode);
      }
    }
  }

  private succeeded(key: string, e: Entry, value: RecordValue | null): void {
    this.counters.succeeded++;
    this.lastSuccessAt = this.now();
    e.confirmed = value;
    if (value === null) this.opts.owned.remove(e);
    if (this.state !== 'ok') {
      if (this.state !== 'starting') this.logger.info('DDNS: the server accepts updates again', { zone: e.zone, name: e.name });
      this.state = 'ok';
    }
    this.failures = 0;
    this.logger.debug('DDNS: name updated', { name: e.name, kind: e.kind, value: describeValue(e, value) });
    if (this.needsWork(e)) this.queue.add(key);
    else this.settle(key, e);
  }

  private conflict(key: string, e: Entry, value: RecordValue | null): void {
    e.conflictFor = value;
    e.confirmed = undefined;
    this.conflicts.add(key);
    this.opts.owned.remove(e);
    this.logger.warnLimited('ddns:conflict', 'DDNS: the name exists on the server and is not natd\'s: left alone', { name: e.name, kind: e.kind, wanted: describeValue(e, value) });
    if (this.needsWork(e)) this.queue.add(key);
  }

  /** An update that cannot even be built (a name longer than DNS allows: a long lease name in a long zone). */
  private unsendable(key: string, e: Entry, err: unknown): void {
    this.nameFailed(key, e, undefined, `${e.name}: cannot be sent (${(err as Error).message})`);
  }

  private nameFailed(key: string, e: Entry, rcode: number | undefined, text?: string): void {
    this.counters.failed++;
    const message = text ?? `${e.name}: the server answered ${rcodeName(rcode!)}`;
    this.lastError = { message, at: this.now() };
    this.logger.warnLimited('ddns:name-refused', 'DDNS: the server refused an update for one name; retried later', { name: e.name, error: message, retryInSeconds: this.backoff.nameRetryMs / 1000 });
    e.parked = this.timers.set(() => {
      e.parked = undefined;
      if (this.entries.get(key) !== e) return;
      if (this.needsWork(e)) this.enqueue(key, e);
      else if (e.conflictFor === undefined) this.settle(key, e);
    }, this.backoff.nameRetryMs);
  }

  private serverFailed(key: string, e: Entry, auth: boolean, message: string): void {
    this.counters.failed++;
    this.lastError = { message, at: this.now() };
    e.confirmed = undefined; // whether the server applied it is unknown
    this.queue.add(key);
    if (this.retryAt !== undefined) return; // another update in flight already failed: one back-off step per round
    this.failures++;
    const [base, max] = auth ? [this.backoff.authBaseMs, this.backoff.authMaxMs] : [this.backoff.baseMs, this.backoff.maxMs];
    const delay = Math.min(max, base * 2 ** Math.min(this.failures - 1, 30));
    const newState: PublisherState = auth ? 'key-rejected' : 'retrying';
    if (newState !== this.state) {
      const fields = { error: message, retryInSeconds: delay / 1000, pending: this.stats().pending };
      if (auth) this.logger.error('DDNS: the DNS server rejects natd\'s TSIG key; check --ddns-key-file against the server\'s key', fields);
      else this.logger.warn('DDNS: the DNS server is not taking updates; retrying with back-off', fields);
      this.state = newState;
    }
    this.retryAt = this.now() + delay;
    this.retryTimer = this.timers.set(() => {
      this.retryTimer = undefined;
      this.retryAt = undefined;
      this.pump();
    }, delay);
  }
}
