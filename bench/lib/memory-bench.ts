/**
 * `npm run bench -- --scenario memory [--runs N] [--compare-dist A/dist,B/dist] [--mem-probe]`: only the memory part of
 * phase C (the issue 7 target: natd's peak RSS with 10,000 leases and 10,000 cached answers), the same steps as the
 * full run (server-run.ts fullCacheMemory), on fresh namespaces each run; with --compare-dist other builds take turns
 * with this one (order rotating run by run), to find which change grew the peak. Every stage's VmRSS/VmHWM and
 * RssAnon/RssFile (/proc/PID/status) are read; --mem-probe preloads mem-probe.js into natd for
 * process.memoryUsage() (V8 heap, external, array buffers) at the peak. RESULTS.md is left alone.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ProbeReading } from './mem-probe.js';
import { makeSeedLeases } from './seed-leases.js';
import { fullCacheMemory, names, waitIdle, type RunSettings } from './server-run.js';
import { startServer } from './servers.js';
import { fmt, median, textTable } from './stats.js';
import { BenchNetwork, PROJECT_ROOT } from './topology.js';
import { writeQueryFile } from './dnsperf.js';

const PROBE = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'mem-probe.js');

export interface MemoryBuild {
  label: string;
  /** the build's cli.js; undefined: this tree's dist */
  cli?: string;
}

export interface StageReading {
  stage: string;
  rssMiB: number;
  hwmMiB: number;
  anonMiB: number;
  fileMiB: number;
  /** --mem-probe: process.memoryUsage() and the heap spaces at this stage */
  probe?: ProbeReading;
}

export interface MemoryPoint {
  label: string;
  run: number;
  stages: StageReading[];
  /** VmHWM after the cache fill: the figure of phase C and of the target */
  peakRssMiB: number;
  fillCompleted: number;
  /** process.memoryUsage() and heap spaces at the end (--mem-probe) */
  probe?: ProbeReading;
}

export interface MemoryBenchSettings {
  runs: number;
  builds: MemoryBuild[];
  natdArgs: string[];
  memProbe: boolean;
  run: RunSettings;
  log(line: string): void;
}

/** /proc/PID/status fields in MiB */
function statusFields(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/status`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB$/gm)) out[m[1]!] = Number(m[2]) / 1024;
  return out;
}

function readStage(pid: number, stage: string): StageReading {
  const f = statusFields(pid);
  return { stage, rssMiB: f.VmRSS ?? NaN, hwmMiB: f.VmHWM ?? NaN, anonMiB: f.RssAnon ?? NaN, fileMiB: f.RssFile ?? NaN };
}

async function probe(pid: number): Promise<ProbeReading | undefined> {
  const file = path.join(tmpdir(), `natd-mem-probe-${pid}.json`);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 50 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(file)) return undefined;
  await new Promise((r) => setTimeout(r, 50)); // written in one call; give it a moment to land whole
  const reading = JSON.parse(readFileSync(file, 'utf8')) as ProbeReading;
  rmSync(file, { force: true });
  return reading;
}

export async function memoryBench(s: MemoryBenchSettings): Promise<MemoryPoint[]> {
  const points: MemoryPoint[] = [];
  const t0 = performance.now();
  for (let run = 1; run <= s.runs; run++) {
    const net = await BenchNetwork.create();
    try {
      const hitFile = writeQueryFile(net, 'hit.txt', names('h', 100, '.bench.test'));
      const fillFile = writeQueryFile(net, 'fill.txt', names('f', s.run.cacheFill, '.bench.test'));
      const order = s.builds.map((_, i) => s.builds[(i + run - 1) % s.builds.length]!);
      for (const build of order) {
        const seed = makeSeedLeases(s.run.seedLeases, 's', Date.now());
        const server = await startServer(net, 'natd', {
          instance: `mem-${run}-${s.builds.indexOf(build)}`, seed, extraArgs: s.natdArgs,
          ...(build.cli ? { natdCli: build.cli } : {}), ...(s.memProbe ? { nodeFlags: ['--import', PROBE] } : {}),
        });
        try {
          await waitIdle(server);
          const stages: StageReading[] = [];
          const stage = async (name: string) => {
            const reading = readStage(server.pid, name); // before the probe, which allocates a little itself
            const parts = s.memProbe ? await probe(server.pid) : undefined;
            stages.push({ ...reading, ...(parts ? { probe: parts } : {}) });
          };
          const { fill, peakRssMiB } = await fullCacheMemory(net, server, s.run, { hitFile, fillFile }, stage);
          await stage('filled');
          const reading = stages.at(-1)!.probe;
          const p: MemoryPoint = { label: build.label, run, stages, peakRssMiB, fillCompleted: fill.completed, ...(reading ? { probe: reading } : {}) };
          s.log(`  run ${run} ${build.label}: peak RSS ${fmt(peakRssMiB)} MiB (${stages.map((st) => `${st.stage} ${fmt(st.rssMiB)}`).join(', ')}); ` +
            `fill ${fill.completed}/${s.run.cacheFill}${reading ? `; heap ${mib(reading.memoryUsage.heapTotal)}/${mib(reading.memoryUsage.heapUsed)} used, external ${mib(reading.memoryUsage.external)}, arrayBuffers ${mib(reading.memoryUsage.arrayBuffers)}` : ''}`);
          points.push(p);
        } finally {
          await server.stop();
        }
      }
    } finally {
      await net.destroy();
    }
  }
  const json = path.join(tmpdir(), `natd-memory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(json, JSON.stringify(points, null, 1));
  s.log(`memory: ${((performance.now() - t0) / 1000).toFixed(0)} s; every reading in ${json}`);
  return points;
}

function mib(bytes: number): string {
  return fmt(bytes / 1048576);
}

/** Medians per build: the peak, every stage's RSS, the anonymous/file split at the end, the probe's parts. */
export function memoryTable(points: MemoryPoint[], targetMiB: number): string {
  const labels = [...new Set(points.map((p) => p.label))];
  const stageNames = [...new Set(points.flatMap((p) => p.stages.map((st) => st.stage)))];
  const med = (xs: number[]) => fmt(median(xs));
  const rows = labels.map((l) => {
    const mine = points.filter((p) => p.label === l);
    const last = mine.map((p) => p.stages.at(-1)!);
    const probes = mine.flatMap((p) => (p.probe ? [p.probe.memoryUsage] : []));
    const part = (k: keyof NodeJS.MemoryUsage) => (probes.length ? med(probes.map((u) => u[k] / 1048576)) : '–');
    return [l, med(mine.map((p) => p.peakRssMiB)), mine.map((p) => fmt(p.peakRssMiB)).join(' '),
      ...stageNames.map((st) => med(mine.flatMap((p) => p.stages.filter((x) => x.stage === st).map((x) => x.rssMiB)))),
      med(last.map((x) => x.anonMiB)), med(last.map((x) => x.fileMiB)), part('heapTotal'), part('heapUsed'), part('external'), part('arrayBuffers')];
  });
  return `natd memory with 10,000 leases and 10,000 cached answers (phase C's steps), MiB, medians of runs; target: peak <= ${fmt(targetMiB)} MiB\n` +
    textTable(['build', 'peak (VmHWM)', 'peak by run', ...stageNames.map((st) => `RSS ${st}`), 'anon', 'file', 'heap total', 'heap used', 'external', 'arrayBuffers'], rows) + '\n';
}
