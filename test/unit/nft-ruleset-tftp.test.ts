/** issue 16: the input chain admits the TFTP read request (udp 69 to the gateway) only when TFTP is on. */
import { describe, expect, it } from 'vitest';
import { buildRules, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';

const tftpRule = (rules: ReturnType<typeof buildRules>) => rules.input.find((r) => r.comment === 'natd: TFTP read requests from guests');

describe('input chain with TFTP', () => {
  it('off by default: no udp 69 rule, guests are rejected there', () => {
    expect(tftpRule(buildRules(EXAMPLE_INPUT))).toBeUndefined();
  });
  it('on: iifname br0 ip daddr 10.77.0.1 udp dport 69 accept, before the final reject', () => {
    const rules = buildRules({ ...EXAMPLE_INPUT, tftp: true });
    const rule = tftpRule(rules)!;
    expect(rule.expr).toEqual([
      { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'br0' } },
      { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '10.77.0.1' } },
      { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 69 } },
      { accept: null },
    ]);
    const comments = rules.input.map((r) => r.comment);
    // the transfer's ACKs come back to natd's ephemeral port as replies: the established rule comes first
    expect(comments.indexOf('natd: replies to the host from guests')).toBeLessThan(comments.indexOf(rule.comment));
    expect(comments.indexOf(rule.comment)).toBeLessThan(comments.indexOf('natd: guests reach nothing else on the host'));
  });
});
