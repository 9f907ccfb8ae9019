/**
 * The healer's change events (healer.ts): one long-running `nft monitor` child that prints a line for every change
 * to the ruleset (any table, also natd's own applies: the healer's check then finds the table intact). Which line it
 * is does not matter: every line only makes the healer check soon, and the check decides. Lines are not parsed.
 * The child is stopped by closing its stdin (and SIGTERM to its PID); when it ends by itself (nft missing, killed)
 * the healer falls back to polling.
 */
import { spawn } from 'node:child_process';
import type { RulesetWatcher } from './healer.js';

export function nftMonitor(nft = 'nft'): RulesetWatcher {
  return (events) => {
    // through sh, so that nft ends with natd even when natd is killed (SIGKILL, a crash): the subshell reads the
    // stdin pipe (as fd 3: a background job's stdin would be /dev/null), gets EOF when natd's end closes, and kills
    // nft; sh itself exits when nft does (→ lost())
    const child = spawn('sh', ['-c', 'exec 3<&0; "$0" monitor </dev/null 3<&- & p=$!; (read -r _ <&3; kill "$p" 2>/dev/null) & exec 3<&-; wait "$p"', nft], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    child.stdin.on('error', () => {});
    let stopped = false;
    const gone = (): void => {
      if (stopped) return;
      stopped = true;
      events.lost();
    };
    child.on('error', gone); // not started (ENOENT, …)
    child.on('exit', gone);
    child.stdout.on('data', () => events.changed());
    child.stdout.on('error', () => {});
    return {
      stop() {
        stopped = true;
        child.stdin.end(); // the subshell kills nft
        child.stdout.destroy();
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGTERM');
          } catch {
            /* already gone */
          }
        }
      },
    };
  };
}
