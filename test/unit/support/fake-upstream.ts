/** Runs test/fixtures/fake-upstream.mjs on a random loopback port for unit tests of the DNS I/O modules. */
import { spawn, type ChildProcess } from 'node:child_process';

const FAKE_UPSTREAM = new URL('../../fixtures/fake-upstream.mjs', import.meta.url).pathname;

/** Resolves with the port once the fake upstream prints `listening 127.0.0.1:PORT`. */
export async function startFakeUpstream(logFile: string, extra: string[] = []): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [FAKE_UPSTREAM, '--listen', '127.0.0.1:0', '--log', logFile, ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`fake upstream exited with ${code}`)));
  });
  const match = /^listening 127\.0\.0\.1:(\d+)$/.exec(line);
  if (!match) throw new Error(`unexpected fake upstream output: ${line}`);
  return { port: Number(match[1]), child };
}
