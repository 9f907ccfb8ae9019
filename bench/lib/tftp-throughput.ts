/**
 * issue 16: TFTP throughput, natd's built-in server vs Debian's tftpd-hpa, on the same namespaces: one 50 MB file
 * fetched by 10 clients at once from a guest namespace, each server alone in its run (alternating), aggregate MB/s =
 * all bytes / time until the last client is done. Two client set-ups, the same for both servers:
 *   - curl, blksize 1468 (with tsize): one ACK per block, what most PXE firmware does;
 *   - atftp, blksize 1468 + windowsize 8 (RFC 7440): natd grants the window; tftpd-hpa 5.2 has no windowsize and
 *     leaves it out of its OACK, so atftp falls back to one block per ACK there.
 * tftpd-hpa is a process the benchmark owns (`in.tftpd --foreground --address GW:69 -s DIR`), started in the host
 * namespace and stopped by PID. When it is not installed, its .deb is fetched with `apt-get download` and unpacked
 * into build/tools/ (never installed: the package would start a system-wide service on port 69).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpuSeconds, cpuTimes } from './proc.js';
import type { Table } from './report.js';
import { fmt, fmtRatio, median, ratio } from './stats.js';
import { NATD_CLI } from './servers.js';
import { BenchNetwork, GATEWAY, PROJECT_ROOT } from './topology.js';

export type TftpServerKind = 'natd' | 'tftpd-hpa';
export type TftpClientKind = 'curl' | 'atftp-window8';

export interface TftpBenchSettings {
  fileMiB: number;
  clients: number;
  runs: number;
  log(line: string): void;
}

export interface TftpRunResult {
  server: TftpServerKind;
  client: TftpClientKind;
  run: number;
  clients: number;
  /** clients whose file arrived whole */
  complete: number;
  seconds: number;
  aggregateMBps: number;
  /** server CPU seconds during the run (natd: its process; tftpd-hpa: its process and its forked children, sampled) */
  cpuSeconds: number;
}

const TOOLS_DIR = path.join(PROJECT_ROOT, 'build', 'tools', 'tftpd-hpa');

/** in.tftpd from the system, or unpacked from Debian's .deb into build/tools; undefined when neither works. */
export function findTftpd(log: (line: string) => void): string | undefined {
  for (const candidate of ['/usr/sbin/in.tftpd', path.join(TOOLS_DIR, 'usr', 'sbin', 'in.tftpd')]) if (existsSync(candidate)) return candidate;
  const scratch = mkdtempSync(path.join(tmpdir(), 'natd-tftpd-deb-'));
  try {
    chmodSync(scratch, 0o755); // apt's _apt user writes the download here
    execFileSync('apt-get', ['download', 'tftpd-hpa'], { cwd: scratch, stdio: 'ignore', timeout: 60_000 });
    const deb = readdirSync(scratch).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('no .deb downloaded');
    mkdirSync(TOOLS_DIR, { recursive: true });
    execFileSync('dpkg-deb', ['-x', path.join(scratch, deb), TOOLS_DIR], { stdio: 'ignore' });
    log(`tftpd-hpa unpacked (not installed) into ${path.relative(PROJECT_ROOT, TOOLS_DIR)}`);
    return path.join(TOOLS_DIR, 'usr', 'sbin', 'in.tftpd');
  } catch (err) {
    log(`tftpd-hpa unavailable (${(err as Error).message}); natd only`);
    return undefined;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function clientArgv(client: TftpClientKind, target: string): string[] {
  if (client === 'curl') return ['curl', '-sS', '--tftp-blksize', '1468', '-o', target, `tftp://${GATEWAY}/big.bin`];
  return ['atftp', '--option', 'blksize 1468', '--option', 'tsize 0', '--option', 'windowsize 8', '-g', '-r', 'big.bin', '-l', target, GATEWAY];
}

/** utime + stime of a process (fields 14 and 15 of /proc/PID/stat), seconds; NaN when it is gone. */
function processCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * CPU of tftpd-hpa, which serves each transfer in a forked child and reaps it only when it gets round to it (the
 * parent's cutime stays 0 meanwhile): its children are sampled every 100 ms and each one's last sample counts, so
 * the figure is a lower bound (at most the last 100 ms of each child are missed).
 */
function sampleChildrenCpu(pid: number): () => number {
  const last = new Map<number, number>();
  const sample = (): void => {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return;
    }
    for (const child of children) {
      const cpu = processCpu(Number(child));
      if (Number.isFinite(cpu)) last.set(Number(child), cpu);
    }
  };
  const timer = setInterval(sample, 100);
  const base = processCpu(pid);
  return () => {
    sample();
    clearInterval(timer);
    let sum = processCpu(pid) - base;
    for (const cpu of last.values()) sum += cpu;
    return sum;
  };
}

async function oneRun(server: TftpServerKind, client: TftpClientKind, run: number, tftpd: string | undefined, s: TftpBenchSettings): Promise<TftpRunResult> {
  const net = await BenchNetwork.create();
  try {
    const root = path.join(net.workDir, 'tftp-root');
    const out = path.join(net.workDir, 'out');
    mkdirSync(root, { recursive: true });
    mkdirSync(out);
    chmodSync(net.workDir, 0o755); // tftpd-hpa drops to nobody after chroot
    chmodSync(root, 0o755);
    const size = s.fileMiB * 1024 * 1024;
    writeFileSync(path.join(root, 'big.bin'), randomBytes(size), { mode: 0o644 });
    writeFileSync(path.join(root, 'probe.txt'), 'probe\n', { mode: 0o644 });
    const ns = net.dnsperfNs; // vm2 has a static address
    let argv: string[];
    if (server === 'natd') {
      const state = path.join(net.workDir, 'natd-state');
      argv = [process.execPath, NATD_CLI, '--bridge', 'br0', '--no-dns', '--no-firewall', '--log-level', 'warn', '--state-dir', state,
        '--control-socket', path.join(net.workDir, 'natd.sock'), '--enable-tftp', '--tftp-root', root];
    } else {
      argv = [tftpd!, '--foreground', '--address', `${GATEWAY}:69`, '--user', 'nobody', '--secure', root];
    }
    const child = net.topology.spawn(net.hostNs, argv);
    child.stdout!.resume();
    child.stderr!.resume();
    await waitForTftp(net, ns, out);
    const pid = child.pid!;
    const cpuBefore = server === 'natd' ? cpuSeconds(pid) : 0;
    const tftpdCpu = server === 'tftpd-hpa' ? sampleChildrenCpu(pid) : undefined;
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: s.clients }, (_, i) => net.topology.run(ns, clientArgv(client, path.join(out, `c${i}.bin`)), { timeoutMs: 300_000 })),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpuAfter = tftpdCpu ? tftpdCpu() : cpuSeconds(pid);
    const complete = results.filter((r, i) => r.code === 0 && fileSize(path.join(out, `c${i}.bin`)) === size).length;
    if (server === 'natd') {
      // natd's own view of the run: retransmissions and drops explain a slow run
      const m = await net.topology.run(net.hostNs, [process.execPath, NATD_CLI, 'metrics', '--control-socket', path.join(net.workDir, 'natd.sock')]);
      const times = cpuTimes(pid);
      s.log(`  natd: user ${times.user.toFixed(2)} s, system ${times.system.toFixed(2)} s; ${m.stdout.split('\n').filter((l) => /^natd_tftp_(retransmits|dropped)/.test(l)).join('; ')}`);
    }
    await net.topology.stop(child, 5000);
    return { server, client, run, clients: s.clients, complete, seconds, aggregateMBps: (complete * size) / 1e6 / seconds, cpuSeconds: cpuAfter - cpuBefore };
  } finally {
    await net.destroy();
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

/** Waits until a small probe file can be fetched (the server is listening). */
async function waitForTftp(net: BenchNetwork, ns: string, out: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await net.topology.run(ns, ['curl', '-sS', '--max-time', '2', '-o', path.join(out, 'probe.txt'), `tftp://${GATEWAY}/probe.txt`], { timeoutMs: 5000 });
    if (r.code === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error('TFTP server not answering after 20 s');
}

function installed(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function tftpThroughput(s: TftpBenchSettings, budgetMs: number): Promise<{ results: TftpRunResult[]; skipped: string[] }> {
  const start = performance.now();
  const missing = ['curl', 'atftp'].filter((t) => !installed(t));
  if (missing.length) return { results: [], skipped: [`TFTP throughput (${missing.join(', ')} not installed: apt-get install curl atftp)`] };
  const tftpd = findTftpd(s.log);
  const servers: TftpServerKind[] = tftpd ? ['natd', 'tftpd-hpa'] : ['natd'];
  const results: TftpRunResult[] = [];
  const skipped: string[] = tftpd ? [] : ['tftpd-hpa (not available)'];
  let longest = 0;
  for (let run = 1; run <= s.runs; run++) {
    for (const client of ['curl', 'atftp-window8'] as const) {
      for (const server of run % 2 ? servers : [...servers].reverse()) {
        const left = budgetMs - (performance.now() - start);
        if ((longest || 60) * 1000 > left) {
          skipped.push(`TFTP run ${run} ${server} ${client} (${(left / 1000).toFixed(0)} s of the budget left)`);
          continue;
        }
        s.log(`[tftp ${run}/${s.runs}] ${server}, ${s.clients} x ${client}, ${s.fileMiB} MiB`);
        const t = performance.now();
        results.push(await oneRun(server, client, run, tftpd, s));
        longest = Math.max(longest, ((performance.now() - t) / 1000) * 1.2);
      }
    }
  }
  return { results, skipped };
}

const CLIENT_LABEL: Record<TftpClientKind, string> = { curl: 'curl, blksize 1468', 'atftp-window8': 'atftp, blksize 1468 + windowsize 8' };

/** Medians per client set-up, natd and tftpd-hpa side by side. */
export function tftpTable(results: readonly TftpRunResult[], s: Pick<TftpBenchSettings, 'clients' | 'fileMiB'>): Table {
  const pick = (server: TftpServerKind, client: TftpClientKind, f: (r: TftpRunResult) => number) => median(results.filter((r) => r.server === server && r.client === client).map(f));
  const rows: string[][] = [];
  for (const client of ['curl', 'atftp-window8'] as const) {
    const natd = pick('natd', client, (r) => r.aggregateMBps);
    const hpa = pick('tftpd-hpa', client, (r) => r.aggregateMBps);
    const done = (server: TftpServerKind) => results.filter((r) => r.server === server && r.client === client).map((r) => `${r.complete}/${r.clients}`).join(' ');
    rows.push([CLIENT_LABEL[client], fmt(natd), fmt(hpa), fmtRatio(ratio(natd, hpa)), fmt(pick('natd', client, (r) => r.cpuSeconds)), fmt(pick('tftpd-hpa', client, (r) => r.cpuSeconds)), done('natd') || '-', done('tftpd-hpa') || '-']);
  }
  return {
    title: `TFTP throughput (issue 16): ${s.clients} clients at once, ${s.fileMiB} MiB each`,
    note: 'aggregate MB/s (10^6 bytes) until the last client is done, median of the runs; CPU s of the server for the run (tftpd-hpa: its per-transfer children sampled every 100 ms, a lower bound); complete = whole files per run. tftpd-hpa 5.2 has no windowsize: atftp falls back to one block per ACK with it.',
    headers: ['clients', 'natd MB/s', 'tftpd-hpa MB/s', 'natd/tftpd-hpa', 'natd CPU s', 'tftpd-hpa CPU s', 'natd complete', 'tftpd-hpa complete'],
    rows,
  };
}
