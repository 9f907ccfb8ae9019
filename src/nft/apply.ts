/**
 * The nft operations natd needs: apply a batch, read natd's table back and check it, delete it. Each runs nft once
 * through runner.ts (the only place that starts nft), under its deadline.
 *
 * A batch goes through a temp file (`nft -j -f <file>`): `nft -j -f -` fails from Node because its stdin is a
 * socketpair ("Could not open /dev/stdin"). Reading back matters because nft 1.0.6 accepts some wrong JSON silently
 * (a string priority makes a hook-less chain), so after a full apply natd compares the live table with the input.
 * Every function takes NftOptions (exec, binary, deadline), so unit tests need no nft.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, NatdError } from '../errors.js';
import { buildChains, buildMaps, buildRules, buildSets, buildRuleset, TABLE_FAMILY, type RulesetInput } from './ruleset.js';
import { runNft, type NftOptions } from './runner.js';
import type { NftBatch, NftFamily } from './schema.js';

function isMissing(stderr: string): boolean {
  return stderr.includes('No such file or directory');
}

/**
 * Applies a batch atomically (`nft -j -f <file>`, or `nft -c -j -f` when `check`): on error nothing changes and the
 * NatdError(NFT_APPLY) carries nft's message. An empty batch is refused: nft "succeeds" on it, which hides bugs.
 * A batch killed at the deadline may or may not have been committed; the caller's read-back (or the healer) decides.
 */
export async function applyBatch(batch: NftBatch, opts: NftOptions & { check?: boolean } = {}): Promise<void> {
  if (batch.nftables.length === 0) throw new NatdError(ErrorCodes.NFT_APPLY, 'refusing to apply an empty nft batch');
  const dir = await mkdtemp(join(tmpdir(), 'natd-nft-'));
  try {
    const file = join(dir, 'batch.json');
    await writeFile(file, JSON.stringify(batch), { mode: 0o600 });
    const args = opts.check ? ['-c', '-j', '-f', file] : ['-j', '-f', file];
    const result = await runNft(args, opts);
    if (result.code !== 0) {
      const reason = result.stderr.trim() || `exit status ${result.code}`;
      throw new NatdError(ErrorCodes.NFT_APPLY, `nft ${opts.check ? 'check' : 'apply'} failed: ${reason}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `nft -j list table FAMILY TABLE` parsed; undefined when the table does not exist. */
export async function listTable(family: NftFamily, table: string, opts: NftOptions = {}): Promise<unknown> {
  const result = await runNft(['-j', 'list', 'table', family, table], opts);
  if (result.code !== 0) {
    if (isMissing(result.stderr)) return undefined;
    throw new NatdError(ErrorCodes.NFT_APPLY, `nft list table ${family} ${table} failed: ${result.stderr.trim()}`);
  }
  try {
    return JSON.parse(result.stdout) as unknown;
  } catch (err) {
    throw new NatdError(ErrorCodes.NFT_APPLY, `nft list table ${family} ${table} printed invalid JSON`, { cause: err });
  }
}

/** Deletes a table; a table that is already gone is not an error. */
export async function deleteTable(family: NftFamily, table: string, opts: NftOptions = {}): Promise<void> {
  const result = await runNft(['delete', 'table', family, table], opts);
  if (result.code !== 0 && !isMissing(result.stderr)) {
    throw new NatdError(ErrorCodes.NFT_APPLY, `nft delete table ${family} ${table} failed: ${result.stderr.trim()}`);
  }
}

// ---- verification: the live table against the input

type Listed = Record<string, Record<string, unknown>>;

function listedObjects(listed: unknown): Listed[] {
  if (typeof listed !== 'object' || listed === null) return [];
  const items = (listed as { nftables?: unknown }).nftables;
  return Array.isArray(items) ? (items.filter((i) => typeof i === 'object' && i !== null) as Listed[]) : [];
}

function keyText(key: unknown): string {
  if (typeof key === 'object' && key !== null && Array.isArray((key as { concat?: unknown }).concat)) {
    return ((key as { concat: unknown[] }).concat).map(String).join(' . ');
  }
  return String(key);
}

/** Map contents as sorted "key : value" lines, comparable between the builder's maps and a listing. */
function elementLines(elem: unknown): string[] {
  if (!Array.isArray(elem)) return [];
  return elem
    .map((e) => (Array.isArray(e) && e.length === 2 ? `${keyText(e[0])} : ${String(e[1])}` : `? ${JSON.stringify(e)}`))
    .sort();
}

/**
 * What is wrong with a listed table (the parsed `nft -j list table`) compared with the table built from `input`:
 * missing table or chain, wrong type/hook/priority/policy, wrong number of rules, map contents differing.
 * An empty list means the table is as natd built it.
 */
export function verifyTable(input: RulesetInput, listed: unknown): string[] {
  const objects = listedObjects(listed);
  if (!objects.some((o) => o.table?.name === input.table)) return [`table ${TABLE_FAMILY} ${input.table} is missing`];
  const problems: string[] = [];
  const chains = new Map(objects.filter((o) => o.chain).map((o) => [o.chain!.name, o.chain!]));
  const maps = new Map(objects.filter((o) => o.map).map((o) => [o.map!.name, o.map!]));
  const ruleCounts = new Map<unknown, number>();
  for (const o of objects) if (o.rule) ruleCounts.set(o.rule.chain, (ruleCounts.get(o.rule.chain) ?? 0) + 1);

  const rules = buildRules(input);
  for (const want of buildChains(input)) {
    const got = chains.get(want.name);
    if (!got) {
      problems.push(`chain ${want.name} is missing`);
      continue;
    }
    for (const field of ['type', 'hook', 'prio', 'policy'] as const) {
      if (got[field] !== want[field]) {
        problems.push(`chain ${want.name}: ${field} is ${JSON.stringify(got[field])}, expected ${JSON.stringify(want[field])}`);
      }
    }
    const wantRules = rules[want.name as keyof typeof rules].length;
    const gotRules = ruleCounts.get(want.name) ?? 0;
    if (gotRules !== wantRules) problems.push(`chain ${want.name} has ${gotRules} rules, expected ${wantRules}`);
  }
  for (const want of buildMaps(input)) {
    const got = maps.get(want.name);
    if (!got) {
      problems.push(`map ${want.name} is missing`);
      continue;
    }
    const wantLines = elementLines(want.elem).join(', ');
    const gotLines = elementLines(got.elem).join(', ');
    if (gotLines !== wantLines) problems.push(`map ${want.name} holds {${gotLines}}, expected {${wantLines}}`);
  }
  // issue 17: the routed ports set
  const sets = new Map(objects.filter((o) => o.set).map((o) => [o.set!.name, o.set!]));
  for (const want of buildSets(input)) {
    const got = sets.get(want.name);
    if (!got) {
      problems.push(`set ${want.name} is missing`);
      continue;
    }
    const text = (elem: unknown) => (Array.isArray(elem) ? elem.map((e) => String(e)).sort().join(', ') : '');
    if (text(got.elem) !== text(want.elem)) problems.push(`set ${want.name} holds {${text(got.elem)}}, expected {${text(want.elem)}}`);
  }
  return problems;
}

/** True when natd's table exists and matches `input` (the healer's cheap check). */
export async function tableIntact(input: RulesetInput, opts: NftOptions = {}): Promise<boolean> {
  const listed = await listTable(TABLE_FAMILY, input.table, opts);
  return listed !== undefined && verifyTable(input, listed).length === 0;
}

/** Full apply, then read back: NatdError(NFT_APPLY) if nft refuses, NatdError(NFT_VERIFY) if the result differs. */
export async function applyAndVerify(input: RulesetInput, opts: NftOptions = {}): Promise<void> {
  await applyBatch(buildRuleset(input), opts);
  const problems = verifyTable(input, await listTable(TABLE_FAMILY, input.table, opts));
  if (problems.length > 0) {
    throw new NatdError(ErrorCodes.NFT_VERIFY, `nft table ${input.table} differs after apply: ${problems.join('; ')}`);
  }
}
