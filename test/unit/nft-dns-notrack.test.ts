/** UDP DNS between the guests and the gateway skips conntrack: the raw chains, and the input chain still accepting it. */
import { describe, expect, it } from 'vitest';
import { buildRuleset, CHAIN, EXAMPLE_INPUT, type RulesetInput } from '../../src/nft/ruleset.js';
import type { NftBatch, NftRule } from '../../src/nft/schema.js';

const v6 = { network: 'fd00:10:10::', prefix: 64, gateway: 'fd00:10:10::1' };
const rulesOf = (batch: NftBatch, chain: string): NftRule[] =>
  batch.nftables.flatMap((c) => ('add' in c && 'rule' in c.add && c.add.rule.chain === chain ? [c.add.rule] : []));
const match = (left: unknown, right: unknown) => ({ match: { op: '==', left, right } });
const meta = (key: string) => ({ meta: { key } });
const payload = (protocol: string, field: string) => ({ payload: { protocol, field } });

describe('DNS notrack', () => {
  it('untracks UDP queries to the gateway from the bridge and the answers back, IPv4 only without IPv6', () => {
    const batch = buildRuleset(EXAMPLE_INPUT);
    expect(rulesOf(batch, CHAIN.rawPrerouting).map((r) => r.expr)).toEqual([
      [match(meta('iifname'), 'br0'), match(payload('ip', 'daddr'), '10.77.0.1'), match(payload('udp', 'dport'), 53), { notrack: null }],
    ]);
    expect(rulesOf(batch, CHAIN.rawOutput).map((r) => r.expr)).toEqual([
      [match(meta('oifname'), 'br0'), match(payload('ip', 'saddr'), '10.77.0.1'), match(payload('udp', 'sport'), 53), { notrack: null }],
    ]);
  });

  it('adds the same for the IPv6 gateway when natd serves IPv6', () => {
    const batch = buildRuleset({ ...EXAMPLE_INPUT, ipv6: v6 });
    expect(rulesOf(batch, CHAIN.rawPrerouting)[1]!.expr).toEqual(
      [match(meta('iifname'), 'br0'), match(payload('ip6', 'daddr'), 'fd00:10:10::1'), match(payload('udp', 'dport'), 53), { notrack: null }]);
    expect(rulesOf(batch, CHAIN.rawOutput)[1]!.expr).toEqual(
      [match(meta('oifname'), 'br0'), match(payload('ip6', 'saddr'), 'fd00:10:10::1'), match(payload('udp', 'sport'), 53), { notrack: null }]);
  });

  it('leaves TCP DNS and everything else tracked: notrack only in the raw chains, only for udp port 53', () => {
    for (const input of [EXAMPLE_INPUT, { ...EXAMPLE_INPUT, ipv6: v6, tftp: true, guestToHost: 'all' } satisfies RulesetInput]) {
      const rules = rulesOf(buildRuleset(input), CHAIN.rawPrerouting).concat(rulesOf(buildRuleset(input), CHAIN.rawOutput));
      for (const rule of rules) expect(JSON.stringify(rule.expr)).toMatch(/"protocol":"udp","field":"[ds]port"\}\},"right":53\}/);
      const elsewhere = buildRuleset(input).nftables.flatMap((c) => ('add' in c && 'rule' in c.add ? [c.add.rule] : []))
        .filter((r) => r.chain !== CHAIN.rawPrerouting && r.chain !== CHAIN.rawOutput);
      expect(JSON.stringify(elsewhere)).not.toContain('notrack');
    }
  });

  it('input chain: the untracked queries are accepted by address and port, no earlier rule drops them', () => {
    const input = rulesOf(buildRuleset({ ...EXAMPLE_INPUT, ipv6: v6 }), CHAIN.input);
    for (const comment of ['natd: DNS (udp) from guests', 'natd: DNS (udp) over IPv6 from guests']) {
      const at = input.findIndex((r) => r.comment === comment);
      expect(at).toBeGreaterThan(0);
      expect(JSON.stringify(input[at]!.expr)).not.toContain('"ct"'); // an untracked packet has ct state untracked
      // before it: only accepts, and the IPv6 spoof guard (a drop that needs a source outside the prefix)
      for (const rule of input.slice(0, at)) {
        const verdict = rule.expr.at(-1)!;
        if ('drop' in verdict) expect(rule.comment).toContain('spoofed');
        else expect(verdict).toEqual({ accept: null });
      }
    }
    expect(input[0]!.comment).toContain('spoofed'); // the spoof guard still comes first for untracked queries too
  });
});
