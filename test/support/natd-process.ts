/** Starts the built natd (dist/) inside a namespace and waits until it logs that it is ready. */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Topology } from './netns.js';
import { FIXTURES, NATD_CLI } from './paths.js';
import { waitFor } from './wait.js';

export { FIXTURES, NATD_CLI, PROJECT_ROOT } from './paths.js';

export interface NatdHandle {
  child: ChildProcess;
  stateDir: string;
  controlSocket: string;
  /** every JSON log line so far */
  logs: Record<string, unknown>[];
  /** resolves with the first log line matching the predicate */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stderr(): string;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export async function startNatd(topology: Topology, args: string[], options: { stateDir?: string; waitReady?: boolean } = {}): Promise<NatdHandle> {
  const stateDir = options.stateDir ?? tempDir('natd-state-');
  const controlSocket = path.join(stateDir, 'control.sock');
  const child = topology.spawn(topology.host, [
    process.execPath, NATD_CLI, '--state-dir', stateDir, '--control-socket', controlSocket, ...args,
  ]);
  const logs: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let stderr = '';
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { msg: line, unparsed: true };
      }
      logs.push(parsed);
      for (const w of [...waiters]) if (w.match(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));

  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`natd log line not seen within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-10))}`)), timeoutMs);
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`natd exited (${code}) before the expected log line; stderr: ${stderr}`));
      };
      child.once('exit', onExit);
      waiters.push({ match, resolve: (l) => { clearTimeout(timer); child.off('exit', onExit); resolve(l); } });
    });
  };

  const handle: NatdHandle = { child, stateDir, controlSocket, logs, waitForLog, stderr: () => stderr };
  if (options.waitReady !== false) await waitForLog((l) => l.msg === 'natd ready');
  return handle;
}

/**
 * Runs busybox udhcpc once in a vm namespace; returns the parsed event lines and its output. It sends up to 10
 * DISCOVERs a second apart (a real client keeps trying for a minute; 4 tries were lost on a loaded CI machine), or
 * as many as the caller's own `-t` says (a test that expects no lease may ask for fewer).
 */
export async function runUdhcpc(topology: Topology, ns: string, extra: string[] = [], timeoutMs = 25_000): Promise<{ code: number; events: Record<string, string>[]; output: string }> {
  const log = path.join(tempDir('udhcpc-'), 'events.log');
  const tries = extra.includes('-t') ? [] : ['-t', '10'];
  const r = await topology.run(ns, [
    'env', `UDHCPC_LOG=${log}`, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', ...tries, '-T', '1', '-A', '1',
    '-s', path.join(FIXTURES, 'udhcpc-script.sh'), ...extra,
  ], { timeoutMs });
  const events = existsSync(log)
    ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((line) =>
        Object.fromEntries(line.split(' ').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1)]; })))
    : [];
  if (r.code !== 0) console.log(`udhcpc in ${ns} exited ${r.code} after ${extra.join(' ') || 'no extra flags'}:\n${r.stdout + r.stderr}`);
  return { code: r.code, events, output: r.stdout + r.stderr };
}

/** Polls `ss` in a namespace until something listens on the TCP port (bounded: 15 s, a node server's start-up on a loaded machine takes seconds). */
export async function waitForListener(topology: Topology, ns: string, port: number, timeoutMs = 15_000): Promise<void> {
  await waitFor(`a listener on tcp port ${port} in ${ns}`, async () => (await topology.run(ns, ['ss', '-Hltn', `sport = :${port}`])).stdout.trim() !== '', timeoutMs, 50);
}
