/**
 * Running the nft binary with a deadline. Every nft call natd makes goes through `runNft`; the process itself is
 * started by an injectable `NftExec`, so unit tests run no nft and integration tests run it inside a namespace.
 *
 * The deadline exists because the firewall serialises its nft calls: one `nft` that never returns (a stuck netlink
 * socket, a stopped process) would otherwise hold every later apply, heal and forward change for ever. At the
 * deadline the call fails with NatdError(NFT_APPLY) whatever the exec does, and the exec is told (AbortSignal) to
 * kill its child; the default exec sends SIGKILL to the child's PID.
 */
import { execFile } from 'node:child_process';
import { ErrorCodes, NatdError } from '../errors.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs nft with these arguments (the binary is `nft` from the options). Resolves with the exit status, never rejects
 * on a non-zero exit. `signal` aborts at the deadline: the exec should then stop its child.
 */
export type NftExec = (nft: string, args: readonly string[], control?: { signal: AbortSignal }) => Promise<ExecResult>;

export interface NftOptions {
  /** Path of the nft binary; default 'nft' (PATH). */
  nft?: string;
  exec?: NftExec;
  /** How long one nft call may take before it is killed and fails; default DEFAULT_NFT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** A full apply of natd's table takes well under 100 ms; 10 s only ever bites on a hung nft. */
export const DEFAULT_NFT_TIMEOUT_MS = 10_000;

/** The real exec: nft as a child process, SIGKILLed by PID when `signal` aborts. */
export const spawnNft: NftExec = (nft, args, control) =>
  new Promise((resolve, reject) => {
    const child = execFile(nft, [...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      control?.signal.removeEventListener('abort', kill);
      if (err && typeof err.code !== 'number') {
        reject(new NatdError(ErrorCodes.NFT_APPLY, `cannot run ${nft}: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
    function kill(): void {
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    if (control?.signal.aborted) kill();
    else control?.signal.addEventListener('abort', kill, { once: true });
    child.stdin?.end();
  });

/** Runs nft once under the deadline; a call that outlives it rejects with NatdError(NFT_APPLY). */
export async function runNft(args: readonly string[], opts: NftOptions = {}): Promise<ExecResult> {
  const nft = opts.nft ?? 'nft';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_NFT_TIMEOUT_MS;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new NatdError(ErrorCodes.NFT_APPLY, `${nft} ${args.join(' ')} did not finish within ${timeoutMs} ms; killed it`));
    }, timeoutMs);
  });
  try {
    // race subscribes to both, so an exec that settles after the deadline leaves no unhandled rejection
    return await Promise.race([(opts.exec ?? spawnNft)(nft, args, { signal: abort.signal }), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
