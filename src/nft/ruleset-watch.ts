/**
 * The healer's change events (healer.ts): one long-running `nft monitor` child that prints a line for every change
 * to the ruleset (any table, also natd's own applies: the healer's check then finds the table intact). Which line it
 * is does not matter: every line only makes the healer check soon, and the check decides. Lines are not parsed.
 * The child is stopped by closing its stdin (and SIGTERM to its PID); when it ends by itself (nft missing, killed)
 * the healer falls back to polling.
 */
import { spawnTiedToNatd } from '../tied-child.js';
import type { RulesetWatcher } from './healer.js';

export function nftMonitor(nft = 'nft'): RulesetWatcher {
  return (events) => {
    const child = spawnTiedToNatd(nft, ['monitor'], { stdout: 'pipe', stderr: 'ignore' }); // ends with natd, even on kill -9
    let stopped = false;
    const gone = (): void => {
      if (stopped) return;
      stopped = true;
      events.lost();
    };
    child.on('error', gone); // not started (ENOENT, …)
    child.on('exit', gone);
    child.stdout!.on('data', () => events.changed());
    child.stdout!.on('error', () => {});
    return {
      stop() {
        stopped = true;
        child.stdin!.end(); // the subshell kills nft
        child.stdout!.destroy();
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
