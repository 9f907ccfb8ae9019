/**
 * natd's nftables layer against the real nft 1.0.6, inside the test bench's namespaces (never the main one):
 * apply + read back, idempotent re-apply, atomic failure, runtime forward changes as element batches, self-healing,
 * delete, and an unrelated table left alone throughout.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { parseCidr } from '../../src/net/ipv4.js';
import {
  applyAndVerify,
  applyBatch,
  deleteTable,
  listTable,
  tableIntact,
  verifyTable,
} from '../../src/nft/apply.js';
import type { NftOptions } from '../../src/nft/runner.js';
import { startHealer } from '../../src/nft/healer.js';
import { buildForwardChange, buildRuleset, EXAMPLE_INPUT, TABLE_FAMILY, type PortForward, type RulesetInput } from '../../src/nft/ruleset.js';
import { BRIDGE, GATEWAY, isRoot, SUBNET, Topology } from '../support/netns.js';
import { ip } from '../support/addresses.js';
import { waitFor } from '../support/wait.js';
import { tableNameFor } from '../../src/defaults.js';

const NFT = '/usr/sbin/nft';
const RULES_NFT = new URL('../../rules/natd.nft', import.meta.url);
const BYSTANDER = `table inet bystander {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 9 accept
	}
}
`;


describe.skipIf(!isRoot())('nft apply in a namespace', () => {
  let topo: Topology;
  let host: NftOptions;
  let input: RulesetInput;
  let scratch: string;
  /** `nft list table inet bystander` right after creating it */
  let bystanderBefore: string;

  const nft = (ns: string, ...args: string[]): Promise<string> => topo.runOk(ns, [NFT, ...args]);
  const listText = (ns = topo.host, flags: string[] = []): Promise<string> => nft(ns, ...flags, 'list', 'table', TABLE_FAMILY, input.table);
  const bystanderText = (): Promise<string> => nft(topo.host, 'list', 'table', 'inet', 'bystander');

  beforeAll(async () => {
    topo = Topology.create({ vms: 0 });
    host = { nft: NFT, exec: (bin, args) => topo.run(topo.host, [bin, ...args]) };
    const { address, subnet } = parseCidr(`${GATEWAY}/${SUBNET.split('/')[1]}`)!;
    input = { table: tableNameFor(BRIDGE), bridge: BRIDGE, subnet, gateway: address, forwards: [{ protocol: 'tcp', hostPort: 2222, guestAddress: ip('10.77.0.50'), guestPort: 22 }] };
    scratch = await mkdtemp(join(tmpdir(), 'natd-nft-test-'));
    await writeFile(join(scratch, 'bystander.nft'), BYSTANDER);
    await nft(topo.host, '-f', join(scratch, 'bystander.nft'));
    bystanderBefore = await bystanderText();
    expect(bystanderBefore).toContain('tcp dport 9 accept');
  });

  afterAll(async () => {
    await topo?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  afterEach(async () => {
    // the unrelated table is byte-for-byte what we created, whatever natd did
    expect(await bystanderText()).toBe(bystanderBefore);
  });

  it('applies, reads back and verifies the table', async () => {
    await applyAndVerify(input, host);
    const listed = await listTable(TABLE_FAMILY, input.table, host);
    expect(verifyTable(input, listed)).toEqual([]);
    const text = await listText();
    expect(text).toContain('type nat hook prerouting priority dstnat; policy accept;');
    expect(text).toContain('elements = { tcp . 2222 : 10.77.0.50 }');
    expect(text).toContain('ct status dnat accept');
  });

  it('re-applying gives the identical table (old elements do not survive a full apply)', async () => {
    await applyAndVerify(input, host);
    const first = await listText();
    await applyBatch(buildForwardChange(input, [{ protocol: 'udp', hostPort: 9999, guestAddress: ip('10.77.0.9'), guestPort: 9 }], []), host);
    await applyAndVerify(input, host);
    expect(await listText()).toBe(first);
    expect(await tableIntact(input, host)).toBe(true);
  });

  it('verify catches what nft accepts silently: a string priority makes a chain without a hook', async () => {
    const batch = buildRuleset(input);
    for (const c of batch.nftables) if ('add' in c && 'chain' in c.add && c.add.chain.name === 'prerouting') (c.add.chain as { prio: unknown }).prio = 'dstnat';
    await applyBatch(batch, host); // nft 1.0.6 exits 0
    expect(verifyTable(input, await listTable(TABLE_FAMILY, input.table, host))).toEqual(
      expect.arrayContaining(['chain prerouting: hook is undefined, expected "prerouting"']),
    );
    expect(await tableIntact(input, host)).toBe(false);
  });

  it('the JSON template and rules/natd.nft load to the same table', async () => {
    await applyBatch(buildRuleset(EXAMPLE_INPUT), { nft: NFT, exec: (bin, args) => topo.run(topo.wan, [bin, ...args]) });
    const fromJson = await nft(topo.wan, 'list', 'table', 'inet', EXAMPLE_INPUT.table);
    await nft(topo.wan, 'delete', 'table', 'inet', EXAMPLE_INPUT.table);
    await nft(topo.wan, '-f', fileURLToPath(RULES_NFT));
    const fromText = await nft(topo.wan, 'list', 'table', 'inet', EXAMPLE_INPUT.table);
    expect(fromText).toBe(fromJson);
    await nft(topo.wan, 'delete', 'table', 'inet', EXAMPLE_INPUT.table);
  });

  it('a batch with one invalid element fails as a whole and leaves the table byte-identical', async () => {
    await applyAndVerify(input, host);
    const before = await listText(topo.host, ['-a']);
    const fresh: PortForward = { protocol: 'tcp', hostPort: 8080, guestAddress: ip('10.77.0.51'), guestPort: 80 };
    const clash: PortForward = { ...input.forwards[0]!, guestAddress: ip('10.77.0.99') }; // key already present
    await expect(applyBatch(buildForwardChange(input, [fresh, clash], []), host)).rejects.toMatchObject({
      code: ErrorCodes.NFT_APPLY,
      message: expect.stringContaining('File exists'),
    });
    expect(await listText(topo.host, ['-a'])).toBe(before);
  });

  it('adds, changes and removes forwards with element batches, without rebuilding the table', async () => {
    await applyAndVerify(input, host);
    const handles = (await listText(topo.host, ['-a'])).match(/chain \w+ \{ # handle \d+/g);
    const web = input.forwards[0]!;
    const bound: PortForward = { protocol: 'udp', hostAddress: ip('198.51.100.1'), hostPort: 5353, guestAddress: ip('10.77.0.51'), guestPort: 53 };
    const moved: PortForward = { ...web, guestAddress: ip('10.77.0.60'), guestPort: 2200 };

    await applyBatch(buildForwardChange(input, [moved, bound], [web]), host);
    const changed = { ...input, forwards: [moved, bound] };
    expect(verifyTable(changed, await listTable(TABLE_FAMILY, input.table, host))).toEqual([]);
    const text = await listText();
    expect(text).toContain('elements = { tcp . 2222 : 10.77.0.60 }');
    expect(text).toContain('elements = { 198.51.100.1 . udp . 5353 : 53 }');

    await applyBatch(buildForwardChange(changed, [], [moved, bound]), host);
    expect(verifyTable({ ...input, forwards: [] }, await listTable(TABLE_FAMILY, input.table, host))).toEqual([]);
    expect((await listText(topo.host, ['-a'])).match(/chain \w+ \{ # handle \d+/g)).toEqual(handles);
  });

  it('heals a flushed table (rules gone, chains left) in the host namespace', async () => {
    await applyAndVerify(input, host);
    const good = await listText();
    const healer = startHealer({ check: () => tableIntact(input, host), reapply: () => applyAndVerify(input, host), intervalMs: 150, logger: silentLogger });
    try {
      await nft(topo.host, 'flush', 'table', 'inet', input.table);
      await waitFor('a heal', () => healer.heals() >= 1, 15_000); // a check and a re-apply run nft several times: seconds on a loaded machine
      expect(await listText()).toBe(good);
    } finally {
      healer.stop();
    }
  });

  it('heals `nft flush ruleset` (in the wan namespace, so the bystander table is not flushed)', async () => {
    const wan: NftOptions = { nft: NFT, exec: (bin, args) => topo.run(topo.wan, [bin, ...args]) };
    await applyAndVerify(input, wan);
    const good = await listText(topo.wan);
    const healer = startHealer({ check: () => tableIntact(input, wan), reapply: () => applyAndVerify(input, wan), intervalMs: 150, logger: silentLogger });
    try {
      await nft(topo.wan, 'flush', 'ruleset');
      await waitFor('a heal', () => healer.heals() >= 1, 15_000); // a check and a re-apply run nft several times: seconds on a loaded machine
      expect(await listText(topo.wan)).toBe(good);
    } finally {
      healer.stop();
      await deleteTable(TABLE_FAMILY, input.table, wan);
    }
  });

  it('deleteTable leaves no natd table and tolerates a table already gone', async () => {
    await applyAndVerify(input, host);
    await deleteTable(TABLE_FAMILY, input.table, host);
    expect(await nft(topo.host, 'list', 'tables')).toBe('table inet bystander\n');
    await deleteTable(TABLE_FAMILY, input.table, host);
    expect(await listTable(TABLE_FAMILY, input.table, host)).toBeUndefined();
  });
});
