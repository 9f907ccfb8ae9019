/**
 * issue 18: the lease journal's write + fdatasync as one addon job (native/journal_append.c), as the lease store uses
 * it: every byte appended before done(0), and an errno (never a throw) when the write fails.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { journalAppender } from '../../src/native.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(content = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'natd-journal-append-'));
  dirs.push(dir);
  const file = join(dir, 'journal');
  writeFileSync(file, content);
  return file;
}

const append = journalAppender();

function run(fd: number, data: Buffer): Promise<number> {
  return new Promise((resolve) => append!(fd, data, resolve));
}

describe('journalAppend (native write + fdatasync job)', () => {
  it('is built into the addon', () => {
    expect(append).toBeTypeOf('function');
  });

  it('appends every byte, in call order for jobs awaited one after another, then calls back with 0', async () => {
    const file = tempFile('first\n');
    const fd = openSync(file, 'a');
    try {
      const big = Buffer.alloc(3 * 1024 * 1024, 0x61); // larger than one write may take at once
      expect(await run(fd, Buffer.from('second\n'))).toBe(0);
      expect(await run(fd, big)).toBe(0);
      expect(await run(fd, Buffer.alloc(0))).toBe(0);
      const data = readFileSync(file);
      expect(data.subarray(0, 13).toString()).toBe('first\nsecond\n');
      expect(data.length).toBe(13 + big.length);
    } finally {
      closeSync(fd);
    }
  });

  it('reports the errno of a failed write instead of throwing (read-only fd: EBADF)', async () => {
    const file = tempFile('x\n');
    const fd = openSync(file, 'r');
    try {
      expect(await run(fd, Buffer.from('y\n'))).toBe(os.constants.errno.EBADF);
      expect(readFileSync(file, 'utf8')).toBe('x\n');
    } finally {
      closeSync(fd);
    }
  });

  it('rejects bad arguments synchronously', () => {
    expect(() => append!(-1, Buffer.alloc(1), () => {})).toThrow(TypeError);
    expect(() => (append as unknown as (a: number, b: string, c: () => void) => void)(1, 'text', () => {})).toThrow(TypeError);
  });
});
