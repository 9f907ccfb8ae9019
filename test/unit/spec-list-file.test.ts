/** The runtime spec lists in the state dir (forwards.json, expose.json): state/spec-list-file.ts. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exposeFile } from '../../src/daemon/expose.js';
import { ErrorCodes } from '../../src/errors.js';
import { forwardsFile } from '../../src/nft/forwards-file.js';

describe('spec list files', () => {
  it.each([
    ['forwards.json', forwardsFile, 'forward specs'],
    ['expose.json', exposeFile, 'expose specs'],
  ] as const)('%s: nothing stored is empty, a save reads back, anything but a list of strings is a STATE error', async (name, open, what) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-specs-'));
    const store = open(dir);
    expect(await store.load()).toEqual([]);
    await store.save(['a', 'b']);
    expect(JSON.parse(readFileSync(path.join(dir, name), 'utf8'))).toEqual(['a', 'b']);
    expect(await store.load()).toEqual(['a', 'b']);
    for (const bad of ['{"a":1}', '[1]', 'not json']) {
      writeFileSync(path.join(dir, name), bad);
      await expect(store.load()).rejects.toMatchObject({ code: ErrorCodes.STATE, message: `${path.join(dir, name)}: not a JSON list of ${what}; fix or remove it` });
    }
  });
});
