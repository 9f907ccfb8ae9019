/**
 * The "local records" scenario (issue 15): does a large set of custom DNS records slow the hot path? Every query
 * looks at natd's own records before the cache, so cache hits are measured twice on the same namespaces, alternating
 * which goes first: natd plain, and natd with 1,000 records configured (host-record, cname, srv-host, txt-record,
 * mx-host and address rules, one of them under the hit names' own top-level label so the wildcard walk runs on every
 * hit). Also the rate of answers from the records themselves. natd only: the question is natd against itself.
 *
 *   npm run bench -- --scenario local-records [--runs N]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { runDnsperf, writeQueryFile, type DnsperfResult } from './dnsperf.js';
import { cpuSeconds } from './proc.js';
import { makeSeedLeases } from './seed-leases.js';
import { startServer, type RunningServer } from './servers.js';
import { fmt, median, textTable } from './stats.js';
import { BenchNetwork } from './topology.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { resolveLocally } from '../../src/dns/local-resolver.js';
import { parseRecordSettings } from '../../src/dns/record-config.js';
import { buildRecordZone } from '../../src/dns/record-zone.js';
import { parseCidr } from '../../src/net/ipv4.js';

export const RECORD_COUNT = 1000;

export interface LocalRecordsSettings {
  dnsSeconds: number;
  maxQps: number;
  natdArgs: string[];
  log(line: string): void;
}

export interface LocalRecordsRun {
  run: number;
  plain: { qps: number; p99Ms: number; cpuPer10k: number };
  records: { qps: number; p99Ms: number; cpuPer10k: number };
  /** queries for the records themselves (A of host records, through CNAMEs, SRV, TXT, MX, wildcard) */
  recordAnswers: { qps: number; p99Ms: number; cpuPer10k: number; noerror: number };
  seconds: number;
}

/** 1,000 records of every kind; `names` are query lines (name type) for the records-answer measurement. */
export function recordConfig(): { config: Record<string, string[]>; queries: string[] } {
  const hostRecord: string[] = [];
  const cname: string[] = [];
  const srvHost: string[] = [];
  const txtRecord: string[] = [];
  const mxHost: string[] = [];
  const address: string[] = [];
  const queries: string[] = [];
  for (let i = 0; i < 700; i++) {
    hostRecord.push(`r${i}.rec.bench.lab,10.88.${i >> 8}.${i & 255}`);
    queries.push(`r${i}.rec.bench.lab A`);
  }
  for (let i = 0; i < 100; i++) {
    cname.push(`c${i}.rec.bench.lab,r${i}.rec.bench.lab`);
    txtRecord.push(`t${i}.rec.bench.lab,"bench text ${i}"`);
    queries.push(`c${i}.rec.bench.lab A`, `t${i}.rec.bench.lab TXT`);
  }
  for (let i = 0; i < 50; i++) {
    srvHost.push(`_svc${i}._tcp.rec.bench.lab,r${i}.rec.bench.lab,443,0,10`);
    queries.push(`_svc${i}._tcp.rec.bench.lab SRV`);
  }
  for (let i = 0; i < 40; i++) {
    mxHost.push(`m${i}.rec.bench.lab,r${i}.rec.bench.lab,10`);
    queries.push(`m${i}.rec.bench.lab MX`);
  }
  for (let i = 0; i < 9; i++) {
    address.push(`/w${i}.apps.bench.lab/10.88.200.${i + 1}`);
    queries.push(`x${i}.w${i}.apps.bench.lab A`);
  }
  address.push('/wild.bench-other.test/10.88.201.1'); // shares the hit names' top-level label: the walk runs on hits
  return { config: { hostRecord, cname, srvHost, txtRecord, mxHost, address }, queries };
}

async function measure(net: BenchNetwork, server: RunningServer, file: string, s: LocalRecordsSettings): Promise<{ result: DnsperfResult; cpuPer10k: number }> {
  const before = cpuSeconds(server.pid);
  const result = await runDnsperf(net, { queryFile: file, seconds: s.dnsSeconds, maxQps: s.maxQps });
  const cpu = cpuSeconds(server.pid) - before;
  return { result, cpuPer10k: result.completed ? (cpu / result.completed) * 10_000 : NaN };
}

export async function localRecordsRun(run: number, s: LocalRecordsSettings): Promise<LocalRecordsRun> {
  const t0 = performance.now();
  const net = await BenchNetwork.create();
  try {
    const { config, queries } = recordConfig();
    const configFile = path.join(net.workDir, 'records.json');
    writeFileSync(configFile, JSON.stringify(config));
    const hitFile = writeQueryFile(net, 'hit.txt', Array.from({ length: 100 }, (_, i) => `h${i}.bench.test`));
    const recordFile = path.join(net.workDir, 'records.txt');
    writeFileSync(recordFile, queries.join('\n') + '\n');
    const seed = makeSeedLeases(100, 's', Date.now());

    const order: ('plain' | 'records')[] = run % 2 === 1 ? ['plain', 'records'] : ['records', 'plain'];
    const out: Partial<LocalRecordsRun> = { run };
    for (const variant of order) {
      const server = await startServer(net, 'natd', {
        instance: variant, seed, extraArgs: [...s.natdArgs, ...(variant === 'records' ? ['--config', configFile] : [])],
      });
      try {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm the 100 hit names
        const hit = await measure(net, server, hitFile, s);
        out[variant] = { qps: hit.result.qps, p99Ms: hit.result.p99Ms, cpuPer10k: hit.cpuPer10k };
        s.log(`  natd ${variant}: cache hits ${hit.result.qps.toFixed(0)} q/s, p99 ${hit.result.p99Ms.toFixed(2)} ms, lost ${hit.result.lost}`);
        if (variant === 'records') {
          const answers = await measure(net, server, recordFile, s);
          const noerror = answers.result.completed ? (answers.result.rcodes.NOERROR ?? 0) / answers.result.completed : 0;
          out.recordAnswers = { qps: answers.result.qps, p99Ms: answers.result.p99Ms, cpuPer10k: answers.cpuPer10k, noerror };
          s.log(`  natd records: answers from the records ${answers.result.qps.toFixed(0)} q/s, NOERROR ${(noerror * 100).toFixed(1)}%`);
        }
      } finally {
        await server.stop();
      }
    }
    return { ...(out as Omit<LocalRecordsRun, 'seconds'>), seconds: (performance.now() - t0) / 1000 };
  } finally {
    await net.destroy();
  }
}

/**
 * The same question in-process, free of the network and of other load on the machine: the local-answer step of the
 * pipeline (resolveLocally) for the 100 hit names, with no records and with the 1,000, alternating for 12 rounds of
 * 200,000 questions each; the fastest round of each counts (the least disturbed). Nanoseconds per question.
 */
export function answerStepCost(): { emptyNs: number; recordsNs: number } {
  const { address, subnet } = parseCidr('10.77.0.1/16')!;
  const names = new LocalNames({ domain: 'vm', subnet, gatewayAddress: address });
  for (let i = 0; i < 100; i++) names.setHost(`s${i}`, address + 10 + i, 'lease');
  const specs = parseRecordSettings(recordConfig().config, { domain: 'vm' }).specs;
  const zones = {
    emptyNs: buildRecordZone([], { domain: 'vm', subnet, ttl: 0, serverName: 'gateway.vm' }).zone,
    recordsNs: buildRecordZone(specs, { domain: 'vm', subnet, ttl: 0, serverName: 'gateway.vm' }).zone,
  };
  // flat strings, as parseQuery makes them
  const questions = Array.from({ length: 100 }, (_, i) => ({ name: Buffer.from(`h${i}.bench.test`).toString('latin1'), type: 1, class: 1 }));
  const best = { emptyNs: Infinity, recordsNs: Infinity };
  const N = 200_000;
  for (let round = 0; round < 12; round++) {
    for (const key of ['emptyNs', 'recordsNs'] as const) {
      const zone = zones[key];
      const t0 = performance.now();
      for (let i = 0; i < N; i++) resolveLocally(questions[i % 100]!, zone, names);
      best[key] = Math.min(best[key], ((performance.now() - t0) * 1e6) / N);
    }
  }
  return best;
}

export function localRecordsTable(runs: readonly LocalRecordsRun[], step?: { emptyNs: number; recordsNs: number }): string {
  const m = (f: (r: LocalRecordsRun) => number) => median(runs.map(f));
  const plain = m((r) => r.plain.qps);
  const records = m((r) => r.records.qps);
  const rows = [
    ['cache hits, plain natd: queries/s', fmt(plain)],
    [`cache hits, ${RECORD_COUNT.toLocaleString('en')} records configured: queries/s`, fmt(records)],
    ['  ratio (records / plain)', (records / plain).toFixed(3)],
    ['cache hits p99 ms, plain / with records', `${fmt(m((r) => r.plain.p99Ms))} / ${fmt(m((r) => r.records.p99Ms))}`],
    ['CPU s per 10,000 hits, plain / with records', `${fmt(m((r) => r.plain.cpuPer10k))} / ${fmt(m((r) => r.records.cpuPer10k))}`],
    ['answers from the records (A, CNAME chain, SRV, TXT, MX, wildcard): queries/s', fmt(m((r) => r.recordAnswers.qps))],
    ['  NOERROR share', `${(m((r) => r.recordAnswers.noerror) * 100).toFixed(1)}%`],
    ...(step ? [
      ['in-process local-answer step per hit, no records / 1,000 records: ns', `${fmt(step.emptyNs)} / ${fmt(step.recordsNs)}`],
      ['  the difference as a share of natd\'s CPU per plain hit', `${(((step.recordsNs - step.emptyNs) / (m((r) => r.plain.cpuPer10k) * 1e5)) * 100).toFixed(2)}%`],
    ] : []),
  ];
  const perRun = runs.map((r) => [String(r.run), fmt(r.plain.qps), fmt(r.records.qps), (r.records.qps / r.plain.qps).toFixed(3), fmt(r.recordAnswers.qps)]);
  return `Local records (issue 15), medians of ${runs.length} run(s), natd only, dnsperf 100 outstanding\n${textTable(['what', 'natd'], rows)}\n` +
    `${textTable(['run', 'plain hits q/s', 'hits with records q/s', 'ratio', 'record answers q/s'], perRun)}`;
}
