/** A fake nft for unit tests: a small model of natd's table in the kernel (firewall.test.ts, daemon.test.ts). */
import { readFileSync } from 'node:fs';
import type { ExecResult, NftExec } from '../../src/nft/runner.js';
import type { NftBatch } from '../../src/nft/schema.js';

/**
 * nft as natd sees it: a full batch replaces the table, element batches change its maps, `list table` prints the
 * table (with the current map elements), `delete table` removes it. `fail` makes the next matching call fail;
 * `hang` makes it never finish (it only notes the abort signal).
 */
export class FakeNft {
  calls: string[][] = [];
  batches: NftBatch[] = [];
  aborted = 0;
  private full: NftBatch | undefined;
  private maps = new Map<string, string[]>();
  private faults: { match: (args: readonly string[], batch?: NftBatch) => boolean; result: 'fail' | 'hang'; skip: number }[] = [];

  readonly exec: NftExec = (nft, args, control) => {
    this.calls.push([nft, ...args]);
    const file = args.includes('-f') ? args[args.indexOf('-f') + 1] : undefined;
    const batch = file ? (JSON.parse(readFileSync(file!, 'utf8')) as NftBatch) : undefined;
    const fault = this.faults.findIndex((f) => f.match(args, batch) && f.skip-- === 0);
    if (fault >= 0) {
      const { result } = this.faults.splice(fault, 1)[0]!;
      if (result === 'hang') {
        control?.signal.addEventListener('abort', () => this.aborted++);
        return new Promise<ExecResult>(() => undefined);
      }
      return Promise.resolve({ code: 1, stdout: '', stderr: 'Error: Could not process rule: Device or resource busy\n' });
    }
    if (batch) this.applyBatch(batch);
    else if (args[0] === '-j' && args[1] === 'list') return Promise.resolve(this.list());
    else if (args[0] === 'delete') this.full = undefined;
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  };

  /** The next element batch (or full batch, or any call) fails or hangs; `skip` lets that many through first. */
  fault(kind: 'element' | 'full' | 'any', result: 'fail' | 'hang' = 'fail', skip = 0): void {
    const isElement = (b?: NftBatch) => b !== undefined && b.nftables.every((c) => 'element' in (Object.values(c)[0] as object));
    const match = kind === 'any' ? () => true : kind === 'element' ? (_: readonly string[], b?: NftBatch) => isElement(b) : (_: readonly string[], b?: NftBatch) => b !== undefined && !isElement(b);
    this.faults.push({ match, result, skip });
  }

  /** The forward map elements in the kernel, map by map, as sorted JSON (comparable before/after). */
  elements(): Record<string, string[]> {
    return Object.fromEntries([...this.maps].map(([name, elems]) => [name, [...elems].sort()]));
  }

  private applyBatch(batch: NftBatch): void {
    this.batches.push(batch);
    if (batch.nftables.some((c) => 'add' in c && 'table' in c.add)) {
      this.full = batch;
      this.maps = new Map();
      for (const c of batch.nftables) {
        if ('add' in c && 'map' in c.add) this.maps.set(c.add.map.name, (c.add.map.elem ?? []).map((e) => JSON.stringify(e)));
      }
      return;
    }
    for (const c of batch.nftables) {
      const [verb, body] = Object.entries(c)[0] as ['add' | 'delete', { element: { name: string; elem: unknown[] } }];
      const elems = this.maps.get(body.element.name)!;
      for (const e of body.element.elem) {
        if (verb === 'add') elems.push(JSON.stringify(e));
        else elems.splice(elems.findIndex((x) => JSON.stringify((JSON.parse(x) as unknown[])[0]) === JSON.stringify(e)), 1);
      }
    }
  }

  private list(): ExecResult {
    if (!this.full) return { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
    const out: unknown[] = [];
    for (const c of this.full.nftables) {
      if (!('add' in c)) continue;
      const [kind, body] = Object.entries(c.add)[0] as [string, Record<string, unknown>];
      if (kind === 'table' && out.length > 0) continue;
      const elems = kind === 'map' ? this.maps.get(body.name as string)!.map((e) => JSON.parse(e) as unknown) : [];
      const { elem: _elem, ...rest } = body;
      out.push({ [kind]: kind === 'map' && elems.length ? { ...rest, elem: elems } : rest });
    }
    return { code: 0, stdout: JSON.stringify({ nftables: out }), stderr: '' };
  }
}
