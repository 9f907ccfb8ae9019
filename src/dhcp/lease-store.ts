/**
 * Durable DHCP state: an append-only JSON-lines journal (`leases.jsonl`) in the state dir.
 *
 * - Nothing acknowledged is lost: commit() resolves only after write + fdatasync, and the DHCP transport sends
 *   the ACK after that.
 * - Group commit: changes that arrive while a sync is in flight wait and go out together in the next single
 *   write + fdatasync, so N concurrent clients share one sync instead of paying N. issue 18: with the addon the group
 *   commit runs on its own thread (native/journal_writer.c), which starts the next group as soon as a sync ends and
 *   sends the replies (DHCP ACKs) it made durable itself, before the loop hears of it.
 * - Compaction rewrites the live set through writeFileAtomic (temp + fsync + rename); it runs inside the same queue
 *   as commits, so a commit racing with it is simply written to the new file afterwards.
 * - Recovery: only newline-terminated lines count. A torn tail (crash mid-write) is truncated away with a warning;
 *   an unreadable line in the middle means the file is damaged: it is kept aside as `leases.jsonl.corrupt-<ts>`,
 *   logged as an error, and natd continues with what was readable before it. The journal itself is only ever
 *   replaced atomically by its readable part, so a crash during the repair never leaves natd to start empty.
 *
 * Addresses are dotted strings in the file so an operator can read it.
 *
 * issue 14: DHCPv6 bindings go in the same journal as records bind6/release6/decline6 (dhcp6/journal6.ts), not in a
 * second file: one lock, one writer and one group commit, so a v4 ACK and a v6 Reply arriving together share one
 * fdatasync, and one compaction and one recovery cover both. A v4-only journal has no such lines and loads exactly
 * as before. (An older natd reading a journal with v6 lines treats them as damage: it keeps the file aside and
 * continues with the lines before the first one — a downgrade loses leases made after IPv6 was turned on.)
 */
import { fdatasync, writeSync } from 'node:fs';
import { access, link, mkdir, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Lease, LeaseChange } from './types.js';
import type { Logger } from '../log.js';
import { STATE_FILES } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';
import { fsyncDirectory, writeFileAtomic } from '../state/atomic-file.js';
import { errnoName, openJournalWriter, type JournalWriter } from '../native.js';
import { storedLease } from './lease-table.js';
import { WAIT_BUCKETS } from './wait-buckets.js';
// issue 14: v6 records
import type { Lease6Change, Loaded6State } from '../dhcp6/types.js';
import { isLease6Change, parseRecord6, Replay6State, toRecord6, V6_OPS, type Journal6Record } from '../dhcp6/journal6.js';

/** A change the journal takes: a DHCPv4 one (types.ts) or a DHCPv6 one (dhcp6/types.ts). */
export type JournalChange = LeaseChange | Lease6Change;

export const JOURNAL_FILE = STATE_FILES.journal;
export const LOCK_FILE = STATE_FILES.lock;
const DEFAULT_COMPACT_MIN_BYTES = 1024 * 1024;
/** Compact when the journal is this many times the size of the live set. */
const COMPACT_RATIO = 4;

export interface LeaseStoreOptions {
  logger: Logger;
  now?: () => number;
  /** Journal size below which compaction never runs (default 1 MiB; tests lower it). */
  compactMinBytes?: number;
  /**
   * issue 18: opens the group commit's writer thread on the journal's fd (default: the addon's, openJournalWriter);
   * returning undefined means node:fs, one batch at a time. Tests use it for that path and to inject failures.
   */
  openWriter?: (fd: number) => JournalWriter | undefined;
}

export interface LeaseStoreStats {
  /** commit() calls made durable */
  commits: number;
  /** fdatasync calls on the journal */
  syncs: number;
  /** issue 18: seconds spent waiting for the journal's write + fdatasync, in all (÷ syncs: the disk's flush time as
   * an ACK waits for it) */
  syncSeconds: number;
  /** issue 18: seconds from commit() until the change was durable and its reply (if the writer sent it) had left,
   * summed over commits (÷ commits: the mean time an ACK waits for the disk) */
  waitSeconds: number;
  /** issue 18: commits whose wait was at most WAIT_BUCKETS[i] seconds (cumulative, as a Prometheus histogram) */
  waitBuckets: number[];
  /** issue 18: replies sent by the journal's writer thread right after their sync (no hand-off back to the loop) */
  repliesSent: number;
  /** bytes appended to the journal */
  bytes: number;
  compactions: number;
  /** current journal size */
  journalBytes: number;
}

export interface LoadedState {
  leases: Lease[];
  declined: { address: number; until: number }[];
}

// ---- record format ---------------------------------------------------------------------------------------------

type JournalRecord =
  | { op: 'bind'; clientId: string; mac: string; address: string; hostname?: string; expiresAt: number }
  | { op: 'release'; clientId: string; address: string }
  | { op: 'decline'; address: string; until: number }
  | Journal6Record;

function toRecord(change: JournalChange): JournalRecord {
  if (isLease6Change(change)) return toRecord6(change);
  switch (change.kind) {
    case 'bind': {
      const l = change.lease;
      const rec: JournalRecord = { op: 'bind', clientId: l.clientId, mac: l.mac, address: formatIpv4(l.address), expiresAt: l.expiresAt };
      if (l.hostname !== undefined) rec.hostname = l.hostname;
      return rec;
    }
    case 'release':
      return { op: 'release', clientId: change.clientId, address: formatIpv4(change.address) };
    case 'decline':
      return { op: 'decline', address: formatIpv4(change.address), until: change.until };
  }
}

const CLIENT_ID = /^[0-9a-f]{1,512}$/;
const MAC = /^(?:[0-9a-f]{2}(?::[0-9a-f]{2}){0,15})?$/;

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Parses one journal line back into a change; undefined when the line is not a record natd wrote. */
export function parseJournalLine(line: string): JournalChange | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.op === 'string' && V6_OPS.has(r.op)) return parseRecord6(r);
  const address = typeof r.address === 'string' ? parseIpv4(r.address) : undefined;
  if (address === undefined) return undefined;
  switch (r.op) {
    case 'bind': {
      if (typeof r.clientId !== 'string' || !CLIENT_ID.test(r.clientId)) return undefined;
      if (typeof r.mac !== 'string' || !MAC.test(r.mac) || !isTime(r.expiresAt)) return undefined;
      if (r.hostname !== undefined && (typeof r.hostname !== 'string' || r.hostname.length > 255)) return undefined;
      const lease: Lease = { clientId: r.clientId, mac: r.mac, address, expiresAt: r.expiresAt };
      if (typeof r.hostname === 'string') lease.hostname = r.hostname;
      return { kind: 'bind', lease };
    }
    case 'release':
      if (typeof r.clientId !== 'string' || !CLIENT_ID.test(r.clientId)) return undefined;
      return { kind: 'release', clientId: r.clientId, address };
    case 'decline':
      return isTime(r.until) ? { kind: 'decline', address, until: r.until } : undefined;
    default:
      return undefined;
  }
}

/**
 * Whether parseJournalLine would read the record back as written: the same checks on the record object itself (a
 * JSON round trip of strings and finite numbers is exact), without serialising and parsing each line twice.
 */
function recordLoadsBack(r: JournalRecord, address: number): boolean {
  if (!Number.isInteger(address) || address < 0 || address > 0xffff_ffff) return false;
  switch (r.op) {
    case 'bind':
      return CLIENT_ID.test(r.clientId) && MAC.test(r.mac) && isTime(r.expiresAt) && (r.hostname === undefined || r.hostname.length <= 255);
    case 'release':
      return CLIENT_ID.test(r.clientId);
    case 'decline':
      return isTime(r.until);
    default:
      return false; // v6 records: parseRecord6 on the record itself (encodeChange)
  }
}

/** Serialises a change to its journal line (with newline); throws on a change that would not load back. */
function encodeChange(change: JournalChange): string {
  const record = toRecord(change);
  const line = JSON.stringify(record);
  // checked on the record itself, as recovery would read the line (a JSON round trip of strings and finite numbers
  // is exact, so the line need not be parsed back): v4 here, v6 (issue 14) by the v6 records' own parser
  const loadsBack = isLease6Change(change)
    ? parseRecord6(record as unknown as Record<string, unknown>) !== undefined
    : recordLoadsBack(record, change.kind === 'bind' ? change.lease.address : change.address);
  if (!loadsBack) {
    throw new NatdError(ErrorCodes.STATE, `refusing to journal an invalid lease change: ${line.slice(0, 200)}`);
  }
  return line + '\n';
}

/** issue 18: upper bounds (seconds) of the commit wait histogram (LeaseStoreStats.waitBuckets), in their own module */
export { WAIT_BUCKETS };

/**
 * issue 18: a reply to send once the commit that carries it is durable: a DHCP ACK, encoded before the commit, which
 * the journal's writer thread sends on `fd` (an IPv4 UDP socket the caller keeps open until the commit settles) right
 * after the fdatasync, instead of handing the result back to the loop first.
 */
export interface DurableReply {
  fd: number;
  message: Buffer;
  /** IPv4 address as a number, and port (1-65535) */
  address: number;
  port: number;
}

/** What commit() resolves with when it sent no reply (none given, or the journal has no writer thread): send it yourself. */
export const REPLY_NOT_SENT = -1;

function journalError(errno: number): Error {
  return Object.assign(new Error(`${errnoName(errno)}: journal write/fdatasync failed`), { errno: -errno, code: errnoName(errno) });
}

/**
 * Appends `buffer` to the journal and fdatasyncs it; resolves once both are done. The fallback when the addon has no
 * writer thread: the write is a writeSync into the page cache on the loop and the sync a thread-pool request.
 */
function appendAndSync(fd: number, buffer: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let written = 0;
    try {
      while (written < buffer.length) written += writeSync(fd, buffer, written, buffer.length - written);
    } catch (err) {
      reject(err);
      return;
    }
    fdatasync(fd, (err) => (err ? reject(err) : resolve()));
  });
}

// ---- in-memory replay ------------------------------------------------------------------------------------------

/** The state the journal describes: one lease per client, one client per address, plus quarantined addresses. */
class ReplayState {
  readonly byClient = new Map<string, Lease>();
  readonly byAddress = new Map<number, string>();
  readonly declined = new Map<number, number>();
  /** issue 14 */
  readonly v6 = new Replay6State();

  apply(change: JournalChange): void {
    if (isLease6Change(change)) {
      this.v6.apply(change);
      return;
    }
    switch (change.kind) {
      case 'bind': {
        const { lease } = change;
        this.removeClient(lease.clientId);
        // An address moves to its newest holder (the old lease expired or was taken over).
        const holder = this.byAddress.get(lease.address);
        if (holder !== undefined) this.removeClient(holder);
        this.declined.delete(lease.address);
        this.byClient.set(lease.clientId, storedLease(lease));
        this.byAddress.set(lease.address, lease.clientId);
        break;
      }
      case 'release':
        if (this.byClient.get(change.clientId)?.address === change.address) this.removeClient(change.clientId);
        break;
      case 'decline': {
        const holder = this.byAddress.get(change.address);
        if (holder !== undefined) this.removeClient(holder);
        this.declined.set(change.address, change.until);
        break;
      }
    }
  }

  private removeClient(clientId: string): void {
    const old = this.byClient.get(clientId);
    if (!old) return;
    this.byClient.delete(clientId);
    if (this.byAddress.get(old.address) === clientId) this.byAddress.delete(old.address);
  }

  /** Unexpired state at `now`; the leases are the stored (frozen, shareable) objects. */
  live(now: number): LoadedState {
    const leases = [...this.byClient.values()].filter((l) => l.expiresAt > now);
    const declined = [...this.declined].filter(([, until]) => until > now).map(([address, until]) => ({ address, until }));
    return { leases, declined };
  }

  /** Forgets expired leases and quarantines (they would be dropped on the next load anyway). */
  prune(now: number): void {
    for (const [clientId, lease] of this.byClient) if (lease.expiresAt <= now) this.removeClient(clientId);
    for (const [address, until] of this.declined) if (until <= now) this.declined.delete(address);
    this.v6.prune(now);
  }

  /** The live state as journal lines, for compaction. */
  snapshot(now: number): string {
    const { leases, declined } = this.live(now);
    let out = '';
    for (const lease of leases) out += encodeChange({ kind: 'bind', lease });
    for (const d of declined) out += encodeChange({ kind: 'decline', ...d });
    for (const change of this.v6.snapshot(now)) out += encodeChange(change);
    return out;
  }

  /** Rough size of the live set in journal bytes (drives the compaction threshold without serialising). */
  approximateBytes(): number {
    return this.byClient.size * 140 + this.declined.size * 50 + this.v6.size * 160;
  }
}

// ---- recovery --------------------------------------------------------------------------------------------------

interface JournalScan {
  /** bytes of the file that hold complete, valid records */
  goodBytes: number;
  /** 1-based line number of a damaged line followed by more data, if any */
  corruptLine?: number;
  /** bytes after goodBytes dropped as a torn tail */
  tornBytes: number;
  tornPreview?: string;
}

/** True when data[from..] holds nothing but whitespace or NUL bytes (what a crash can leave after the last write). */
function onlyFiller(data: Buffer, from: number): boolean {
  for (let i = from; i < data.length; i++) {
    const b = data[i]!;
    if (b !== 0x00 && b !== 0x0a && b !== 0x0d && b !== 0x20 && b !== 0x09) return false;
  }
  return true;
}

/** Replays `data` into `state`, stopping at the first unusable line. Only newline-terminated lines count. */
function scanJournal(data: Buffer, state: ReplayState): JournalScan {
  let offset = 0;
  let lineNo = 0;
  while (offset < data.length) {
    lineNo++;
    const newline = data.indexOf(0x0a, offset);
    const end = newline === -1 ? data.length : newline;
    const text = data.toString('utf8', offset, end);
    const change = newline === -1 || text.trim() === '' ? undefined : parseJournalLine(text);
    if (change === undefined && newline !== -1 && text.trim() === '') {
      offset = newline + 1; // a blank line (hand edit): harmless
      continue;
    }
    if (change === undefined) {
      // Unterminated, or nothing but filler after it: the write a crash cut short. Anything else is damage.
      if (newline === -1 || onlyFiller(data, newline + 1)) {
        return { goodBytes: offset, tornBytes: data.length - offset, tornPreview: text.slice(0, 120) };
      }
      return { goodBytes: offset, corruptLine: lineNo, tornBytes: 0 };
    }
    state.apply(change);
    offset = newline + 1;
  }
  return { goodBytes: offset, tornBytes: 0 };
}

// ---- lock ------------------------------------------------------------------------------------------------------

/** Dirs locked by this process: a second open() of the same dir here must fail even though the pid is ours. */
const lockedHere = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Exclusive use of the state dir, so two daemons never interleave journal writes. Node has no flock(2), so this is
 * an O_EXCL-created lock file holding the owner's pid. A lock left by a killed process (kill -9, power cut) is
 * stale when that pid no longer runs, and is taken over. Limitation: if an unrelated process reuses the dead
 * owner's pid, start fails with a message naming the lock file to remove.
 */
async function acquireLock(dir: string): Promise<string> {
  const path = join(dir, LOCK_FILE);
  if (lockedHere.has(path)) throw new NatdError(ErrorCodes.STATE, `lease store ${dir} is already open in this process`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o640);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      lockedHere.add(path);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
      throw new NatdError(ErrorCodes.STATE, `lease store ${dir} is in use by pid ${owner} (lock file ${path}; remove it if that is not natd)`);
    }
    await unlink(path).catch(() => undefined); // stale: its owner is gone (or it is ours from before a restart)
  }
  throw new NatdError(ErrorCodes.STATE, `could not take the lock ${path}`);
}

async function releaseLock(path: string): Promise<void> {
  lockedHere.delete(path);
  const owner = await readFile(path, 'utf8').catch(() => '');
  if (Number.parseInt(owner, 10) === process.pid) await unlink(path).catch(() => undefined);
}

// ---- the store -------------------------------------------------------------------------------------------------

interface PendingCommit {
  data: string;
  changes: JournalChange[];
  /** issue 18: sent by the writer thread once durable */
  reply: DurableReply | undefined;
  /** performance.now() at commit() */
  queuedAt: number;
  resolve: (replyErrno: number) => void;
  reject: (err: unknown) => void;
}

export class LeaseStore {
  private readonly pending: PendingCommit[] = [];
  private draining: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** set when the journal may hold bytes we could not roll back: no further commit may be acknowledged */
  private broken: Error | undefined;
  private compactBlockedUntil = 0;
  private readonly counters = { commits: 0, syncs: 0, syncSeconds: 0, waitSeconds: 0, waitBuckets: WAIT_BUCKETS.map(() => 0), repliesSent: 0, bytes: 0, compactions: 0 };
  /**
   * issue 18: the group commit's own thread (native/journal_writer.c), or undefined (no addon: node:fs, one batch at a
   * time). With it, batches are submitted as they come and the thread groups what queued during a sync.
   */
  private readonly writer: JournalWriter | undefined;
  /** batches submitted to the writer and not yet done */
  private outstanding = 0;
  private readonly idleWaiters: (() => void)[] = [];
  /** the first failure reported by the writer: every later batch failed too; rolled back once none is outstanding */
  private failure: Error | undefined;

  private constructor(
    private readonly journalPath: string,
    private readonly lockPath: string,
    private handle: FileHandle,
    private journalBytes: number,
    private readonly state: ReplayState,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly compactMinBytes: number,
    openWriter: (fd: number) => JournalWriter | undefined,
  ) {
    let writer: JournalWriter | undefined;
    try {
      writer = openWriter(handle.fd);
    } catch (err) {
      logger.warn('lease journal writer thread unavailable, using node:fs', { error: String(err) });
    }
    this.writer = writer;
  }

  static async open(dir: string, opts: LeaseStoreOptions): Promise<LeaseStore> {
    const now = opts.now ?? Date.now;
    await mkdir(dir, { recursive: true, mode: 0o750 });
    const lockPath = await acquireLock(dir);
    try {
      const journalPath = join(dir, JOURNAL_FILE);
      const state = new ReplayState();
      const journalBytes = await recoverJournal(journalPath, state, opts.logger, now);
      const handle = await open(journalPath, 'a', 0o640);
      return new LeaseStore(journalPath, lockPath, handle, journalBytes, state, opts.logger, now, opts.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES, opts.openWriter ?? openJournalWriter);
    } catch (err) {
      await releaseLock(lockPath);
      throw err;
    }
  }

  /** The unexpired leases and quarantined addresses at `now`, as replayed from the journal and later commits. */
  load(now: number): LoadedState {
    return this.state.live(now);
  }

  /** issue 14: the unexpired DHCPv6 bindings and quarantined v6 addresses at `now`. */
  load6(now: number): Loaded6State {
    return this.state.v6.live(now);
  }

  /**
   * Persists the changes (v4, v6 or both); resolves once they are on disk. An empty list resolves at once.
   * issue 18: `reply` is sent by the journal's writer thread right after the sync that made the changes durable;
   * the promise then resolves with 0 (sent) or the send's errno. It resolves with REPLY_NOT_SENT when there was no
   * reply or the store has no writer thread: the caller sends it. A failed commit sends nothing.
   */
  commit(changes: readonly JournalChange[], reply?: DurableReply): Promise<number> {
    if (this.closing) return Promise.reject(new NatdError(ErrorCodes.STATE, 'lease store is closed'));
    if (changes.length === 0) return Promise.resolve(REPLY_NOT_SENT);
    let data: string;
    try {
      data = changes.map(encodeChange).join('');
    } catch (err) {
      return Promise.reject(err);
    }
    const sendable = reply && this.writer && reply.fd >= 0 && reply.port >= 1 && reply.port <= 65535 ? reply : undefined;
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ data, changes: [...changes], reply: sendable, queuedAt: performance.now(), resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /** Rewrites the journal as the live set now (normally automatic). */
  compact(): Promise<void> {
    if (this.closing) return Promise.reject(new NatdError(ErrorCodes.STATE, 'lease store is closed'));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ data: '', changes: [], reply: undefined, queuedAt: 0, resolve: () => resolve(), reject });
      this.draining ??= this.drain();
    });
  }

  stats(): LeaseStoreStats {
    return { ...this.counters, waitBuckets: [...this.counters.waitBuckets], journalBytes: this.journalBytes };
  }

  /** Flushes pending commits, closes the journal and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.draining) await this.draining;
      await this.settleWriter();
      this.writer?.close();
      await this.handle.close().catch(() => undefined);
      await releaseLock(this.lockPath);
    })();
    return this.closing;
  }

  /** The one writer: takes everything queued so far as one batch, writes it, syncs once, repeats. */
  private async drain(): Promise<void> {
    try {
      await Promise.resolve(); // let commits made in the same tick join the first batch
      await this.drainQueue();
    } finally {
      // A commit may have queued after the loop's last check (while this promise settled): start again for it.
      this.draining = undefined;
      if (this.pending.length > 0) this.draining = this.drain();
    }
  }

  private async drainQueue(): Promise<void> {
    while (this.pending.length > 0) {
      // after a failure the writer fails everything until the file is rolled back: do that before submitting more
      if (this.failure) await this.settleWriter();
      const batch = this.pending.splice(0);
      const writes = batch.filter((p) => p.data !== '');
      const compactors = batch.filter((p) => p.data === ''); // compact() calls
      try {
        if (writes.length > 0) {
          if (this.writer) this.submit(this.writer, writes);
          else await this.appendDurably(writes);
        }
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      if (compactors.length > 0 || this.shouldCompact()) {
        await this.settleWriter(); // the file is replaced: nothing may be in flight to the old one
        try {
          await this.compactNow();
          for (const p of compactors) p.resolve(REPLY_NOT_SENT);
        } catch (err) {
          for (const p of compactors) p.reject(err);
        }
      }
    }
  }

  /** node:fs: one write + fdatasync for the batch, awaited; nothing is acknowledged before. */
  private async appendDurably(writes: PendingCommit[]): Promise<void> {
    if (this.broken) throw this.broken;
    const buffer = batchBuffer(writes);
    try {
      const started = performance.now();
      await appendAndSync(this.handle.fd, buffer);
      this.counters.syncSeconds += (performance.now() - started) / 1000;
    } catch (err) {
      await this.rollBack(err);
      throw new NatdError(ErrorCodes.STATE, `lease journal write failed: ${(err as Error).message}`, { cause: err });
    }
    this.counters.syncs++;
    this.durable(writes, buffer.length, performance.now(), undefined);
  }

  /**
   * issue 18: hands the batch to the writer thread and returns: batches queued while a sync runs go out together in
   * the next one, which starts as soon as that sync ends, and the replies leave from that thread (writer.done).
   */
  private submit(writer: JournalWriter, writes: PendingCommit[]): void {
    if (this.broken) throw this.broken;
    const buffer = batchBuffer(writes);
    let replies: Buffer[] | undefined;
    let meta: Uint32Array | undefined;
    const withReply = writes.filter((p) => p.reply !== undefined);
    if (withReply.length > 0) {
      replies = [];
      meta = new Uint32Array(3 * withReply.length);
      for (const { reply } of withReply) {
        meta.set([reply!.fd, reply!.address >>> 0, reply!.port], 3 * replies.length);
        replies.push(reply!.message);
      }
    }
    const submittedAt = performance.now();
    writer.submit(buffer, replies, meta, (errno, syncMicros, waitMicros, replyErrnos) => {
      this.outstanding--;
      if (errno !== 0) {
        const err = journalError(errno);
        this.failure ??= err;
        for (const p of writes) p.reject(new NatdError(ErrorCodes.STATE, `lease journal write failed: ${err.message}`, { cause: err }));
      } else {
        if (syncMicros > 0) {
          this.counters.syncs++;
          this.counters.syncSeconds += syncMicros / 1e6;
        }
        this.durable(writes, buffer.length, submittedAt + waitMicros / 1000, replyErrnos);
      }
      if (this.outstanding === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    });
    this.outstanding++;
  }

  /** The batch is on disk (`doneAt`: when, in performance.now() time): state, counters, and each commit resolved. */
  private durable(writes: PendingCommit[], bytes: number, doneAt: number, replyErrnos: number[] | undefined): void {
    this.counters.bytes += bytes;
    this.journalBytes += bytes;
    let r = 0;
    for (const p of writes) {
      for (const change of p.changes) this.state.apply(change);
      this.counters.commits++;
      const wait = Math.max(0, doneAt - p.queuedAt) / 1000;
      this.counters.waitSeconds += wait;
      for (let i = WAIT_BUCKETS.length - 1; i >= 0 && wait <= WAIT_BUCKETS[i]!; i--) this.counters.waitBuckets[i]!++;
      if (p.reply && replyErrnos) {
        const errno = replyErrnos[r++] ?? REPLY_NOT_SENT;
        if (errno === 0) this.counters.repliesSent++;
        p.resolve(errno);
      } else {
        p.resolve(REPLY_NOT_SENT);
      }
    }
  }

  /** issue 18: waits until every submitted batch is done; after a failure, rolls the file back and re-arms the writer. */
  private async settleWriter(): Promise<void> {
    if (!this.writer) return;
    if (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const failure = this.failure;
    if (!failure) return;
    this.failure = undefined;
    await this.rollBack(failure);
    if (!this.broken) this.writer.reset(this.handle.fd);
  }

  /** A failed append may have left part of a line: cut it off so later records do not follow garbage. */
  private async rollBack(cause: unknown): Promise<void> {
    try {
      await this.handle.truncate(this.journalBytes);
      await this.handle.datasync();
    } catch (err) {
      this.broken = new NatdError(ErrorCodes.STATE, `lease journal ${this.journalPath} is in an unknown state after a failed write`, { cause: err });
      this.logger.error('lease journal unusable until restart', { path: this.journalPath, error: String(err), cause: String(cause) });
    }
  }

  private shouldCompact(): boolean {
    if (this.journalBytes < this.compactBlockedUntil) return false;
    return this.journalBytes > Math.max(this.compactMinBytes, COMPACT_RATIO * this.state.approximateBytes());
  }

  private async compactNow(): Promise<void> {
    if (this.broken) throw this.broken;
    const before = this.journalBytes;
    const now = this.now();
    this.state.prune(now);
    const snapshot = Buffer.from(this.state.snapshot(now), 'utf8');
    try {
      await writeFileAtomic(this.journalPath, snapshot, { mode: 0o640 });
    } catch (err) {
      // Not fatal: the old journal is intact. Wait for it to double before trying again.
      this.compactBlockedUntil = before * 2;
      this.logger.error('lease journal compaction failed, keeping the journal', { path: this.journalPath, error: String(err) });
      throw err;
    }
    // The old handle points at the replaced inode; appends must go to the new file.
    const old = this.handle;
    try {
      this.handle = await open(this.journalPath, 'a', 0o640);
      this.writer?.reset(this.handle.fd); // nothing is outstanding (settleWriter ran first)
    } catch (err) {
      this.broken = new NatdError(ErrorCodes.STATE, `cannot reopen lease journal ${this.journalPath} after compaction`, { cause: err });
      throw this.broken;
    } finally {
      await old.close().catch(() => undefined);
    }
    this.journalBytes = snapshot.length;
    this.counters.compactions++;
    this.logger.info('lease journal compacted', { path: this.journalPath, beforeBytes: before, afterBytes: snapshot.length });
  }
}

/** The lines of a batch of commits as one buffer. */
function batchBuffer(writes: PendingCommit[]): Buffer {
  return Buffer.from(writes.length === 1 ? writes[0]!.data : writes.map((p) => p.data).join(''), 'utf8');
}

/** `base`, or `base-1`, `base-2`, ... so an earlier damaged file is never overwritten. */
async function unusedPath(base: string): Promise<string> {
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? base : `${base}-${i}`;
    try {
      await access(candidate);
    } catch {
      return candidate;
    }
  }
}

/**
 * Reads the journal into `state`, repairs it on disk (torn tail cut, damaged file moved aside and replaced by its
 * readable part) and returns its size.
 */
async function recoverJournal(journalPath: string, state: ReplayState, logger: Logger, now: () => number): Promise<number> {
  let data: Buffer;
  try {
    data = await readFile(journalPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // New journal: make its directory entry durable before the first commit is acknowledged.
    await writeFileAtomic(journalPath, '', { mode: 0o640 });
    return 0;
  }

  const scan = scanJournal(data, state);
  if (scan.corruptLine !== undefined) {
    const aside = await unusedPath(`${journalPath}.corrupt-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`);
    const readable = state.snapshot(now());
    // The journal's name is never without content: the damaged file gets a second name (a hard link moves no
    // data), then the readable part replaces the journal by temp file + fsync + rename. A crash between the two
    // leaves the damaged journal, which the next start repairs again; moving it away first (as before) left
    // nothing, and natd started with no leases.
    const linked = await link(journalPath, aside).then(() => fsyncDirectory(dirname(journalPath)).then(() => true), () => false);
    await writeFileAtomic(journalPath, readable, { mode: 0o640 });
    // no hard links on this file system: the damaged copy from the bytes already read, once the journal is safe
    if (!linked) {
      await writeFileAtomic(aside, data, { mode: 0o640 }).catch((err: unknown) =>
        logger.error('cannot keep a copy of the damaged lease journal', { path: aside, error: String(err) }));
    }
    logger.error('lease journal is damaged: kept aside, continuing with the leases read before the damage', {
      path: journalPath,
      movedTo: aside,
      line: scan.corruptLine,
      leasesKept: state.live(now()).leases.length,
    });
    return Buffer.byteLength(readable);
  }
  if (scan.tornBytes > 0) {
    const handle = await open(journalPath, 'r+');
    try {
      await handle.truncate(scan.goodBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    logger.warn('lease journal ended with an incomplete record (interrupted write); dropped it', {
      path: journalPath,
      droppedBytes: scan.tornBytes,
      preview: scan.tornPreview,
    });
  }
  return scan.goodBytes;
}
