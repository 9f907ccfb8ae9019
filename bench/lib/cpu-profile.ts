/**
 * Reads V8 .cpuprofile files (from `node --cpu-prof`) and lists where the time went: self time per function,
 * summed over every node of the call tree that names the same function and source position.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotSpot {
  function: string;
  /** file:line relative to the project when possible */
  location: string;
  selfMs: number;
  /** share of all sampled time, 0..1 */
  share: number;
}

/** The `top` functions by self time in one profile; idle and GC are kept (they say something too). */
export function hotSpots(file: string, top = 15, root = process.cwd()): { totalMs: number; spots: HotSpot[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const selfMicros = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // time of sample i is attributed to the node sampled at i (delta i+1 is the time until the next sample)
  for (let i = 0; i < samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    selfMicros.set(samples[i]!, (selfMicros.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const byFunction = new Map<string, { fn: string; location: string; micros: number }>();
  let total = 0;
  for (const node of profile.nodes) {
    const micros = selfMicros.get(node.id) ?? 0;
    total += micros;
    if (micros === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.startsWith('file://') ? path.relative(root, new URL(url).pathname) : url;
    const location = file ? `${file}:${lineNumber + 1}` : '';
    const key = `${functionName}@${location}`;
    const entry = byFunction.get(key) ?? { fn: functionName || '(anonymous)', location, micros: 0 };
    entry.micros += micros;
    byFunction.set(key, entry);
  }
  const spots = [...byFunction.values()]
    .sort((a, b) => b.micros - a.micros)
    .slice(0, top)
    .map((e) => ({ function: e.fn, location: e.location, selfMs: e.micros / 1000, share: total ? e.micros / total : 0 }));
  return { totalMs: total / 1000, spots };
}
