/**
 * A runtime list that survives a restart as a JSON list of spec texts in the state dir (the forwards in
 * `forwards.json`, the name routes in `expose.json`): natd persists the inputs, never what it derives from them.
 * Whole-file atomic writes (atomic-file.ts).
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { readJsonArray, writeFileAtomic } from './atomic-file.js';

/** The stored spec texts; a service takes one, so tests can store in memory or fail on purpose. */
export interface SpecListStore {
  /** The stored spec texts; [] when nothing was stored yet. */
  load(): Promise<string[]>;
  save(specs: readonly string[]): Promise<void>;
}

/** `file` as a SpecListStore; a file that is not a JSON list of strings is a STATE error naming it and `what`. */
export function specListFile(file: string, what: string): SpecListStore {
  return {
    async load() {
      const parsed = await readJsonArray(file);
      if (parsed && parsed.every((s) => typeof s === 'string')) return parsed as string[];
      throw new NatdError(ErrorCodes.STATE, `${file}: not a JSON list of ${what}; fix or remove it`);
    },
    save: (specs) => writeFileAtomic(file, JSON.stringify(specs, null, 2) + '\n'),
  };
}
