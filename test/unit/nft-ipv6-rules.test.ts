/** issue 14: the IPv6 rules natd adds to its table when it serves IPv6 (NAT66, forwarding, RFC 4890 errors, input). */
import { describe, expect, it } from 'vitest';
import { buildRuleset, CHAIN, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';
import type { NftBatch, NftRule } from '../../src/nft/schema.js';

const v6 = { network: 'fd00:10:10::', prefix: 64, gateway: 'fd00:10:10::1' };
const rulesOf = (batch: NftBatch, chain: string): NftRule[] =>
  batch.nftables.flatMap((c) => ('add' in c && 'rule' in c.add && c.add.rule.chain === chain ? [c.add.rule] : []));
const comments = (batch: NftBatch, chain: string) => rulesOf(batch, chain).map((r) => r.comment);

describe('IPv6 rules', () => {
  const without = buildRuleset(EXAMPLE_INPUT);
  const withV6 = buildRuleset({ ...EXAMPLE_INPUT, ipv6: v6 });

  it('are absent without IPv6 (the golden template stays as it is)', () => {
    expect(JSON.stringify(without)).not.toMatch(/ip6|NAT66/);
  });

  it('masquerade the prefix out of every interface but the bridge, never to itself or link-local', () => {
    const nat66 = rulesOf(withV6, CHAIN.postrouting).at(-1)!;
    expect(nat66.comment).toBe('natd: guests to outside over IPv6 (NAT66)');
    expect(nat66.expr).toEqual([
      { match: { op: '!=', left: { meta: { key: 'oifname' } }, right: 'br0' } },
      { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: { prefix: { addr: 'fd00:10:10::', len: 64 } } } },
      { match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'fd00:10:10::', len: 64 } } } },
      { match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'fe80::', len: 10 } } } },
      { masquerade: null },
    ]);
  });

  it('forward guests out, replies and the RFC 4890 errors back, before the final rejects', () => {
    expect(comments(withV6, CHAIN.forward).slice(-5)).toEqual([
      'natd: IPv6 replies to guests',
      'natd: ICMPv6 errors to guests (RFC 4890)',
      'natd: guests to anywhere over IPv6',
      'natd: reject the rest from the bridge',
      'natd: reject the rest to the bridge',
    ]);
    const errors = rulesOf(withV6, CHAIN.forward).find((r) => r.comment?.includes('RFC 4890'))!;
    expect(JSON.stringify(errors.expr)).toContain('"set":["destination-unreachable","packet-too-big","time-exceeded","parameter-problem"]');
  });

  it('let guests reach DNS on the IPv6 gateway and DHCPv6, before the input reject', () => {
    const input = comments(withV6, CHAIN.input);
    const at = (c: string) => input.indexOf(c);
    expect(at('natd: DNS (udp) over IPv6 from guests')).toBeGreaterThan(at('natd: ICMPv6 from guests'));
    expect(at('natd: DHCPv6 from guests')).toBeLessThan(at('natd: guests reach nothing else on the host'));
    expect(JSON.stringify(rulesOf(withV6, CHAIN.input))).toContain('"right":"fd00:10:10::1"');
  });
});
