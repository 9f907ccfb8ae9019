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
    if (options.input !== undefined) {
      // a child that exits without reading its input (socat whose connect failed, a refused command) closes the pipe
      // first: the write's EPIPE is no error of the run (its status and output say what happened), and unhandled it
      // would end the caller's process; on a loaded machine the child often wins that race (vitest: "write EPIPE")
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
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

type Stream = 'stdout' | 'stderr' | 'both';

/** The bounded tails of a child's streams (each, and both interleaved), and how far the waits have read into each. */
class OutputTails {
  readonly text = { stdout: '', stderr: '', both: '' };
  /** how much of each stream earlier waits have consumed (offsets into the untrimmed text) */
  private readonly seen = { stdout: 0, stderr: 0, both: 0 };
  private readonly trimmed = { stdout: 0, stderr: 0, both: 0 };

  constructor(private readonly tailChars: number) {}

  append(stream: 'stdout' | 'stderr', chunk: string): void {
    for (const key of [stream, 'both'] as const) {
      this.text[key] += chunk;
      if (this.text[key].length > this.tailChars) {
        const cut = this.text[key].length - this.tailChars;
        this.text[key] = this.text[key].slice(cut);
        this.trimmed[key] += cut;
      }
    }
  }

  /** Finds `match` in the output no earlier wait consumed, and consumes up to its end; false when it is not there. */
  consume(stream: Stream, match: string | RegExp): boolean {
    const rest = this.text[stream].slice(Math.max(0, this.seen[stream] - this.trimmed[stream]));
    const m = typeof match === 'string' ? rest.indexOf(match) : rest.search(match);
    if (m < 0) return false;
    const length = typeof match === 'string' ? match.length : (rest.slice(m).match(match)?.[0].length ?? 0);
    this.seen[stream] = Math.max(this.seen[stream], this.trimmed[stream]) + m + length;
    return true;
  }
}

/** Captures a child's output (a bounded tail: a chatty process must not grow our memory, and must not block). */
export function watchOutput(child: ChildProcess, tailChars = DEFAULT_TAIL): WatchedOutput {
  const tails = new OutputTails(tailChars);
  const listeners = new Set<() => void>();
  const append = (stream: 'stdout' | 'stderr', chunk: string) => {
    tails.append(stream, chunk);
    for (const l of [...listeners]) l();
  };
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => append('stdout', chunk));
  child.stderr?.on('data', (chunk: string) => append('stderr', chunk));

  const waitForOutput = (match: string | RegExp, options: WaitOptions = {}): Promise<void> => {
    const stream = options.stream ?? 'both';
    const found = () => tails.consume(stream, match);
    if (found()) return Promise.resolve();
    const what = options.what ?? child.spawnargs.join(' ');
    return untilFound(child, listeners, found, { timeoutMs: options.timeoutMs ?? 15_000, describe: (problem) => `${what} ${problem} ${String(match)}`, tail: () => tails.text.both.slice(-2000) });
  };

  return { output: () => tails.text.both, stdout: () => tails.text.stdout, stderr: () => tails.text.stderr, waitForOutput };
}

/** Re-runs `found` on each new chunk (a listener) until it is true; rejects when the child exits first or on timeout. */
function untilFound(
  child: ChildProcess,
  listeners: Set<() => void>,
  found: () => boolean,
  o: { timeoutMs: number; describe: (problem: string) => string; tail: () => string },
): Promise<void> {
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
    const onExit = (code: number | null) => done(new Error(`${o.describe(`exited (${code}) before printing`)}: ${o.tail()}`));
    const timer = setTimeout(() => done(new Error(`${o.describe('did not print')} within ${o.timeoutMs} ms: ${o.tail()}`)), o.timeoutMs);
    listeners.add(check);
    child.once('exit', onExit);
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode);
  });
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
