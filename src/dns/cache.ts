/**
 * Cache of raw upstream responses. Entries are stored as received and served as copies with the id rewritten
 * and TTLs lowered by the time spent in the cache, so the forwarder never decodes or re-encodes a packet.
 * The stored copy is aged in place, at most once per elapsed second, so most hits are one memcpy.
 * Bounded by entry count and by bytes held (issue 12: answers of up to 64 KiB made an entry cap alone worth
 * hundreds of MiB); the least recently used entries go until both hold (a Map iterates in insertion order, a hit
 * re-inserts its key at the end).
 * The clock is injected; expiry is checked lazily on access, no timers.
 *
 * Memory (issue 7, 10,000 answers of about 55 bytes): stored responses are copied into slabs of the cache's own
 * instead of Node's shared Buffer pool. In the pool each one sat among short-lived buffers (every packet read, every
 * answer sent) and kept its whole 8 KiB pool slab alive: 2.1 MiB of slabs for 0.55 MiB of answers. A slab here holds
 * cached responses only and is freed once they are all gone; a hit moves its response to the newest slab (at most
 * once a second, with the LRU re-order), so a few hot names do not pin old slabs. An entry locates its response by
 * offset and length instead of holding a Buffer view (96 bytes each), keeps its times as small offsets (see
 * CacheEntry), and its key flat (see flatKey).
 */
import { DnsRcode, DnsType, type ParsedQuery } from './types.js';
import { SETTING_DEFAULTS } from '../defaults.js';
// issue 18: the hit fast path
import { sameQuestion, type FastQuestion } from './hit-fast-path.js';
import {
  DnsWireError,
  FLAG_CD,
  HEADER_LENGTH,
  forEachRecord,
  getRcode,
  isTruncated,
  plainNameEnd,
  readU16,
  readU32,
  setId,
  skipName,
  writeU32,
} from './wire.js';

export interface DnsCacheOptions {
  /** default 10,000 */
  maxEntries?: number;
  /** bytes the cache may hold, counted as described at heldBytes (default 32 MiB) */
  maxBytes?: number;
  /** how long a SERVFAIL is remembered, default 5 s */
  servfailSeconds?: number;
  /** cap on any entry's lifetime, default 86,400 s */
  maxTtlSeconds?: number;
  /** cap on negative answers (RFC 2308 §5 suggests 1-3 hours), default 10,800 s */
  maxNegativeTtlSeconds?: number;
  /** milliseconds, like Date.now (the default) */
  now?: () => number;
  // issue 15 (dnsmasq's --min-cache-ttl, --no-negcache); setPolicy changes them at run time
  /** positive answers are kept at least this long, their TTLs raised to it (default 0: as the upstream says) */
  minTtlSeconds?: number;
  /** cache NXDOMAIN/NODATA answers (default true) */
  negativeCache?: boolean;
}

/** The part of the options a reload may change. */
export interface DnsCachePolicy {
  minTtlSeconds: number;
  negativeCache: boolean;
}

export interface DnsCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** bytes held now (see heldBytes) */
  bytes: number;
  /** responses not stored because they alone exceed the byte budget */
  tooLarge: number;
}

/** The default byte budget: far above what 10,000 ordinary answers take (about 2 MiB), far below host memory. */
export const DEFAULT_CACHE_MAX_BYTES = SETTING_DEFAULTS.cacheMaxBytes;
/**
 * What an entry costs besides its response bytes: the entry object (10 fields), its Map slot and the key's string
 * header, about 150 bytes measured with 10,000 entries (issue 7); the key's characters are added per entry.
 */
const ENTRY_OVERHEAD_BYTES = 150;

/** Responses up to this long are copied out by a loop rather than TypedArray#set (which needs a view). */
const COPY_LOOP_MAX = 256;
/** A hit moves its entry to the most recently used end at most this often. */
const TOUCH_INTERVAL_MS = 1000;
/** Size of one slab of stored responses, in bytes. */
const SLAB_BYTES = 16 * 1024;
/** Responses longer than this (big TXT or DNSSEC answers, TCP) get a buffer of their own rather than slab space. */
const SLAB_MAX_RESPONSE = 1024;

interface CacheEntry {
  /** the key as stored: flat, and kept when a hit re-inserts the entry under the (concatenated) key it looked up */
  key: string;
  /**
   * The upstream response, with every TTL (OPT excepted) lowered by agedSeconds and floored at 0, is bytes
   * [offset, offset + length) of `slab`: a slab, or a buffer of its own for a long response.
   */
  slab: Uint8Array;
  offset: number;
  length: number;
  agedSeconds: number;
  /** ms epoch. The other times are kept as milliseconds after it: small integers, held in the entry itself, where
   *  another ms epoch would be a separate 16-byte number object each */
  storedAt: number;
  /** the entry expires this long after storedAt */
  lifetimeMs: number;
  /** when, after storedAt, the entry last moved to the most recently used end */
  touchedMs: number;
  /** issue 18: set while the entry is in wireIndex (see vet); absent on entries never hit */
  vet?: { token: object; hash: number; flavour: number } | undefined;
}

/**
 * The cache key for a query: its question plus the EDNS/DNSSEC flavour of the client. A response to a client
 * without EDNS must not carry an OPT record (RFC 6891 §7), one for DO=1 carries signatures a DO=0 client did
 * not ask for, and CD=1 may get data a validating upstream would have refused.
 */
export function cacheKey(query: ParsedQuery): string {
  if (query.cacheKey !== undefined) return query.cacheKey;
  const edns = query.hasEdns ? (query.dnssecOk ? 'd' : 'e') : '-';
  const cd = (query.flags & FLAG_CD) !== 0 ? 'c' : '-';
  return `${query.key}|${edns}${cd}`;
}

/**
 * A flat copy of a key. A key built by concatenation is a tree of string pieces in V8 (a 30-character cache key:
 * about 100 bytes of pieces besides its characters), and a Map keeps the tree for as long as the entry lives.
 * Costs about 1 µs, paid only when a response is stored.
 */
function flatKey(key: string): string {
  return JSON.parse(JSON.stringify(key)) as string;
}

/**
 * How long a response may be cached, in seconds; 0 = not at all. Positive answers live as long as their
 * shortest answer record; NXDOMAIN/NODATA per RFC 2308 §5 as long as min(SOA TTL, SOA minimum) of the SOA in the
 * authority section (no SOA, no caching); SERVFAIL briefly; truncated and other responses never.
 * Throws DnsWireError when the records cannot be walked.
 */
function cacheSeconds(response: Uint8Array, opts: Limits): number {
  if (response.length < HEADER_LENGTH || isTruncated(response)) return 0;
  const rcode = getRcode(response);
  if (rcode !== DnsRcode.NOERROR && rcode !== DnsRcode.NXDOMAIN && rcode !== DnsRcode.SERVFAIL) return 0;

  let answerMin = Infinity;
  let answers = 0;
  let negative = Infinity;
  forEachRecord(response, (record) => {
    if (record.section === 'answer') {
      answers++;
      answerMin = Math.min(answerMin, ttlOf(record.ttl));
    } else if (record.section === 'authority' && record.type === DnsType.SOA) {
      // SOA rdata: mname, rname, then serial refresh retry expire minimum (5 × 32 bits)
      const rdataEnd = record.rdataOffset + record.rdataLength;
      const afterNames = skipName(response, skipName(response, record.rdataOffset));
      if (afterNames + 20 !== rdataEnd) throw new DnsWireError('SOA rdata has the wrong length');
      negative = Math.min(negative, ttlOf(record.ttl), ttlOf(readU32(response, afterNames + 16)));
    }
  });

  // checked after the walk: whatever is stored must be a message get() can rewrite
  if (rcode === DnsRcode.SERVFAIL) return opts.servfailSeconds;
  const isNegative = rcode === DnsRcode.NXDOMAIN || answers === 0;
  if (isNegative) {
    if (!opts.negativeCache) return 0;
    return Number.isFinite(negative) ? Math.min(negative, opts.maxNegativeTtlSeconds, opts.maxTtlSeconds) : 0;
  }
  // A CNAME chain ending in NODATA carries both: the shorter lifetime wins.
  return Math.min(Math.max(Math.min(answerMin, negative), opts.minTtlSeconds), opts.maxTtlSeconds);
}

/** RFC 2181 §8: a TTL with the most significant bit set is to be treated as zero. */
export function ttlOf(wireTtl: number): number {
  return wireTtl >= 0x8000_0000 ? 0 : wireTtl;
}

/**
 * Rewrites every TTL with the high bit set (OPT's flags excepted) to 0 in place, so a client is given 0 rather
 * than 68 years (RFC 2181 §8). Returns false when the records cannot be walked (the response is left as it is).
 */
export function clampHighBitTtls(response: Uint8Array): boolean {
  try {
    forEachRecord(response, (record) => {
      if (record.type !== DnsType.OPT && record.ttl >= 0x8000_0000) writeU32(response, record.ttlOffset, 0);
    });
    return true;
  } catch (err) {
    if (err instanceof DnsWireError) return false;
    throw err;
  }
}

type Limits = Required<Omit<DnsCacheOptions, 'now'>>;

export class DnsCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** issue 18: vetted entries by the hash of their question and flavour (see vet and getVetted) */
  private readonly wireIndex = new Map<number, CacheEntry>();
  private readonly limits: Limits;
  private readonly now: () => number;
  /** oldest-first walk over the keys, kept across evictions (see evictOldest) */
  private evictionCursor: IterableIterator<string> | undefined;
  /** the slab new responses are copied into, and how much of it is taken */
  private slab: Uint8Array | undefined;
  private slabUsed = 0;
  /** live entries per slab; a slab counts toward heldBytes while it is the current one or has any */
  private readonly slabEntries = new Map<Uint8Array, number>();
  /**
   * Bytes held, honestly counted: every slab that is alive (whole SLAB_BYTES, even when partly freed: the slab
   * stays allocated until its last entry goes), each long response's own buffer, and ENTRY_OVERHEAD_BYTES plus the
   * key's length per entry. V8's own overheads (Map growth, the JS heap's slack) are not in it.
   */
  private heldBytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private tooLarge = 0;

  constructor(opts: DnsCacheOptions = {}) {
    this.limits = {
      maxEntries: Math.max(1, opts.maxEntries ?? SETTING_DEFAULTS.cacheSize),
      maxBytes: Math.max(SLAB_BYTES, opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES),
      servfailSeconds: opts.servfailSeconds ?? 5,
      maxTtlSeconds: opts.maxTtlSeconds ?? 86_400,
      maxNegativeTtlSeconds: opts.maxNegativeTtlSeconds ?? 10_800,
      minTtlSeconds: opts.minTtlSeconds ?? 0,
      negativeCache: opts.negativeCache ?? true,
    };
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** --min-cache-ttl / --no-negcache at run time (reload); entries already stored keep their lifetime. */
  setPolicy(policy: DnsCachePolicy): void {
    this.limits.minTtlSeconds = policy.minTtlSeconds;
    this.limits.negativeCache = policy.negativeCache;
  }

  /**
   * A copy of the cached response with `id` set and TTLs lowered by the whole seconds it spent here, or
   * undefined (a miss; expired entries are removed). When `query` (the client's raw query) is given, the
   * question name is copied from it so clients that randomise letter case (DNS 0x20) see their own spelling.
   */
  get(key: string, id: number, query?: Uint8Array): Buffer | undefined {
    const entry = this.entries.get(key);
    const now = this.now();
    if (!entry || now - entry.storedAt >= entry.lifetimeMs) {
      if (entry) this.remove(entry);
      this.misses++;
      return undefined;
    }
    const out = this.serve(entry, now, id);
    if (query) copyQuestionSpelling(query, out);
    return out;
  }

  /**
   * issue 18, the hit fast path (hit-fast-path.ts): the entry `vettedBy` marked as answerable for the question
   * bytes [HEADER_LENGTH, question.end) of the query at `queryBase` in `query` (a receive slot: no view per
   * datagram) with `question.flavour`, served as get() serves it; undefined (nothing counted, nothing removed) when
   * there is none, it is not vetted by that token, or it has expired: the caller then takes its normal path, which
   * does what get() does.
   */
  getVetted(question: FastQuestion, vettedBy: object, query: Uint8Array, queryBase = 0): Buffer | undefined {
    const entry = this.wireIndex.get(question.hash);
    if (!entry) return undefined;
    const vet = entry.vet!;
    if (vet.token !== vettedBy || vet.flavour !== question.flavour) return undefined;
    if (!sameQuestion(query, queryBase, question.end, entry.slab, entry.offset, entry.length)) return undefined;
    const now = this.now();
    if (now - entry.storedAt >= entry.lifetimeMs) return undefined;
    const out = this.serve(entry, now, question.id);
    // the client's spelling of the name (what get()'s copyQuestionSpelling gives here: the name is plain and equal up
    // to letter case, sameQuestion said so): bytes [HEADER_LENGTH, end - 4) of the query, the type and class after it
    const nameEnd = question.end - 4;
    for (let i = HEADER_LENGTH; i < nameEnd; i++) out[i] = query[queryBase + i]!;
    return out;
  }

  /**
   * issue 18: marks the entry under `key`, just served for `query` by the normal path, as answerable from the bytes
   * of a query whose question equals the stored one (up to letter case) with the same flavour, for holders of
   * `token` (a server's token stands for the state its pipeline decided on: local names, records, routes). Only when
   * the query's question is the stored response's question: then any query getVetted matches has this cache key.
   */
  vet(key: string, question: FastQuestion, token: object, query: Uint8Array): void {
    const entry = this.entries.get(key);
    if (!entry || !sameQuestion(query, 0, question.end, entry.slab, entry.offset, entry.length)) return;
    if (entry.vet) {
      if (entry.vet.token === token && entry.vet.hash === question.hash && this.wireIndex.get(question.hash) === entry) return;
      this.unindex(entry);
    }
    entry.vet = { token, hash: question.hash, flavour: question.flavour };
    this.wireIndex.set(question.hash, entry); // a colliding entry loses its place (its hits take the normal path)
  }

  private unindex(entry: CacheEntry): void {
    if (entry.vet && this.wireIndex.get(entry.vet.hash) === entry) this.wireIndex.delete(entry.vet.hash);
    entry.vet = undefined;
  }

  /** A hit on a live entry: LRU touch, aging, and the copy for the client (the stored spelling of the name). */
  private serve(entry: CacheEntry, now: number, id: number): Buffer {
    const age = now - entry.storedAt;
    // re-insert: most recently used goes last. At most once a second per entry: a Map delete + set costs more than
    // the rest of a hit, and LRU order to the second is all eviction needs.
    if (age - entry.touchedMs >= TOUCH_INTERVAL_MS) {
      entry.touchedMs = age;
      this.entries.delete(entry.key);
      this.entries.set(entry.key, entry);
      // a hot entry leaves its old slab, so that slab can go once its cold entries are evicted
      if (entry.length <= SLAB_MAX_RESPONSE && entry.slab !== this.slab) {
        const old = { slab: entry.slab, length: entry.length };
        this.place(entry, bytesOf(entry));
        this.release(old.slab, old.length);
      }
    }
    this.hits++;
    const elapsed = Math.floor(age / 1000);
    // aging is cumulative and exact: max(0, max(0, t - a) - b) = max(0, t - a - b). A clock that went back is ignored.
    if (elapsed > entry.agedSeconds) {
      lowerTtls(bytesOf(entry), elapsed - entry.agedSeconds);
      entry.agedSeconds = elapsed;
    }
    // copied byte by byte from the slab: a typed-array view per hit (for set()) cost more than the copy of a short
    // answer itself
    const { slab, offset, length } = entry;
    const out = Buffer.allocUnsafe(length);
    if (length <= COPY_LOOP_MAX) for (let i = 0; i < length; i++) out[i] = slab[offset + i]!;
    else out.set(slab.subarray(offset, offset + length));
    setId(out, id);
    return out;
  }

  /** Files a response under `key` when it is cacheable (see cacheSeconds); malformed responses are ignored. */
  store(key: string, response: Uint8Array): void {
    let seconds: number;
    try {
      seconds = cacheSeconds(response, this.limits);
    } catch (err) {
      if (err instanceof DnsWireError) return;
      throw err;
    }
    if (seconds <= 0) return;
    if (entryBytes(key, response.length) > this.limits.maxBytes) {
      this.tooLarge++;
      return;
    }
    const now = this.now();
    const stored = flatKey(key);
    const entry: CacheEntry = { key: stored, slab: NO_SLAB, offset: 0, length: 0, agedSeconds: 0, storedAt: now, lifetimeMs: seconds * 1000, touchedMs: 0, vet: undefined };
    this.place(entry, response);
    clampHighBitTtls(bytesOf(entry)); // e.g. an authority record's: aging must not start from 2^31
    if (this.limits.minTtlSeconds > 0 && getRcode(response) === DnsRcode.NOERROR) raiseAnswerTtls(bytesOf(entry), this.limits.minTtlSeconds);
    this.heldBytes += ENTRY_OVERHEAD_BYTES + stored.length;
    const replaced = this.entries.get(stored);
    if (replaced) this.remove(replaced);
    this.entries.set(stored, entry);
    while (this.entries.size > this.limits.maxEntries || (this.heldBytes > this.limits.maxBytes && this.entries.size > 1)) {
      this.evictOldest();
    }
  }

  /** Copies `response` into the current slab (a new one when it is full), or a buffer of its own when long. */
  private place(entry: CacheEntry, response: Uint8Array): void {
    const length = response.length;
    if (length > SLAB_MAX_RESPONSE) {
      entry.slab = new Uint8Array(length);
      entry.offset = 0;
      this.heldBytes += length;
    } else {
      if (!this.slab || this.slabUsed + length > SLAB_BYTES) {
        const previous = this.slab;
        this.slab = new Uint8Array(SLAB_BYTES);
        this.slabUsed = 0;
        this.slabEntries.set(this.slab, 0);
        this.heldBytes += SLAB_BYTES;
        if (previous && this.slabEntries.get(previous) === 0) this.dropSlab(previous);
      }
      entry.slab = this.slab;
      entry.offset = this.slabUsed;
      this.slabUsed += length;
      this.slabEntries.set(this.slab, this.slabEntries.get(this.slab)! + 1);
    }
    entry.length = length;
    entry.slab.set(response, entry.offset);
  }

  /**
   * Deletes the least recently used entry. A fresh `keys().next()` per eviction would walk every slot deleted since
   * V8 last compacted the Map (tens of µs per store at 10,000 entries under a flood of unique names); the cursor
   * keeps its place instead, so each deleted slot is stepped over once. Every key behind the cursor has been
   * evicted (a re-inserted key goes to the end), so the next key it yields is the oldest live one.
   */
  private evictOldest(): void {
    let next = this.evictionCursor?.next();
    if (!next || next.done) {
      // a finished iterator stays finished, even when keys are added later
      this.evictionCursor = this.entries.keys();
      next = this.evictionCursor.next();
    }
    if (next.done) return;
    this.remove(this.entries.get(next.value)!);
    this.evictions++;
  }

  /** Takes an entry out of the map and its bytes out of the count. */
  private remove(entry: CacheEntry): void {
    if (entry.vet) this.unindex(entry);
    this.entries.delete(entry.key);
    this.heldBytes -= ENTRY_OVERHEAD_BYTES + entry.key.length;
    this.release(entry.slab, entry.length);
  }

  /** The response bytes [.., length) of `slab` are no longer used by any entry. */
  private release(slab: Uint8Array, length: number): void {
    if (length > SLAB_MAX_RESPONSE) {
      this.heldBytes -= length;
      return;
    }
    const left = (this.slabEntries.get(slab) ?? 1) - 1;
    if (left > 0 || slab === this.slab) this.slabEntries.set(slab, left);
    else this.dropSlab(slab);
  }

  private dropSlab(slab: Uint8Array): void {
    if (this.slabEntries.delete(slab)) this.heldBytes -= SLAB_BYTES;
  }

  stats(): DnsCacheStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, bytes: this.heldBytes, tooLarge: this.tooLarge };
  }

  /** Bytes held now (see heldBytes). */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Drops every entry (the counters keep counting). */
  clear(): void {
    this.entries.clear();
    this.wireIndex.clear();
    this.evictionCursor = undefined;
    this.slab = undefined;
    this.slabEntries.clear();
    this.heldBytes = 0;
  }
}

/** What storing a response under `key` adds to heldBytes at most (a long response, or a whole new slab). */
function entryBytes(key: string, length: number): number {
  return ENTRY_OVERHEAD_BYTES + key.length + (length > SLAB_MAX_RESPONSE ? length : SLAB_BYTES);
}

const NO_SLAB = new Uint8Array(0);

/** The entry's response, in place (a view: changes go to the stored copy). */
function bytesOf(entry: CacheEntry): Uint8Array {
  return entry.slab.subarray(entry.offset, entry.offset + entry.length);
}

/** --min-cache-ttl: answer-section TTLs below `seconds` are raised to it, so clients see the time the entry is kept. */
function raiseAnswerTtls(response: Uint8Array, seconds: number): void {
  forEachRecord(response, (record) => {
    if (record.section === 'answer' && record.ttl < seconds) writeU32(response, record.ttlOffset, seconds);
  });
}

/** Lowers every TTL but OPT's by `seconds`, floored at 0. The response was validated when stored: the walk cannot fail. */
function lowerTtls(response: Uint8Array, seconds: number): void {
  forEachRecord(response, (record) => {
    if (record.type !== DnsType.OPT) writeU32(response, record.ttlOffset, record.ttl > seconds ? record.ttl - seconds : 0);
  });
}

/** Copies the query's question name over the response's when both are written out in full with equal length. */
function copyQuestionSpelling(query: Uint8Array, response: Buffer): void {
  if (query.length < HEADER_LENGTH || readU16(query, 4) !== 1 || readU16(response, 4) !== 1) return;
  const queryEnd = plainNameEnd(query, HEADER_LENGTH);
  if (queryEnd === undefined || queryEnd !== plainNameEnd(response, HEADER_LENGTH)) return;
  let sameSpelling = true;
  for (let i = HEADER_LENGTH; i < queryEnd; i++) {
    const asked = query[i]!;
    const stored = response[i]!;
    if (asked === stored) continue;
    if (asciiLower(asked) !== asciiLower(stored)) return; // not the same name after all
    sameSpelling = false;
  }
  if (!sameSpelling) response.set(query.subarray(HEADER_LENGTH, queryEnd), HEADER_LENGTH);
}

function asciiLower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
}
