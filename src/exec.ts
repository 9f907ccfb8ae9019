/** Running an operator tool (nft, ss, ip, resolvectl) without a shell, behind a function type tests replace. */
import { execFile } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Exec = (command: string, args: string[]) => Promise<ExecResult>;

/** Runs a command without a shell; never rejects (a missing program is code 127). */
export const defaultExec: Exec = (command, args) =>
  new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : err.code === 'ENOENT' ? 127 : 1;
      resolve({ code, stdout: stdout ?? '', stderr: stderr || err.message });
    });
  });
