/** A fake clock with timers, and a fake RFC 2136 server holding one zone in memory, for the DDNS publisher's tests. */
import type { ExchangeResult, Exchanger } from '../../src/ddns/client.js';
import { CLASS_ANY, CLASS_IN, CLASS_NONE, parseMessage, Rcode, TYPE_ANY } from '../../src/ddns/message.js';
import type { Timers } from '../../src/ddns/publisher.js';

export class FakeClock implements Timers {
  time = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now = (): number => this.time;
  set(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return id;
  }
  clear(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  /** when the earliest timer fires, or undefined */
  get nextAt(): number | undefined {
    return this.timers.length ? Math.min(...this.timers.map((t) => t.at)) : undefined;
  }
  /** Moves time forward, firing due timers in order (and letting their promises run). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
      await flush();
    }
    this.time = end;
    await flush();
  }
}

/** Lets every pending promise chain run (the fake server answers asynchronously, like a socket). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** name → type → rdata (hex) set */
type Zone = Map<string, Map<number, Set<string>>>;

export class FakeDnsServer implements Exchanger {
  readonly zone: Zone = new Map();
  mode: 'up' | 'down' | 'bad-key' = 'up';
  /** names answered REFUSED */
  refuse = new Set<string>();
  messages = 0;
  dropped = 0;
  setKey(): void {}

  async exchange(message: Buffer): Promise<ExchangeResult> {
    this.messages++;
    if (this.mode === 'down') return { ok: false, kind: 'network', message: 'no answer' };
    if (this.mode === 'bad-key') return { ok: false, kind: 'auth', message: 'NOTAUTH/BADSIG' };
    const m = parseMessage(message);
    const [prereqs, updates] = m.sections;
    for (const r of [...prereqs, ...updates]) if (this.refuse.has(r.name)) return { ok: true, rcode: Rcode.REFUSED };
    for (const p of prereqs) {
      const rrsets = this.zone.get(p.name);
      if (p.class === CLASS_NONE && p.type === TYPE_ANY) {
        if (rrsets && rrsets.size) return { ok: true, rcode: Rcode.YXDOMAIN };
      } else if (p.class === CLASS_IN) {
        const set = rrsets?.get(p.type);
        if (!set || !set.has(p.rdata.toString('hex')) || set.size !== 1) return { ok: true, rcode: Rcode.NXRRSET };
      } else throw new Error(`unexpected prerequisite class ${p.class}`);
    }
    for (const u of updates) {
      const rrsets = this.zone.get(u.name) ?? new Map<number, Set<string>>();
      this.zone.set(u.name, rrsets);
      if (u.class === CLASS_IN) {
        const set = rrsets.get(u.type) ?? new Set<string>();
        set.add(u.rdata.toString('hex'));
        rrsets.set(u.type, set);
      } else if (u.class === CLASS_ANY) rrsets.delete(u.type);
      else if (u.class === CLASS_NONE) rrsets.get(u.type)?.delete(u.rdata.toString('hex'));
      for (const [t, s] of rrsets) if (s.size === 0) rrsets.delete(t);
      if (rrsets.size === 0) this.zone.delete(u.name);
    }
    return { ok: true, rcode: Rcode.NOERROR };
  }

  /** The A record of a name as a dotted address, or undefined. */
  a(name: string): string | undefined {
    const hex = [...(this.zone.get(name)?.get(1) ?? [])][0];
    return hex === undefined ? undefined : [...Buffer.from(hex, 'hex')].join('.');
  }

  /** The PTR of a reverse name as a dotted name, or undefined. */
  ptr(name: string): string | undefined {
    const hex = [...(this.zone.get(name)?.get(12) ?? [])][0];
    if (hex === undefined) return undefined;
    const b = Buffer.from(hex, 'hex');
    const labels: string[] = [];
    for (let i = 0; b[i]! !== 0; i += b[i]! + 1) labels.push(b.subarray(i + 1, i + 1 + b[i]!).toString());
    return labels.join('.');
  }

  txt(name: string): string[] {
    return [...(this.zone.get(name)?.get(16) ?? [])].map((h) => Buffer.from(h, 'hex').subarray(1).toString());
  }
}
