/**
 * Where the forwards added at runtime survive a restart: `forwards.json` in the state dir, a JSON list of spec
 * texts. natd persists inputs, not rules (the table is always derived from them). Whole-file atomic writes.
 */
import path from 'node:path';
import { STATE_FILES } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { readJsonArray, writeFileAtomic } from '../state/atomic-file.js';

export const RUNTIME_FORWARDS_FILE = STATE_FILES.runtimeForwards;

/** The runtime forwards as stored; the firewall takes one, so tests can store in memory or fail on purpose. */
export interface ForwardsStore {
  /** The stored spec texts; [] when nothing was stored yet. */
  load(): Promise<string[]>;
  save(specs: readonly string[]): Promise<void>;
}

export function forwardsFile(stateDir: string): ForwardsStore {
  const file = path.join(stateDir, RUNTIME_FORWARDS_FILE);
  return {
    async load() {
      const parsed = await readJsonArray(file);
      if (parsed && parsed.every((s) => typeof s === 'string')) return parsed as string[];
      throw new NatdError(ErrorCodes.STATE, `${file}: not a JSON list of forward specs; fix or remove it`);
    },
    save: (specs) => writeFileAtomic(file, JSON.stringify(specs, null, 2) + '\n'),
  };
}
