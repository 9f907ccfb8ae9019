/**
 * The one process runner of the namespace bench (Topology), the integration tests, the benchmarks and `natd demo`.
 * One contract everywhere:
 *   - runCommand: run to the end within a timeout; resolves with the exit code (124 on timeout) and the captured
 *     output, never rejects on a non-zero exit (only when the program cannot be started at all);
 *   - watchOutput: a long-running child's output, captured (a bounded tail), with waitForOutput(text) that rejects
 *     with that output when the child exits first or the text does not come in time;
 *   - stopChild: SIGTERM by PID, SIGKILL after a grace period.
 */
import { execFile, type ChildProcess } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** killed (and code 124) after this long; default 20 s */
  timeoutMs?: number;
  /** written to stdin, which is then closed */
  input?: string;
  cwd?: string;
}

/** Exit code for a run that was killed at its timeout (timeout(1)'s). */
export const TIMED_OUT = 124;

/** Runs argv to its end; `onStart` gets the child (its PID) right away. */
export function runCommand(argv: readonly string[], options: RunOptions = {}, onStart?: (child: ChildProcess) => void): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new Error('runCommand: empty argv'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8', ...(options.cwd ? { cwd: options.cwd } : {}) },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        const killed = (err as { killed?: boolean } | null)?.killed;
        if (err && typeof code !== 'number' && !killed) {
          reject(err);
          return;
        }
        resolve({ code: err ? (typeof code === 'number' ? code : TIMED_OUT) : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    onStart?.(child);
  });
}

/** Like runCommand, but throws with the command's stderr when it exits non-zero; resolves with stdout. */
export async function runCommandOk(argv: readonly string[], options: RunOptions = {}, where = ''): Promise<string> {
  const r = await runCommand(argv, options);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}${where ? ` in ${where}` : ''} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface WaitOptions {
  /** default 15 s */
  timeoutMs?: number;
  /** names the process in errors; default its argv[0] */
  what?: string;
  /** where the text must appear; default either stream */
  stream?: 'stdout' | 'stderr' | 'both';
}

export interface WatchedOutput {
  /** stdout and stderr as they came, the last `tailChars` of them */
  output(): string;
  stdout(): string;
  stderr(): string;
  /**
   * Resolves once `match` appears in output that came after the previous waitForOutput resolved (or since watching
   * began); rejects with the output's tail when the child exits first or after timeoutMs.
   */
  waitForOutput(match: string | RegExp, options?: WaitOptions): Promise<void>;
}

const DEFAULT_TAIL = 256 * 1024;

/** Captures a child's output (a bounded tail: a chatty process must not grow our memory, and must not block). */
export function watchOutput(child: ChildProcess, tailChars = DEFAULT_TAIL): WatchedOutput {
  const text = { stdout: '', stderr: '', both: '' };
  /** how much of each stream earlier waits have consumed (offsets into the untrimmed text) */
  const seen = { stdout: 0, stderr: 0, both: 0 };
  const trimmed = { stdout: 0, stderr: 0, both: 0 };
  const listeners = new Set<() => void>();
  const append = (stream: 'stdout' | 'stderr', chunk: string) => {
    for (const key of [stream, 'both'] as const) {
      text[key] += chunk;
      if (text[key].length > tailChars) {
        const cut = text[key].length - tailChars;
        text[key] = text[key].slice(cut);
        trimmed[key] += cut;
      }
    }
    for (const l of [...listeners]) l();
  };
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => append('stdout', chunk));
  child.stderr?.on('data', (chunk: string) => append('stderr', chunk));

  const waitForOutput = (match: string | RegExp, options: WaitOptions = {}): Promise<void> => {
    const stream = options.stream ?? 'both';
    const timeoutMs = options.timeoutMs ?? 15_000;
    const what = options.what ?? child.spawnargs.join(' ');
    const unseen = () => text[stream].slice(Math.max(0, seen[stream] - trimmed[stream]));
    const found = (): boolean => {
      const rest = unseen();
      const m = typeof match === 'string' ? rest.indexOf(match) : rest.search(match);
      if (m < 0) return false;
      const length = typeof match === 'string' ? match.length : (rest.slice(m).match(match)?.[0].length ?? 0);
      seen[stream] = Math.max(seen[stream], trimmed[stream]) + m + length;
      return true;
    };
    if (found()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (found()) done();
      };
      const onExit = (code: number | null) => done(new Error(`${what} exited (${code}) before printing ${String(match)}: ${text.both.slice(-2000)}`));
      const timer = setTimeout(() => done(new Error(`${what} did not print ${String(match)} within ${timeoutMs} ms: ${text.both.slice(-2000)}`)), timeoutMs);
      listeners.add(check);
      child.once('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode);
    });
  };

  return { output: () => text.both, stdout: () => text.stdout, stderr: () => text.stderr, waitForOutput };
}

/** Stops a child by PID: SIGTERM, then SIGKILL after graceMs; resolves with its exit code. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}
