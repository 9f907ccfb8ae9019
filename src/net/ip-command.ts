/** Runs iproute2's `ip` (JSON output where asked). natd changes links only through this, so it is easy to audit. */
import { execFile } from 'node:child_process';

export interface IpRunner {
  (args: string[]): Promise<string>;
}

export const runIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
