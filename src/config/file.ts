/** The config file and how validation problems are written: each names its field and quotes the value. */
import { readFileSync } from 'node:fs';
import type { z } from 'zod/v3'; // zod's v3 API, for memory (issue 7): config/values.ts says why
import type { RawSettings } from '../config.js';
import { configError } from './served-subnet.js';

/** Reads a JSON config file; errors name the file. */
export function readConfigFile(file: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw configError([`config: cannot read ${file}: ${(err as Error).message}`]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as RawSettings;
  } catch (err) {
    throw configError([`config: ${file} is not valid JSON: ${(err as Error).message}`]);
  }
}

/** Flags over the file: a flag that was not given leaves the file's value. */
export function mergeSettings(flags: RawSettings, fileSettings: RawSettings): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...fileSettings };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) merged[k] = v;
  return merged;
}

function describeValue(raw: Record<string, unknown>, path: PropertyKey[]): string {
  let v: unknown = raw;
  for (const key of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  if (v === undefined) return '';
  const text = JSON.stringify(v);
  return ` (got ${text && text.length > 60 ? text.slice(0, 57) + '...' : text})`;
}

/** zod's issues as `field: problem (got value)` lines. */
export function schemaProblems(issues: readonly z.ZodIssue[], merged: Record<string, unknown>): string[] {
  return issues.map((i) => {
    const field = i.path.length ? i.path.join('.') : 'config';
    const message = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
    return `${field}: ${message}${describeValue(merged, i.path)}`;
  });
}
