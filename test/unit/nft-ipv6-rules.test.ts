/** issue 14: the IPv6 rules natd adds to its table when it serves IPv6 (NAT66, forwarding, RFC 4890 errors, input). */
import { describe, expect, it } from 'vitest';
import { buildRuleset, CHAIN, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';
import type { NftBatch, NftRule } from '../../src/nft/schema.js';
import { buildForwardChange } from '../../src/nft/ruleset.js';
import type { PortForward6 } from '../../src/nft/forward-spec.js';

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
    expect(comments(withV6, CHAIN.forward).slice(-6)).toEqual([
      'natd: IPv6 replies to guests',
      'natd: ICMPv6 errors to guests (RFC 4890)',
      'natd: IPv6 port forwards to guests',
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

  // issue 14, routed mode and IPv6 port forwards
  const routed = buildRuleset({ ...EXAMPLE_INPUT, ipv6: { ...v6, mode: 'routed' } });

  it('routed mode: no NAT66, and anyone may reach the guests\' prefix (libvirt forward mode=route), before the rejects', () => {
    expect(comments(routed, CHAIN.postrouting)).not.toContain('natd: guests to outside over IPv6 (NAT66)');
    expect(comments(routed, CHAIN.postrouting)).toContain('natd: hairpin IPv6 port forwards');
    const forward = comments(routed, CHAIN.forward);
    const inbound = forward.indexOf('natd: routed IPv6 prefix, anyone to guests (libvirt forward mode=route)');
    expect(inbound).toBeGreaterThan(0);
    expect(inbound).toBeLessThan(forward.indexOf('natd: reject the rest to the bridge'));
    const rule = rulesOf(routed, CHAIN.forward)[inbound]!;
    expect(rule.expr).toEqual([
      { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'br0' } },
      { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'fd00:10:10::', len: 64 } } } },
      { accept: null },
    ]);
    expect(comments(withV6, CHAIN.forward)).not.toContain(forward[inbound]);
  });

  it('drop spoofed IPv6 sources from the bridge first, in forward and input, in both modes', () => {
    for (const batch of [withV6, routed]) {
      for (const chain of [CHAIN.forward, CHAIN.input]) {
        const first = rulesOf(batch, chain)[0]!;
        expect(first.comment).toBe('natd: IPv6 from the bridge with a source outside the prefix (spoofed)');
        expect(first.expr.at(-1)).toEqual({ drop: null });
        expect(JSON.stringify(first.expr)).toContain('{"op":"!=","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":{"prefix":{"addr":"fd00:10:10::","len":64}}}');
      }
    }
  });

  const f6: PortForward6[] = [
    { family: 'ipv6', protocol: 'tcp', hostAddress: '2001:db8:51::1', hostPort: 2222, guestAddress: 'fd00:10:10::5', guestPort: 22 },
    { family: 'ipv6', protocol: 'udp', hostPort: 5353, guestAddress: 'fd00:10:10::6', guestPort: 53 },
  ];

  it('IPv6 forwards: bound and any-address maps with ipv6_addr data, DNAT ip6 in prerouting and output', () => {
    const batch = buildRuleset({ ...EXAMPLE_INPUT, ipv6: v6, forwards6: f6 });
    const maps = batch.nftables.flatMap((c) => ('add' in c && 'map' in c.add ? [c.add.map] : []));
    expect(maps.find((m) => m.name === 'fwd6_bound_addr')).toMatchObject({ type: ['ipv6_addr', 'inet_proto', 'inet_service'], map: 'ipv6_addr', elem: [[{ concat: ['2001:db8:51::1', 'tcp', 2222] }, 'fd00:10:10::5']] });
    expect(maps.find((m) => m.name === 'fwd6_any_port')).toMatchObject({ type: ['inet_proto', 'inet_service'], map: 'inet_service', elem: [[{ concat: ['udp', 5353] }, 53]] });
    for (const chain of [CHAIN.prerouting, CHAIN.output]) {
      const text = JSON.stringify(rulesOf(batch, chain));
      expect(text).toContain('"dnat":{"family":"ip6","addr":{"map":{"key":{"concat":[{"payload":{"protocol":"ip6","field":"daddr"}}');
      expect(text).toContain('"data":"@fwd6_any_addr"');
    }
    expect(JSON.stringify(rulesOf(batch, CHAIN.output))).toContain('"right":"::1"');
  });

  it('IPv6 forwards: refused without an IPv6 prefix, and twice on one key', () => {
    expect(() => buildRuleset({ ...EXAMPLE_INPUT, forwards6: f6 })).toThrow(/without an IPv6 prefix/);
    expect(() => buildRuleset({ ...EXAMPLE_INPUT, ipv6: v6, forwards6: [f6[0]!, { ...f6[0]!, guestAddress: 'fd00:10:10::9' }] })).toThrow(/two IPv6 forwards use \[2001:db8:51::1\] \. tcp \. 2222/);
  });

  it('a runtime change of an IPv6 forward touches only the fwd6 maps', () => {
    const change = buildForwardChange({ ...EXAMPLE_INPUT, ipv6: v6 }, [f6[1]!], [f6[0]!]);
    expect(change.nftables).toEqual([
      { delete: { element: { family: 'inet', table: 'natd-br0', name: 'fwd6_bound_addr', elem: [{ concat: ['2001:db8:51::1', 'tcp', 2222] }] } } },
      { delete: { element: { family: 'inet', table: 'natd-br0', name: 'fwd6_bound_port', elem: [{ concat: ['2001:db8:51::1', 'tcp', 2222] }] } } },
      { add: { element: { family: 'inet', table: 'natd-br0', name: 'fwd6_any_addr', elem: [[{ concat: ['udp', 5353] }, 'fd00:10:10::6']] } } },
      { add: { element: { family: 'inet', table: 'natd-br0', name: 'fwd6_any_port', elem: [[{ concat: ['udp', 5353] }, 53]] } } },
    ]);
  });
});
