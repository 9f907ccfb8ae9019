/**
 * Preloaded into natd by `--scenario memory --mem-probe` (`node --import build/bench/lib/mem-probe.js`), never by the
 * product: on SIGUSR2 it writes process.memoryUsage() and V8's heap spaces (bytes) to
 * <tmpdir>/natd-mem-probe-<pid>.json (memory-bench.ts probeFile), so the bench can tell the V8 heap, external memory
 * and array buffers apart from the native and file-backed parts of the RSS. Import only its types elsewhere.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';

export interface ProbeReading {
  memoryUsage: NodeJS.MemoryUsage;
  spaces: { name: string; size: number; used: number }[];
  mallocedMemory: number;
  peakMallocedMemory: number;
}

process.on('SIGUSR2', () => {
  const heap = v8.getHeapStatistics();
  const reading: ProbeReading = {
    memoryUsage: process.memoryUsage(),
    spaces: v8.getHeapSpaceStatistics().map((sp) => ({ name: sp.space_name, size: sp.space_size, used: sp.space_used_size })),
    mallocedMemory: heap.malloced_memory,
    peakMallocedMemory: heap.peak_malloced_memory,
  };
  writeFileSync(path.join(tmpdir(), `natd-mem-probe-${process.pid}.json`), JSON.stringify(reading));
});

