/**
 * watchOutput (demo/process.ts), which the demo and the integration tests use to wait for a child's lines: each wait
 * consumes the output up to its match, the tail stays bounded, and a child that exits or stays silent rejects with
 * the output's tail.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCommand, stopChild, watchOutput } from '../../src/demo/process.js';

const sh = (script: string) => spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });

describe('watchOutput', () => {
  it('waits consume the output in order, by string or pattern, on either stream or one', async () => {
    const child = sh('echo ready 1; echo warn >&2; sleep 0.2; echo ready 2; sleep 5');
    const out = watchOutput(child);
    await out.waitForOutput('ready');
    await out.waitForOutput(/ready \d/); // the second one: the first was consumed
    await out.waitForOutput('warn', { stream: 'stderr' });
    expect(out.stdout()).toBe('ready 1\nready 2\n');
    expect(out.stderr()).toBe('warn\n');
    expect(out.output()).toContain('warn');
    await expect(out.waitForOutput('ready', { timeoutMs: 300, what: 'the shell' })).rejects.toThrow(/^the shell did not print ready within 300 ms: /);
    await stopChild(child, 500);
  });

  it('rejects with the tail when the child exits before printing', async () => {
    const out = watchOutput(sh('echo bye; exit 3'));
    await expect(out.waitForOutput('never', { what: 'sh' })).rejects.toThrow(/^sh exited \(3\) before printing never: bye/);
  });

  it('keeps a bounded tail, and a match in the part still held is found', async () => {
    const child = sh('i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done; echo end; sleep 5');
    const out = watchOutput(child, 100);
    await out.waitForOutput('end');
    expect(out.output().length).toBeLessThanOrEqual(100);
    expect(out.output()).toMatch(/line199\nend\n$/);
    await stopChild(child, 500);
  });
});

describe('runCommand with input', () => {
  it('a child that exits without reading its input is an ordinary run, not an EPIPE that ends the caller', async () => {
    // `true` never reads stdin: the pipe is often closed before the input is written (without the handler a third
    // of these runs raised an unhandled "write EPIPE", which fails a whole vitest run; seen in test 50 under load)
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on('uncaughtException', onError);
    try {
      const runs = await Promise.all(Array.from({ length: 60 }, (_, i) => runCommand(['true'], { input: i % 2 ? '' : 'x'.repeat(512) })));
      await new Promise((resolve) => setTimeout(resolve, 50)); // a late 'error' from a pipe would come by now
      expect(runs.map((r) => r.code)).toEqual(Array.from({ length: 60 }, () => 0));
      expect(errors).toEqual([]);
    } finally {
      process.off('uncaughtException', onError);
    }
  });

  it('a child that reads its input gets all of it', async () => {
    const r = await runCommand(['cat'], { input: 'line 1\nline 2\n' });
    expect(r).toEqual({ code: 0, stdout: 'line 1\nline 2\n', stderr: '' });
  });
});
