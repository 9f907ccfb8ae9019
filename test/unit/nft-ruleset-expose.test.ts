/** issue 17: the routed ports set and its input rule; runtime changes are set elements only. */
import { describe, expect, it } from 'vitest';
import { buildExposePortsChange, buildRules, buildRuleset, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';

const rule = (rules: ReturnType<typeof buildRules>) => rules.input.find((r) => r.comment === 'natd: name router ports (expose)');

describe('name router ports in the table', () => {
  it('absent without the router (the documented example is unchanged)', () => {
    expect(rule(buildRules(EXAMPLE_INPUT))).toBeUndefined();
    expect(JSON.stringify(buildRuleset(EXAMPLE_INPUT))).not.toContain('expose_ports');
  });

  it('a set of ports and one accept before the final reject; bound to the listen address when given', () => {
    const input = { ...EXAMPLE_INPUT, expose: { ports: [80, 443], listen: 0xc6336401 } };
    const batch = buildRuleset(input);
    expect(batch.nftables).toContainEqual({ add: { set: { family: 'inet', table: 'natd-br0', name: 'expose_ports', type: 'inet_service', elem: [80, 443] } } });
    const rules = buildRules(input);
    expect(rule(rules)!.expr).toEqual([
      { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '198.51.100.1' } },
      { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: '@expose_ports' } },
      { accept: null },
    ]);
    const comments = rules.input.map((r) => r.comment);
    expect(comments.indexOf('natd: name router ports (expose)')).toBeLessThan(comments.indexOf('natd: guests reach nothing else on the host'));
    // nothing else opens: the forward and nat chains are the same as without the router
    const plain = buildRules(EXAMPLE_INPUT);
    for (const chain of ['prerouting', 'output', 'postrouting', 'forward'] as const) expect(rules[chain]).toEqual(plain[chain]);
    expect(rules.input.length).toBe(plain.input.length + 1);
  });

  it('an empty set has no elements; changes are element batches (deletes first)', () => {
    const input = { ...EXAMPLE_INPUT, expose: { ports: [] } };
    expect(buildRuleset(input).nftables).toContainEqual({ add: { set: { family: 'inet', table: 'natd-br0', name: 'expose_ports', type: 'inet_service' } } });
    expect(buildExposePortsChange(input, [8443], [9000]).nftables).toEqual([
      { delete: { element: { family: 'inet', table: 'natd-br0', name: 'expose_ports', elem: [9000] } } },
      { add: { element: { family: 'inet', table: 'natd-br0', name: 'expose_ports', elem: [8443] } } },
    ]);
    expect(() => buildExposePortsChange(input, [0], [])).toThrow(/routed port/);
  });
});
