/**
 * Query ids for the upstream client (dnsmasq's habit, see upstream.ts): every attempt gets a fresh random id that no
 * attempt in flight uses, so a reply is found by its id in one array read.
 */
import { randomFillSync } from 'node:crypto';

const RANDOM_POOL_BYTES = 4096;
const ID_SPACE = 65_536;
/** Random draws before giving up on a free id: only a nearly exhausted id space fails that often. */
const FRESH_ID_TRIES = 64;

/** Random 16-bit numbers from a refilled pool of crypto bytes (one randomFillSync per 2,048 numbers). */
export class Random16 {
  private readonly bytes = Buffer.alloc(RANDOM_POOL_BYTES);
  private offset = RANDOM_POOL_BYTES;

  next(): number {
    if (this.offset + 2 > RANDOM_POOL_BYTES) {
      randomFillSync(this.bytes);
      this.offset = 0;
    }
    const r = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return r;
  }
}

/** What is in flight under each 16-bit id: an array indexed by the id (no hashing, nothing allocated per entry). */
export class IdTable<T> {
  private readonly byId: (T | undefined)[] = new Array<T | undefined>(ID_SPACE).fill(undefined);

  constructor(private readonly random: Random16) {}

  /** A random id that nothing in flight uses (undefined only if the id space is nearly exhausted). */
  fresh(): number | undefined {
    for (let tries = 0; tries < FRESH_ID_TRIES; tries++) {
      const id = this.random.next();
      if (this.byId[id] === undefined) return id;
    }
    return undefined;
  }

  get(id: number): T | undefined {
    return this.byId[id];
  }

  set(id: number, entry: T): void {
    this.byId[id] = entry;
  }

  /** Frees `id` if `entry` still holds it. */
  release(id: number, entry: T): void {
    if (this.byId[id] === entry) this.byId[id] = undefined;
  }
}
