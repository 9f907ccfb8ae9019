/**
 * Where the forwards added at runtime survive a restart: `forwards.json` in the state dir, a JSON list of spec
 * texts. natd persists inputs, not rules (the table is always derived from them). Whole-file atomic writes.
 */
import path from 'node:path';
import { STATE_FILES } from '../defaults.js';
import { specListFile, type SpecListStore } from '../state/spec-list-file.js';

export const RUNTIME_FORWARDS_FILE = STATE_FILES.runtimeForwards;

/** The runtime forwards as stored; the firewall takes one, so tests can store in memory or fail on purpose. */
export type ForwardsStore = SpecListStore;

export function forwardsFile(stateDir: string): ForwardsStore {
  return specListFile(path.join(stateDir, RUNTIME_FORWARDS_FILE), 'forward specs');
}
