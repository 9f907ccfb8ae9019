/**
 * Long-running helper children (`nft monitor`, `ip -6 monitor neigh`) that must not outlive natd, and the line
 * splitting of their output.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

/**
 * Spawns `command args…` through sh so that it ends with natd even when natd is killed (SIGKILL, a crash): a subshell
 * reads the stdin pipe (as fd 3: a background job's stdin would be /dev/null), gets EOF when natd's end closes, and
 * kills the command; sh exits when the command does. stdin is always a pipe (its errors are ignored).
 */
export function spawnTiedToNatd(command: string, args: readonly string[], output: { stdout: 'pipe' | 'ignore'; stderr: 'pipe' | 'ignore' }): ChildProcess {
  const stdio: StdioOptions = ['pipe', output.stdout, output.stderr];
  const child = spawn('sh', ['-c', 'exec 3<&0; "$0" "$@" </dev/null 3<&- & p=$!; (read -r _ <&3; kill "$p" 2>/dev/null) & exec 3<&-; wait "$p"', command, ...args], { stdio });
  child.stdin!.on('error', () => undefined);
  return child;
}

/**
 * Splits text arriving in chunks into lines (without the newline). A line longer than `maxLine` is dropped whole,
 * up to its end, and counted by `tooLong`: the output is guest-influenced and nothing is buffered without bound.
 */
export function lineSplitter(maxLine: number, onLine: (line: string) => void, tooLong: () => void): (chunk: string) => void {
  let pending = '';
  let skipping = false; // inside an over-long line: drop up to its end
  return (chunk) => {
    const parts = (pending + chunk).split('\n');
    pending = parts.pop()!;
    for (const line of parts) {
      if (skipping) {
        skipping = false;
        continue;
      }
      if (line.length > maxLine) tooLong();
      else onLine(line);
    }
    if (pending.length > maxLine) {
      if (!skipping) tooLong();
      skipping = true;
      pending = '';
    }
  };
}
