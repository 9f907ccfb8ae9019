/**
 * The names natd has published (or asked to publish) on the DNS server, kept in the state directory so that a
 * restart knows what to remove: an append-only journal, one line per change —
 *   + A alpha.lab.example lab.example
 *   - A alpha.lab.example
 * — rewritten compactly at open and whenever it has grown to several times what it holds. Appends are not
 * fsync'ed: a lost line at a crash costs at most a stale name that the owner TXT (updates.ts) still marks as
 * natd's, which an operator can remove with nsupdate. Lines that do not parse are skipped.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import type { ManagedName, RecordKind } from './updates.js';

export const OWNED_FILE = 'ddns-owned';
const NAME = /^[a-z0-9_.-]{1,253}$/;

export interface OwnedNames {
  readonly size: number;
  has(name: ManagedName): boolean;
  add(name: ManagedName): void;
  remove(name: Pick<ManagedName, 'kind' | 'name'>): void;
  list(): ManagedName[];
  close(): void;
}

/** In memory only (tests, and a state directory that cannot be written). */
export class MemoryOwnedNames implements OwnedNames {
  protected readonly names = new Map<string, ManagedName>();
  get size(): number {
    return this.names.size;
  }
  has(n: ManagedName): boolean {
    return this.names.has(`${n.kind} ${n.name}`);
  }
  add(n: ManagedName): void {
    this.names.set(`${n.kind} ${n.name}`, { kind: n.kind, name: n.name, zone: n.zone });
  }
  remove(n: Pick<ManagedName, 'kind' | 'name'>): void {
    this.names.delete(`${n.kind} ${n.name}`);
  }
  list(): ManagedName[] {
    return [...this.names.values()];
  }
  close(): void {}
}

/** Parses the journal's text: the names it holds at its end. */
export function replayOwned(text: string): ManagedName[] {
  const names = new Map<string, ManagedName>();
  for (const line of text.split('\n')) {
    const [op, kind, name, zone] = line.trim().split(/\s+/);
    if ((kind !== 'A' && kind !== 'PTR') || !name || !NAME.test(name)) continue;
    if (op === '+' && zone && NAME.test(zone) && (name === zone || name.endsWith(`.${zone}`))) names.set(`${kind} ${name}`, { kind: kind as RecordKind, name, zone });
    else if (op === '-') names.delete(`${kind} ${name}`);
  }
  return [...names.values()];
}

export class FileOwnedNames extends MemoryOwnedNames {
  private readonly file: string;
  private lines = 0;
  /** the journal, open for appending (one open per compaction, not per line) */
  private fd: number | undefined;

  constructor(stateDir: string, private readonly logger: Logger) {
    super();
    this.file = path.join(stateDir, OWNED_FILE);
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn('DDNS: cannot read the owned-names journal; starting empty', { file: this.file, error: (err as Error).message });
    }
    for (const n of replayOwned(text)) super.add(n);
    this.compact();
  }

  override add(n: ManagedName): void {
    if (this.has(n) && this.names.get(`${n.kind} ${n.name}`)!.zone === n.zone) return;
    super.add(n);
    this.append(`+ ${n.kind} ${n.name} ${n.zone}`);
  }

  override remove(n: Pick<ManagedName, 'kind' | 'name'>): void {
    if (!this.names.has(`${n.kind} ${n.name}`)) return;
    super.remove(n);
    this.append(`- ${n.kind} ${n.name}`);
  }

  override close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private append(line: string): void {
    try {
      this.fd ??= openSync(this.file, 'a', 0o640);
      writeSync(this.fd, `${line}\n`);
      if (++this.lines > 4 * this.size + 64) this.compact();
    } catch (err) {
      this.logger.warnLimited('ddns:owned-journal', 'DDNS: cannot write the owned-names journal', { file: this.file, error: (err as Error).message });
    }
  }

  /** Rewrites the journal with what it holds (temporary file, fsync, rename). */
  private compact(): void {
    const tmp = `${this.file}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o640);
      try {
        writeSync(fd, this.list().map((n) => `+ ${n.kind} ${n.name} ${n.zone}\n`).join(''));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
      this.close(); // the old journal's descriptor: the next append opens the new file
      this.lines = this.size;
    } catch (err) {
      this.logger.warn('DDNS: cannot rewrite the owned-names journal', { file: this.file, error: (err as Error).message });
    }
  }
}
