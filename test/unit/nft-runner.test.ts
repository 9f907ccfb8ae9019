/** runNft's deadline, with a fake exec and with a real child process standing in for a hung nft. */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { runNft, spawnNft, type NftExec } from '../../src/nft/runner.js';

const dir = mkdtempSync(path.join(tmpdir(), 'natd-runner-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('runNft', () => {
  it('passes the binary and arguments through and returns the result, non-zero exits included', async () => {
    const seen: unknown[] = [];
    const exec: NftExec = async (nft, args) => {
      seen.push([nft, ...args]);
      return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
    };
    expect(await runNft(['-j', 'list', 'tables'], { exec, nft: '/usr/sbin/nft' })).toEqual({ code: 1, stdout: '', stderr: 'Error: No such file or directory' });
    expect(seen).toEqual([['/usr/sbin/nft', '-j', 'list', 'tables']]);
  });

  it('fails with NFT_APPLY at the deadline even when the exec ignores the abort', async () => {
    let signal: AbortSignal | undefined;
    const exec: NftExec = (_nft, _args, control) => {
      signal = control?.signal;
      return new Promise(() => undefined);
    };
    const started = Date.now();
    await expect(runNft(['-j', '-f', '/tmp/x'], { exec, timeoutMs: 50 })).rejects.toMatchObject({
      code: ErrorCodes.NFT_APPLY,
      message: 'nft -j -f /tmp/x did not finish within 50 ms; killed it',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(signal?.aborted).toBe(true);
  });

  it('the real exec kills a hung child by its PID at the deadline', async () => {
    const pidFile = path.join(dir, 'pid');
    const hungNft = path.join(dir, 'hung-nft');
    writeFileSync(hungNft, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 60\n`);
    chmodSync(hungNft, 0o755);
    await expect(runNft(['-j', '-f', 'batch.json'], { nft: hungNft, exec: spawnNft, timeoutMs: 300 })).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const deadline = Date.now() + 2000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
  });

  it('the real exec reports a binary that cannot run as NFT_APPLY', async () => {
    await expect(runNft(['list', 'tables'], { nft: path.join(dir, 'no-such-nft') })).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY, message: expect.stringContaining('cannot run') });
  });
});
