/** lineSplitter: the lines of a helper child's output do not depend on how the pipe cut it into chunks. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lineSplitter } from '../../src/tied-child.js';

function collect(chunks: string[], maxLine: number): { lines: string[]; tooLong: number } {
  const lines: string[] = [];
  let tooLong = 0;
  const feed = lineSplitter(maxLine, (l) => lines.push(l), () => tooLong++);
  for (const c of chunks) feed(c);
  return { lines, tooLong };
}

describe('lineSplitter', () => {
  it('gives the complete lines up to maxLine, whatever the chunking; longer ones are dropped whole and counted once', () => {
    const text = fc.array(fc.string({ maxLength: 40 }).map((s) => s.replace(/\n/g, '')), { maxLength: 30 });
    fc.assert(fc.property(text, fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 30 }), (lines, cuts, maxLine) => {
      const all = lines.map((l) => `${l}\n`).join('');
      const at = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
      const chunks = [0, ...at, all.length].slice(1).map((end, i, ends) => all.slice(i === 0 ? 0 : ends[i - 1], end));
      const got = collect(chunks, maxLine);
      expect(got.lines).toEqual(lines.filter((l) => l.length <= maxLine));
      expect(got.tooLong).toBe(lines.filter((l) => l.length > maxLine).length);
    }));
  });

  it('keeps nothing of an endless line (no newline ever comes)', () => {
    const got = collect(Array.from({ length: 100 }, () => 'x'.repeat(1000)), 64);
    expect(got).toEqual({ lines: [], tooLong: 1 });
  });
});
