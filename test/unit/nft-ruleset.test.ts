import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it, vi, afterEach } from 'vitest';
import { ErrorCodes, NatdError } from '../../src/errors.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import {
  applyAndVerify,
  applyBatch,
  deleteTable,
  listTable,
  tableIntact,
  verifyTable,
} from '../../src/nft/apply.js';
import type { ExecResult, NftExec } from '../../src/nft/runner.js';
import { startHealer } from '../../src/nft/healer.js';
import {
  buildForwardChange,
  buildRuleset,
  CHAIN,
  EXAMPLE_INPUT,
  MAP,
  PRIORITY,
  type PortForward,
  type RulesetInput,
} from '../../src/nft/ruleset.js';
import type { NftBatch, NftCommand, NftRule, NftStatement } from '../../src/nft/schema.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const TEMPLATE = new URL('../../rules/natd.template.json', import.meta.url);


/** JSON with small values kept on one line, so the template reads as rules rather than 1,000 lines of braces. */
function formatTemplate(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat.length + indent.length <= 140 || typeof value !== 'object' || value === null) return flat;
  const inner = indent + '  ';
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + formatTemplate(v, inner)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatTemplate(v, inner)}`);
  return `{\n${entries.join(',\n')}\n${indent}}`;
}

const rulesOf = (batch: NftBatch, chain?: string): NftRule[] =>
  batch.nftables.flatMap((c) => ('add' in c && 'rule' in c.add ? [c.add.rule] : [])).filter((r) => !chain || r.chain === chain);

const text = (stmt: NftStatement): string => JSON.stringify(stmt);
const hasStatement = (rule: NftRule, fragment: unknown): boolean => rule.expr.some((s) => text(s) === JSON.stringify(fragment));

describe('buildRuleset golden template', () => {
  it('equals rules/natd.template.json for the example input', () => {
    const built = buildRuleset(EXAMPLE_INPUT);
    if (process.env.NATD_UPDATE_GOLDEN) writeFileSync(TEMPLATE, formatTemplate(built) + '\n');
    expect(built).toEqual(JSON.parse(readFileSync(TEMPLATE, 'utf8')));
  });
});

describe('buildRuleset content', () => {
  const batch = buildRuleset(EXAMPLE_INPUT);

  it('replaces the table atomically: add, delete, add, then everything', () => {
    const table = { family: 'inet', name: 'natd-br0' };
    expect(batch.nftables.slice(0, 3)).toEqual([{ add: { table } }, { delete: { table } }, { add: { table } }]);
    expect(batch.nftables.slice(3).every((c) => 'add' in c && !('table' in c.add))).toBe(true);
  });

  it('creates seven base chains with integer priorities and policy accept', () => {
    const chains = batch.nftables.flatMap((c) => ('add' in c && 'chain' in c.add ? [c.add.chain] : []));
    expect(chains.map((c) => [c.name, c.type, c.hook, c.prio])).toEqual([
      [CHAIN.prerouting, 'nat', 'prerouting', PRIORITY.dstnat],
      [CHAIN.output, 'nat', 'output', PRIORITY.dstnat],
      [CHAIN.postrouting, 'nat', 'postrouting', PRIORITY.srcnat],
      [CHAIN.forward, 'filter', 'forward', PRIORITY.filter],
      [CHAIN.input, 'filter', 'input', PRIORITY.filter],
      [CHAIN.rawPrerouting, 'filter', 'prerouting', PRIORITY.raw],
      [CHAIN.rawOutput, 'filter', 'output', PRIORITY.raw],
    ]);
    expect(PRIORITY.raw).toBeLessThan(-200); // notrack must run before conntrack (NF_IP_PRI_CONNTRACK)
    for (const c of chains) {
      expect(Number.isInteger(c.prio)).toBe(true);
      expect(c.policy).toBe('accept');
    }
  });

  it('masquerades tcp/udp into the port range and everything else plainly, never to 224.0.0.0/24 or broadcast', () => {
    const [hairpin, tcpUdp, other] = rulesOf(batch, CHAIN.postrouting);
    expect(hasStatement(tcpUdp!, { masquerade: { port: { range: [1024, 65535] } } })).toBe(true);
    expect(hasStatement(tcpUdp!, { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: { set: ['tcp', 'udp'] } } })).toBe(true);
    expect(hasStatement(other!, { masquerade: null })).toBe(true);
    for (const rule of [tcpUdp!, other!]) {
      const daddr = { payload: { protocol: 'ip', field: 'daddr' } };
      expect(hasStatement(rule, { match: { op: '!=', left: daddr, right: { prefix: { addr: '224.0.0.0', len: 24 } } } })).toBe(true);
      expect(hasStatement(rule, { match: { op: '!=', left: daddr, right: '255.255.255.255' } })).toBe(true);
      expect(hasStatement(rule, { match: { op: '!=', left: daddr, right: { prefix: { addr: '10.77.0.0', len: 24 } } } })).toBe(true);
      expect(hasStatement(rule, { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '10.77.0.0', len: 24 } } } })).toBe(true);
    }
    // hairpin: only DNATed guest-to-guest traffic leaving through the bridge
    expect(hasStatement(hairpin!, { match: { op: 'in', left: { ct: { key: 'status' } }, right: 'dnat' } })).toBe(true);
    expect(hasStatement(hairpin!, { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'br0' } })).toBe(true);
  });

  it('uses the configured masquerade port range, and 1024-65535 when none is given', () => {
    const custom = buildRuleset({ ...EXAMPLE_INPUT, masqueradePorts: [20000, 30000] });
    expect(hasStatement(rulesOf(custom, CHAIN.postrouting)[1]!, { masquerade: { port: { range: [20000, 30000] } } })).toBe(true);
    const { masqueradePorts: _omitted, ...rest } = EXAMPLE_INPUT;
    expect(hasStatement(rulesOf(buildRuleset(rest), CHAIN.postrouting)[1]!, { masquerade: { port: { range: [1024, 65535] } } })).toBe(true);
  });

  it('forward chain: replies, port forwards (ct status dnat, flag test), guests out, guest to guest, then rejects', () => {
    const forward = rulesOf(batch, CHAIN.forward);
    expect(forward).toHaveLength(6);
    const ctStatus = forward.flatMap((r) => r.expr).filter((s) => text(s).includes('"status"'));
    // "==" would compare the whole status bitmask and never match: a flag test must be op "in"
    expect(ctStatus.every((s) => 'match' in s && s.match.op === 'in')).toBe(true);
    expect(forward.slice(4).map((r) => r.expr)).toEqual([
      [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'br0' } }, { reject: { type: 'icmpx', expr: 'port-unreachable' } }],
      [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'br0' } }, { reject: { type: 'icmpx', expr: 'port-unreachable' } }],
    ]);
    // every forward rule is scoped to the bridge
    const onBridge = (s: NftStatement): boolean =>
      'match' in s && s.match.right === 'br0' && /"(iif|oif)name"/.test(JSON.stringify(s.match.left));
    for (const rule of forward) expect(rule.expr.some(onBridge)).toBe(true);
  });

  it('rejects IPv6 through the bridge by default and accepts it before the rejects when allowed', () => {
    expect(JSON.stringify(rulesOf(batch, CHAIN.forward))).not.toContain('ipv6');
    const forward = rulesOf(buildRuleset({ ...EXAMPLE_INPUT, allowIpv6Forward: true }), CHAIN.forward);
    expect(forward).toHaveLength(8);
    expect(forward.slice(4, 6).every((r) => JSON.stringify(r.expr).includes('"right":"ipv6"') && hasStatement(r, { accept: null }))).toBe(true);
    expect(forward.slice(6).every((r) => hasStatement(r, { reject: { type: 'icmpx', expr: 'port-unreachable' } }))).toBe(true);
  });

  it('input chain: from the bridge only replies, DHCP, DNS to the gateway, ping and ICMPv6; the rest is rejected', () => {
    const input = rulesOf(batch, CHAIN.input);
    expect(input.every((r) => hasStatement(r, { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'br0' } }))).toBe(true);
    expect(input.map((r) => JSON.stringify(r.expr).match(/"(udp|tcp)","field":"dport"\}\},"right":(\d+)/)?.slice(1))).toEqual([
      undefined,
      ['udp', '67'],
      ['udp', '53'],
      ['tcp', '53'],
      undefined,
      undefined,
      undefined,
    ]);
    expect(JSON.stringify(input[0]!.expr)).toContain('"right":["established","related"]');
    expect(hasStatement(input[2]!, { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '10.77.0.1' } })).toBe(true);
    expect(hasStatement(input[4]!, { match: { op: '==', left: { payload: { protocol: 'icmp', field: 'type' } }, right: 'echo-request' } })).toBe(true);
    expect(hasStatement(input[5]!, { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'ipv6-icmp' } })).toBe(true);
    expect(input.slice(0, -1).every((r) => hasStatement(r, { accept: null }))).toBe(true);
    expect(input.at(-1)!.expr).toEqual([
      { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'br0' } },
      { reject: { type: 'icmpx', expr: 'port-unreachable' } },
    ]);
  });

  it('input chain: host services the operator opened (--guest-to-host) are accepted before the reject', () => {
    const opened = rulesOf(buildRuleset({ ...EXAMPLE_INPUT, guestToHost: [{ protocol: 'tcp', ports: [2049, 2049] }, { protocol: 'udp', ports: [5000, 5010] }] }), CHAIN.input);
    expect(opened.at(-3)!.expr).toEqual([
      { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'br0' } },
      { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 2049 } },
      { accept: null },
    ]);
    expect(opened.at(-2)!.expr[1]).toEqual({ match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: { range: [5000, 5010] } } });
    expect(hasStatement(opened.at(-1)!, { reject: { type: 'icmpx', expr: 'port-unreachable' } })).toBe(true);
    const all = rulesOf(buildRuleset({ ...EXAMPLE_INPUT, guestToHost: 'all' }), CHAIN.input);
    expect(all.some((r) => JSON.stringify(r.expr).includes('reject'))).toBe(false);
    expect(() => buildRuleset({ ...EXAMPLE_INPUT, guestToHost: [{ protocol: 'tcp', ports: [10, 5] }] })).toThrow(/empty/);
  });

  it('DNATs through bound maps first, then any-local maps with fib, in prerouting and output', () => {
    for (const chain of [CHAIN.prerouting, CHAIN.output]) {
      const [bound, any] = rulesOf(batch, chain).map((r) => JSON.stringify(r.expr));
      expect(bound).toContain(`"@${MAP.boundAddr}"`);
      expect(bound).toContain(`"@${MAP.boundPort}"`);
      expect(any).toContain(`"@${MAP.anyAddr}"`);
      expect(any).toContain('"fib"');
    }
    expect(JSON.stringify(rulesOf(batch, CHAIN.output)[1])).toContain('"127.0.0.0"');
  });

  it('splits forwards into any-address and bound maps; empty maps carry no elements', () => {
    const maps = batch.nftables.flatMap((c) => ('add' in c && 'map' in c.add ? [c.add.map] : []));
    const byName = new Map(maps.map((m) => [m.name, m]));
    expect(byName.get(MAP.anyAddr)!.elem).toEqual([
      [{ concat: ['tcp', 2222] }, '10.77.0.50'],
      [{ concat: ['udp', 5353] }, '10.77.0.50'],
    ]);
    expect(byName.get(MAP.anyPort)!.elem).toEqual([
      [{ concat: ['tcp', 2222] }, 22],
      [{ concat: ['udp', 5353] }, 53],
    ]);
    expect(byName.get(MAP.boundAddr)!.elem).toEqual([[{ concat: ['198.51.100.1', 'tcp', 8080] }, '10.77.0.51']]);
    expect(byName.get(MAP.boundPort)!.elem).toEqual([[{ concat: ['198.51.100.1', 'tcp', 8080] }, 80]]);
    const none = buildRuleset({ ...EXAMPLE_INPUT, forwards: [] }).nftables.flatMap((c) => ('add' in c && 'map' in c.add ? [c.add.map] : []));
    expect(none).toHaveLength(4);
    expect(none.every((m) => m.elem === undefined && typeof m.map === 'string')).toBe(true);
  });

  it('refuses input nft would misread: duplicate keys, bad names, gateway outside the subnet, bad ports', () => {
    const fwd: PortForward = { protocol: 'tcp', hostPort: 80, guestAddress: ip('10.77.0.5'), guestPort: 80 };
    const bad: RulesetInput[] = [
      { ...EXAMPLE_INPUT, forwards: [fwd, { ...fwd, guestAddress: ip('10.77.0.6') }] },
      { ...EXAMPLE_INPUT, table: 'natd br0' },
      { ...EXAMPLE_INPUT, bridge: 'br0"; flush ruleset' },
      { ...EXAMPLE_INPUT, gateway: ip('10.78.0.1') },
      { ...EXAMPLE_INPUT, masqueradePorts: [2000, 1000] },
      { ...EXAMPLE_INPUT, forwards: [{ ...fwd, guestPort: 0 }] },
    ];
    for (const input of bad) {
      expect(() => buildRuleset(input)).toThrow(NatdError);
      try {
        buildRuleset(input);
      } catch (err) {
        expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
      }
    }
    // same port on a bound address and on any address are different keys
    expect(() => buildRuleset({ ...EXAMPLE_INPUT, forwards: [fwd, { ...fwd, hostAddress: ip('198.51.100.1') }] })).not.toThrow();
    // same port, different protocol: different keys
    expect(() => buildRuleset({ ...EXAMPLE_INPUT, forwards: [fwd, { ...fwd, protocol: 'udp' }] })).not.toThrow();
  });

  it('for any valid input: integer priorities, policy accept, every rule in a chain of the table', () => {
    const forwardArb = fc.record({
      protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
      hostAddress: fc.option(fc.integer({ min: 1, max: 0xfffffffe }), { nil: undefined }),
      hostPort: fc.integer({ min: 1, max: 65535 }),
      guestAddress: fc.integer({ min: 0, max: 0xffffffff }),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 8, max: 30 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uniqueArray(forwardArb, { selector: (f) => `${f.hostAddress}/${f.protocol}/${f.hostPort}`, maxLength: 8 }),
        fc.boolean(),
        (prefix, address, forwards, allowIpv6Forward) => {
          const subnet = makeSubnet(address, prefix);
          const input: RulesetInput = {
            table: 'natd-x',
            bridge: 'virbr10',
            subnet,
            gateway: subnet.network + 1,
            forwards: forwards.map(stripUndefined),
            allowIpv6Forward,
          };
          const built = buildRuleset(input);
          const chains = built.nftables.flatMap((c) => ('add' in c && 'chain' in c.add ? [c.add.chain] : []));
          const names = new Set(chains.map((c) => c.name));
          expect(chains.every((c) => Number.isInteger(c.prio) && c.policy === 'accept')).toBe(true);
          expect(rulesOf(built).every((r) => names.has(r.chain) && r.table === 'natd-x')).toBe(true);
          const elements = built.nftables.flatMap((c) => ('add' in c && 'map' in c.add ? (c.add.map.elem ?? []) : []));
          expect(elements).toHaveLength(forwards.length * 2);
        },
      ),
      { numRuns: 200 },
    );
  });
});

function stripUndefined(f: PortForward): PortForward {
  const { hostAddress, ...rest } = f;
  return hostAddress === undefined ? rest : { ...rest, hostAddress };
}

describe('buildForwardChange', () => {
  const web: PortForward = { protocol: 'tcp', hostPort: 2222, guestAddress: ip('10.77.0.50'), guestPort: 22 };
  const bound: PortForward = { protocol: 'udp', hostAddress: ip('198.51.100.1'), hostPort: 5353, guestAddress: ip('10.77.0.51'), guestPort: 53 };

  it('deletes keys first, then adds [key, value] pairs, each in both maps of its kind', () => {
    const moved = { ...web, guestAddress: ip('10.77.0.60') };
    const batch = buildForwardChange(EXAMPLE_INPUT, [moved, bound], [web]);
    const summary = batch.nftables.map((c: NftCommand) => {
      const [verb, body] = Object.entries(c)[0]! as [string, { element: { name: string; elem: unknown[]; table: string } }];
      return [verb, body.element.name, body.element.table, JSON.stringify(body.element.elem)];
    });
    expect(summary).toEqual([
      ['delete', MAP.anyAddr, 'natd-br0', '[{"concat":["tcp",2222]}]'],
      ['delete', MAP.anyPort, 'natd-br0', '[{"concat":["tcp",2222]}]'],
      ['add', MAP.anyAddr, 'natd-br0', '[[{"concat":["tcp",2222]},"10.77.0.60"]]'],
      ['add', MAP.anyPort, 'natd-br0', '[[{"concat":["tcp",2222]},22]]'],
      ['add', MAP.boundAddr, 'natd-br0', '[[{"concat":["198.51.100.1","udp",5353]},"10.77.0.51"]]'],
      ['add', MAP.boundPort, 'natd-br0', '[[{"concat":["198.51.100.1","udp",5353]},53]]'],
    ]);
    expect(JSON.stringify(batch)).not.toContain('"table":{');
  });

  it('gives an empty batch for no change and refuses duplicate adds', () => {
    expect(buildForwardChange(EXAMPLE_INPUT, [], []).nftables).toEqual([]);
    expect(() => buildForwardChange(EXAMPLE_INPUT, [web, { ...web, guestPort: 23 }], [])).toThrow(/two forwards use tcp \. 2222/);
  });
});

// ---- apply.ts with an injected exec (no nft needed)

/** The listing nft would print for a batch: what `nft -j list table` returns after applying it. */
function listingFor(batch: NftBatch): unknown {
  let handle = 1;
  const out: unknown[] = [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }];
  for (const c of batch.nftables) {
    if (!('add' in c)) continue;
    const [kind, body] = Object.entries(c.add)[0]!;
    if (kind === 'table' && out.length > 1) continue;
    out.push({ [kind]: { ...body, handle: handle++ } });
  }
  return { nftables: out };
}

function fakeNft(respond: (args: readonly string[], batchText?: string) => ExecResult): { exec: NftExec; calls: string[][] } {
  const calls: string[][] = [];
  const exec: NftExec = async (nft, args) => {
    calls.push([nft, ...args]);
    const file = args.indexOf('-f') >= 0 ? args[args.indexOf('-f') + 1] : undefined;
    return respond(args, file ? readFileSync(file, 'utf8') : undefined);
  };
  return { exec, calls };
}

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const missing: ExecResult = { code: 1, stdout: '', stderr: 'Error: No such file or directory\nlist table inet natd-br0\n' };

describe('applyBatch', () => {
  const batch = buildRuleset(EXAMPLE_INPUT);

  it('writes the batch to a private temp file, runs nft -j -f on it and removes the file', async () => {
    let seen: string | undefined;
    const { exec, calls } = fakeNft((_args, body) => {
      seen = body;
      return ok();
    });
    await applyBatch(batch, { exec, nft: '/usr/sbin/nft' });
    expect(calls).toHaveLength(1);
    const [nft, j, f, file] = calls[0]!;
    expect([nft, j, f]).toEqual(['/usr/sbin/nft', '-j', '-f']);
    expect(JSON.parse(seen!)).toEqual(batch);
    expect(() => readFileSync(file!)).toThrow(/ENOENT/);
  });

  it('adds -c for a check', async () => {
    const { exec, calls } = fakeNft(() => ok());
    await applyBatch(batch, { exec, check: true });
    expect(calls[0]!.slice(0, 4)).toEqual(['nft', '-c', '-j', '-f']);
  });

  it("fails with NFT_APPLY carrying nft's stderr", async () => {
    const { exec } = fakeNft(() => ({ code: 1, stdout: '', stderr: 'internal:0:0-0: Error: Could not process rule: File exists\n' }));
    await expect(applyBatch(batch, { exec })).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY, message: expect.stringContaining('File exists') });
  });

  it('refuses an empty batch without running nft', async () => {
    const { exec, calls } = fakeNft(() => ok());
    await expect(applyBatch({ nftables: [] }, { exec })).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY });
    expect(calls).toHaveLength(0);
  });
});

describe('listTable / deleteTable', () => {
  it('lists as parsed JSON, and undefined for a missing table', async () => {
    const listing = listingFor(buildRuleset(EXAMPLE_INPUT));
    const present = fakeNft(() => ok(JSON.stringify(listing)));
    expect(await listTable('inet', 'natd-br0', { exec: present.exec })).toEqual(listing);
    expect(present.calls[0]).toEqual(['nft', '-j', 'list', 'table', 'inet', 'natd-br0']);
    expect(await listTable('inet', 'natd-br0', { exec: fakeNft(() => missing).exec })).toBeUndefined();
    await expect(listTable('inet', 'natd-br0', { exec: fakeNft(() => ({ code: 1, stdout: '', stderr: 'Operation not permitted' })).exec })).rejects.toMatchObject({
      code: ErrorCodes.NFT_APPLY,
    });
  });

  it('deleteTable ignores a missing table and reports other failures', async () => {
    const gone = fakeNft(() => missing);
    await deleteTable('inet', 'natd-br0', { exec: gone.exec });
    expect(gone.calls[0]).toEqual(['nft', 'delete', 'table', 'inet', 'natd-br0']);
    await expect(deleteTable('inet', 'natd-br0', { exec: fakeNft(() => ({ code: 1, stdout: '', stderr: 'Operation not permitted' })).exec })).rejects.toMatchObject({
      code: ErrorCodes.NFT_APPLY,
    });
  });
});

describe('verifyTable', () => {
  const good = listingFor(buildRuleset(EXAMPLE_INPUT)) as { nftables: Record<string, Record<string, unknown>>[] };
  const edited = (change: (items: Record<string, Record<string, unknown>>[]) => void): unknown => {
    const copy = structuredClone(good);
    change(copy.nftables);
    return copy;
  };

  it('finds nothing wrong with the table as built', () => {
    expect(verifyTable(EXAMPLE_INPUT, good)).toEqual([]);
  });

  it('names each kind of damage', () => {
    expect(verifyTable(EXAMPLE_INPUT, undefined)).toEqual(['table inet natd-br0 is missing']);
    const noForward = edited((items) => items.splice(items.findIndex((i) => i.chain?.name === 'forward'), 1));
    expect(verifyTable(EXAMPLE_INPUT, noForward)).toContain('chain forward is missing');
    const stringPrio = edited((items) => {
      const chain = items.find((i) => i.chain?.name === 'prerouting')!.chain!;
      chain.prio = 'dstnat';
      delete chain.hook;
    });
    expect(verifyTable(EXAMPLE_INPUT, stringPrio)).toEqual([
      'chain prerouting: hook is undefined, expected "prerouting"',
      'chain prerouting: prio is "dstnat", expected -100',
    ]);
    const flushed = edited((items) => items.splice(0, items.length, ...items.filter((i) => !i.rule)));
    expect(verifyTable(EXAMPLE_INPUT, flushed)).toContain('chain forward has 0 rules, expected 6');
    const policyDrop = edited((items) => (items.find((i) => i.chain?.name === 'input')!.chain!.policy = 'drop'));
    expect(verifyTable(EXAMPLE_INPUT, policyDrop)).toEqual(['chain input: policy is "drop", expected "accept"']);
    const staleElement = edited((items) => (items.find((i) => i.map?.name === MAP.anyPort)!.map!.elem as unknown[]).push([{ concat: ['tcp', 80] }, 80]));
    expect(verifyTable(EXAMPLE_INPUT, staleElement)).toEqual([
      'map fwd_any_port holds {tcp . 2222 : 22, tcp . 80 : 80, udp . 5353 : 53}, expected {tcp . 2222 : 22, udp . 5353 : 53}',
    ]);
  });

  it('applyAndVerify and tableIntact read the table back', async () => {
    const listed = fakeNft((args) => (args[1] === 'list' ? ok(JSON.stringify(good)) : ok()));
    await applyAndVerify(EXAMPLE_INPUT, { exec: listed.exec });
    expect(listed.calls.map((c) => c[2])).toEqual(['-f', 'list']);
    expect(await tableIntact(EXAMPLE_INPUT, { exec: listed.exec })).toBe(true);

    const broken = fakeNft((args) => (args[1] === 'list' ? ok(JSON.stringify(edited((items) => items.pop()))) : ok()));
    await expect(applyAndVerify(EXAMPLE_INPUT, { exec: broken.exec })).rejects.toMatchObject({
      code: ErrorCodes.NFT_VERIFY,
      message: expect.stringContaining('chain raw_output has 0 rules, expected 1'),
    });
    expect(await tableIntact(EXAMPLE_INPUT, { exec: fakeNft(() => missing).exec })).toBe(false);
  });
});

describe('startHealer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('re-applies when the check fails, logs it, and keeps checking', async () => {
    vi.useFakeTimers();
    const states = [true, false, true, false];
    const check = vi.fn(async () => states.shift() ?? true);
    const reapply = vi.fn(async () => {});
    const logger = recordingLogger();
    const healer = startHealer({ check, reapply, intervalMs: 100, logger });
    await vi.advanceTimersByTimeAsync(99);
    expect(check).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(500);
    healer.stop();
    expect(check).toHaveBeenCalledTimes(5);
    expect(reapply).toHaveBeenCalledTimes(2);
    expect(healer.heals()).toBe(2);
    expect(logger.messages('warn')).toHaveLength(2);
  });

  it('survives a failing check or re-apply and stops for good on stop()', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const check = vi.fn(async () => {
      calls++;
      if (calls === 1) throw new Error('nft went away');
      return false;
    });
    const reapply = vi.fn(async () => {
      throw new Error('apply failed');
    });
    const logger = recordingLogger();
    const healer = startHealer({ check, reapply, intervalMs: 50, logger });
    await vi.advanceTimersByTimeAsync(120);
    expect(logger.messages('error')).toHaveLength(2);
    expect(healer.heals()).toBe(0);
    healer.stop();
    const before = check.mock.calls.length;
    await vi.advanceTimersByTimeAsync(1000);
    expect(check.mock.calls.length).toBe(before);
  });

  // issue 17: with a watch (nft monitor) checks follow change events and the periodic check slows down
  function fakeWatch() {
    const w = { events: undefined as undefined | { changed(): void; lost(): void }, stopped: false };
    const watch = (events: { changed(): void; lost(): void }) => {
      w.events = events;
      return { stop: () => void (w.stopped = true) };
    };
    return { w, watch };
  }

  it('with a watch: checks once at start, then only after change events (settled) and every slowIntervalMs', async () => {
    vi.useFakeTimers();
    let intact = true;
    const check = vi.fn(async () => intact);
    const reapply = vi.fn(async () => {
      intact = true;
    });
    const { w, watch } = fakeWatch();
    const healer = startHealer({ check, reapply, intervalMs: 100, slowIntervalMs: 10_000, settleMs: 20, watch, logger: recordingLogger() });
    await vi.advanceTimersByTimeAsync(100);
    expect(check).toHaveBeenCalledTimes(1); // the start check
    await vi.advanceTimersByTimeAsync(5000);
    expect(check).toHaveBeenCalledTimes(1); // no polling at intervalMs
    intact = false;
    for (let i = 0; i < 5; i++) w.events!.changed(); // a burst of events: one check
    await vi.advanceTimersByTimeAsync(19);
    expect(check).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(check).toHaveBeenCalledTimes(2);
    expect(reapply).toHaveBeenCalledTimes(1);
    expect(healer.heals()).toBe(1);
    await vi.advanceTimersByTimeAsync(9999);
    expect(check).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(check).toHaveBeenCalledTimes(3); // the slow backstop
    healer.stop();
    expect(w.stopped).toBe(true);
  });

  it('with a watch: an event during a check gets a check after it; a lost watch falls back to intervalMs', async () => {
    vi.useFakeTimers();
    let release: (() => void) | undefined;
    const check = vi.fn(() => new Promise<boolean>((resolve) => (release = () => resolve(true))));
    const { w, watch } = fakeWatch();
    const logger = recordingLogger();
    const healer = startHealer({ check, reapply: async () => {}, intervalMs: 100, slowIntervalMs: 10_000, settleMs: 20, watch, logger });
    await vi.advanceTimersByTimeAsync(100);
    expect(check).toHaveBeenCalledTimes(1);
    w.events!.changed(); // while the check runs
    release!();
    await vi.advanceTimersByTimeAsync(20);
    expect(check).toHaveBeenCalledTimes(2);
    release!();
    w.events!.lost();
    expect(logger.messages('warn')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(check).toHaveBeenCalledTimes(3);
    release!();
    await vi.advanceTimersByTimeAsync(100);
    expect(check).toHaveBeenCalledTimes(4);
    release!();
    healer.stop();
  });
});
