/**
 * Runs dnsperf in a namespace and reads its numbers: the summary (sent, completed, lost, queries/s, average
 * latency) and, from the per-query lines `-v` prints ("> NOERROR name A 0.000245"), the latency percentiles
 * dnsperf itself does not report.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchNetwork } from './topology.js';
import { GATEWAY } from './topology.js';
import { percentileSorted } from './stats.js';

export interface DnsperfOptions {
  /** query file: "name TYPE" per line */
  queryFile: string;
  /** -l: stop after this many seconds */
  seconds: number;
  /** -Q: offered queries per second at most */
  maxQps: number;
  /** -n: stop after this many passes through the file (1 = every name once, e.g. unique cache-miss names) */
  passes?: number;
  /** -q: queries outstanding at once (default 100, dnsperf's own default) */
  outstanding?: number;
  /** -t: seconds before a query counts as lost (default 2) */
  timeoutSeconds?: number;
  /** -s: the server (default natd's IPv4 gateway; issue 14: its IPv6 gateway for the dns-ipv6 scenario) */
  server?: string;
}

export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  /** milliseconds */
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  /** response codes seen, e.g. { NOERROR: 1000 } */
  rcodes: Record<string, number>;
}

function summaryNumber(text: string, label: string): number {
  const m = new RegExp(`${label}:\\s+([\\d.]+)`).exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Parses dnsperf -v output (exported for its own sanity check). */
export function parseDnsperfOutput(text: string): DnsperfResult {
  const latencies: number[] = [];
  const rcodes: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('> ')) continue;
    const parts = line.split(' ');
    const seconds = Number(parts[parts.length - 1]);
    if (!Number.isFinite(seconds)) continue;
    latencies.push(seconds * 1000);
    const rcode = parts[1]!;
    rcodes[rcode] = (rcodes[rcode] ?? 0) + 1;
  }
  latencies.sort((a, b) => a - b);
  return {
    sent: summaryNumber(text, 'Queries sent'),
    completed: summaryNumber(text, 'Queries completed'),
    lost: summaryNumber(text, 'Queries lost'),
    qps: summaryNumber(text, 'Queries per second'),
    avgMs: summaryNumber(text, 'Average Latency \\(s\\)') * 1000,
    p50Ms: percentileSorted(latencies, 50),
    p99Ms: percentileSorted(latencies, 99),
    rcodes,
  };
}

export async function runDnsperf(net: BenchNetwork, options: DnsperfOptions): Promise<DnsperfResult> {
  const out = path.join(net.workDir, `dnsperf-${process.hrtime.bigint()}.out`);
  const argv = [
    'dnsperf', '-s', options.server ?? GATEWAY, '-d', options.queryFile, '-l', String(options.seconds), '-Q', String(options.maxQps),
    '-q', String(options.outstanding ?? 100), '-t', String(options.timeoutSeconds ?? 2), '-c', '4', '-v',
    ...(options.passes !== undefined ? ['-n', String(options.passes)] : []),
  ];
  // per-query lines can run to megabytes: straight to a file, not through a pipe buffer
  const shell = `exec ${argv.map((a) => `'${a}'`).join(' ')} > '${out}' 2>&1`;
  const timeoutMs = (options.seconds + (options.timeoutSeconds ?? 2) + 20) * 1000;
  const r = await net.topology.run(net.dnsperfNs, ['sh', '-c', shell], { timeoutMs });
  let text = '';
  try {
    text = readFileSync(out, 'utf8');
  } finally {
    rmSync(out, { force: true });
  }
  if (r.code !== 0) throw new Error(`dnsperf exited ${r.code}: ${text.slice(-1000)}`);
  return parseDnsperfOutput(text);
}

/** Writes a query file ("name A" per line) into the work dir and returns its path. */
export function writeQueryFile(net: BenchNetwork, name: string, names: Iterable<string>): string {
  const file = path.join(net.workDir, name);
  const lines: string[] = [];
  for (const n of names) lines.push(`${n} A`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}
