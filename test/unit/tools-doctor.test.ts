/**
 * The nft fixtures in test/fixtures/nft-doctor/ are real `nft -j list ruleset` output (nft 1.0.6) of the .nft files
 * beside them, each loaded into a throwaway network namespace: shaped like firewalld, Docker on iptables-nft, a
 * hand-written nftables.conf, and a clean host with libvirt's own table next to natd's.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  diagnoseBridgeNetfilter,
  diagnoseListeners,
  diagnoseRuleset,
  diagnoseSysctl,
  formatFindings,
  parseSsListeners,
  runDoctor,
  diagnoseIpv6,
  type Exec,
  type Finding,
  type RulesetContext,
} from '../../src/tools/doctor.js';
import { blockersFor, indexRuleset, type PacketSpec } from '../../src/tools/nft-eval.js';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../fixtures/nft-doctor/${name}.json`, import.meta.url)), 'utf8'));

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;
const ctx: RulesetContext = { bridge: 'virbr10', subnet, gateway, ownTable: 'natd-virbr10' };

type Rule = { family: string; table: string; chain: string; handle: number; expr: unknown[] };
/** The handle of the first rule in a chain whose JSON contains `needle` (so tests do not hard-code handles). */
function handleOf(listed: unknown, chain: string, needle: string): number {
  const rules = (listed as { nftables: { rule?: Rule }[] }).nftables.flatMap((o) => (o.rule ? [o.rule] : []));
  const rule = rules.find((r) => r.chain === chain && JSON.stringify(r.expr).includes(needle));
  if (!rule) throw new Error(`no rule with ${needle} in ${chain}`);
  return rule.handle;
}

const bySeverity = (findings: Finding[], severity: Finding['severity']): Finding[] => findings.filter((f) => f.severity === severity);

describe('diagnoseRuleset on real listings', () => {
  it('firewalld with the bridge in no zone: the final reject of filter_INPUT stops DHCP and DNS', () => {
    const listed = fixture('firewalld');
    const findings = diagnoseRuleset(listed, { ...ctx, uplink: 'eth0' });
    const handle = handleOf(listed, 'filter_INPUT', 'admin-prohibited');
    expect(bySeverity(findings, 'error')).toEqual([
      {
        severity: 'error',
        check: 'nftables',
        message: `inet firewalld: chain filter_INPUT (hook input, priority 10): rule handle ${handle} (reject) rejects virbr10's DHCP (udp 67/68) and DNS (port 53)`,
        fix: 'put the bridge in firewalld\'s trusted zone: firewall-cmd --permanent --zone=trusted --add-interface=virbr10 && firewall-cmd --reload',
      },
    ]);
    // With the uplink known as eth0, the public zone lets guests out: forwarding is fine.
    expect(findings).toHaveLength(1);
  });

  it('firewalld: an uplink of unknown name makes the forward reject a warning, not an error', () => {
    const listed = fixture('firewalld');
    const warns = bySeverity(diagnoseRuleset(listed, ctx), 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]!.message).toMatch(new RegExp(`filter_FORWARD .*rule handle ${handleOf(listed, 'filter_FORWARD', 'admin-prohibited')} .*may reject .*forwarded traffic`));
  });

  it('firewalld with the bridge in the trusted zone: nothing to report', () => {
    expect(diagnoseRuleset(fixture('firewalld-trusted'), ctx)).toEqual([
      { severity: 'ok', check: 'nftables', message: expect.stringMatching(/no other nftables base chain drops virbr10's/), fix: '' },
    ]);
  });

  it("Docker: FORWARD's policy drop stops forwarded traffic, fixed through DOCKER-USER", () => {
    const findings = diagnoseRuleset(fixture('docker'), ctx);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ severity: 'error', message: expect.stringMatching(/^ip filter: chain FORWARD \(hook forward, priority 0\): policy drop drops virbr10's forwarded traffic/) });
    expect(findings[0]!.fix).toContain('iptables -I DOCKER-USER -i virbr10 -j ACCEPT && iptables -I DOCKER-USER -o virbr10 -j ACCEPT');
    // the same host after applying that fix
    expect(bySeverity(diagnoseRuleset(fixture('docker-fixed'), ctx), 'ok')).toHaveLength(1);
  });

  it("a clean host: libvirt's rejects for virbr0 and natd's own table do not count", () => {
    const listed = fixture('clean');
    expect(diagnoseRuleset(listed, ctx).map((f) => f.severity)).toEqual(['ok']);
    // natd's table is skipped by name: under another name its own reject rules would be reported
    const asForeign = diagnoseRuleset(listed, { ...ctx, ownTable: 'natd-other' });
    expect(bySeverity(asForeign, 'error').map((f) => f.message).join('\n')).toMatch(/inet natd-virbr10: chain input/);
    // and libvirt's table does stop a bridge called virbr0
    expect(bySeverity(diagnoseRuleset(listed, { ...ctx, bridge: 'virbr0' }), 'error').map((f) => f.message).join('\n')).toMatch(/ip libvirt_network: in chain guest_output, reached from chain forward/);
  });

  it('a hand-written nftables.conf: policies, a matching drop, an undecidable drop and a bridge-family table', () => {
    const listed = fixture('nftables-conf');
    const findings = diagnoseRuleset(listed, ctx);
    const errors = bySeverity(findings, 'error').map((f) => f.message);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^inet filter: chain input .*policy drop drops virbr10's DHCP \(udp 67\/68\) and DNS \(port 53\)$/),
        expect.stringMatching(/^inet filter: chain forward .*policy drop drops virbr10's forwarded traffic/),
        expect.stringMatching(new RegExp(`^inet filter: chain postrouting .*rule handle ${handleOf(listed, 'postrouting', '68')} \\(drop\\) drops virbr10's DHCP`)),
      ]),
    );
    expect(errors).toHaveLength(3);
    const warns = bySeverity(findings, 'warn').map((f) => f.message);
    expect(warns).toEqual([
      expect.stringMatching(new RegExp(`chain postrouting .*rule handle ${handleOf(listed, 'postrouting', '"mark"')} \\(drop\\) may drop`)),
      expect.stringMatching(/^bridge guard: chain forward .*drops bridged frames/),
    ]);
    const inputFix = findings.find((f) => f.message.startsWith('inet filter: chain input'))!.fix;
    expect(inputFix).toContain('nft insert rule inet filter input iifname "virbr10" accept');
    expect(inputFix).toContain('/etc/nftables.conf');
    const forwardFix = findings.find((f) => f.message.startsWith('inet filter: chain forward'))!.fix;
    expect(forwardFix).toContain('iifname "virbr10" accept');
    expect(forwardFix).toContain('oifname "virbr10" accept');
  });

  it('never throws on malformed listings (property)', () => {
    const chainish = fc.record({ family: fc.constantFrom('ip', 'inet', 'bridge', 7), table: fc.string(), name: fc.constantFrom('c', 'd'), hook: fc.constantFrom('input', 'forward', 'postrouting', undefined), policy: fc.constantFrom('drop', 'accept', 3) });
    const ruleish = fc.record({ family: fc.constantFrom('ip', 'inet'), table: fc.string(), chain: fc.constantFrom('c', 'd'), handle: fc.nat(), expr: fc.array(fc.oneof(fc.jsonValue(), fc.constant({ jump: { target: 'd' } }), fc.constant({ goto: { target: 'c' } }), fc.constant({ drop: null }))) });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.array(fc.oneof(chainish.map((chain) => ({ chain })), ruleish.map((rule) => ({ rule })))).map((nftables) => ({ nftables }))), (listed) => {
        const findings = diagnoseRuleset(listed, ctx);
        expect(findings.length).toBeGreaterThan(0);
      }),
    );
  });
});

describe('blockersFor (the chain walk)', () => {
  const br = { kind: 'name', name: 'virbr10' } as const;
  const dhcp: PacketSpec = { iif: br, oif: { kind: 'none' }, l4proto: 'udp', sport: 68, dport: 67, saddr: { kind: 'exact', address: 0 }, daddr: { kind: 'exact', address: 0xffffffff }, ctState: 'new' };
  const match = (left: unknown, right: unknown, op = '=='): unknown => ({ match: { op, left, right } });
  const iifname = { meta: { key: 'iifname' } };
  const udpDport = { payload: { protocol: 'udp', field: 'dport' } };
  const saddr = { payload: { protocol: 'ip', field: 'saddr' } };

  function walk(rules: Record<string, unknown[][]>, policy = 'accept', pkt = dhcp) {
    const nftables: unknown[] = [];
    for (const [chain, exprs] of Object.entries(rules)) {
      nftables.push({ chain: { family: 'inet', table: 't', name: chain, ...(chain === 'base' ? { hook: 'input', prio: 0, policy } : {}) } });
      exprs.forEach((expr, i) => nftables.push({ rule: { family: 'inet', table: 't', chain, handle: i + 1, expr } }));
    }
    const index = indexRuleset({ nftables });
    return blockersFor(index, index.chains.get('inet\u0000t\u0000base')!, pkt, 'virbr10');
  }

  it('an accept that matches before the policy keeps the packet', () => {
    expect(walk({ base: [[match(iifname, 'virbr10'), { accept: null }]] }, 'drop')).toEqual([]);
    expect(walk({ base: [[match(iifname, 'eth0'), { accept: null }]] }, 'drop')).toEqual([{ family: 'inet', table: 't', chain: 'base', verdict: 'drop', certain: true }]);
  });

  it('matches wildcards, sets, negations, ports and prefixes', () => {
    const drop = (...conds: unknown[]) => walk({ base: [[...conds, { drop: null }]] });
    expect(drop(match(iifname, 'virbr*'))).toHaveLength(1);
    expect(drop(match(iifname, { set: ['eth0', 'virbr10'] }))).toHaveLength(1);
    expect(drop(match(iifname, 'virbr10', '!='))).toEqual([]);
    expect(drop(match(udpDport, { range: [60, 70] }))).toHaveLength(1);
    expect(drop(match({ payload: { protocol: 'tcp', field: 'dport' } }, 67))).toEqual([]);
    expect(drop(match(saddr, { prefix: { addr: '0.0.0.0', len: 8 } }))).toHaveLength(1);
    expect(drop(match(saddr, { prefix: { addr: '192.168.0.0', len: 16 } }))).toEqual([]);
    expect(drop(match({ ct: { key: 'state' } }, ['established', 'related'], 'in'))).toEqual([]);
    expect(drop(match({ payload: { protocol: 'ip6', field: 'saddr' } }, { prefix: { addr: '::', len: 0 } }))).toEqual([]);
  });

  it('follows jump, return and goto', () => {
    expect(walk({ base: [[{ jump: { target: 'sub' } }], [{ accept: null }]], sub: [[{ return: null }], [{ drop: null }]] })).toEqual([]);
    const viaJump = walk({ base: [[{ jump: { target: 'sub' } }], [{ accept: null }]], sub: [[match(udpDport, 67), { reject: { type: 'icmpx' } }]] });
    expect(viaJump).toEqual([{ family: 'inet', table: 't', chain: 'sub', handle: 1, verdict: 'reject', certain: true }]);
    // goto: falling off the end of the target returns past the goto's chain, to the policy here
    expect(walk({ base: [[{ goto: { target: 'sub' } }], [{ accept: null }]], sub: [] }, 'drop')).toEqual([{ family: 'inet', table: 't', chain: 'base', verdict: 'drop', certain: true }]);
    // a jump loop ends without throwing
    expect(() => walk({ base: [[{ jump: { target: 'a' } }]], a: [[{ jump: { target: 'a' } }]] })).not.toThrow();
  });

  it('resolves interface verdict maps and treats what it cannot decide as uncertain', () => {
    const vmap = (entries: [string, unknown][]) => ({ vmap: { key: iifname, data: { set: entries } } });
    expect(walk({ base: [[vmap([['lo', { accept: null }], ['virbr10', { accept: null }]])]] }, 'drop')).toEqual([]);
    expect(walk({ base: [[vmap([['virbr10', { drop: null }]])]] })).toEqual([{ family: 'inet', table: 't', chain: 'base', handle: 1, verdict: 'drop', certain: true }]);
    const marked = walk({ base: [[match({ meta: { key: 'mark' } }, 1), { accept: null }]] }, 'drop');
    expect(marked).toEqual([{ family: 'inet', table: 't', chain: 'base', verdict: 'drop', certain: false }]);
  });
});

describe('diagnoseListeners', () => {
  const ss = [
    'udp   UNCONN 0      0        0.0.0.0%virbr0:67         0.0.0.0:*    users:(("dnsmasq",pid=811,fd=3))',
    'udp   UNCONN 0      0      192.168.122.1:53            0.0.0.0:*    users:(("dnsmasq",pid=811,fd=5))',
    'udp   UNCONN 0      0      127.0.0.53%lo:53            0.0.0.0:*    users:(("systemd-resolve",pid=402,fd=13))',
    'udp   UNCONN 0      0               [::]:53               [::]:*    users:(("named",pid=77,fd=20))',
    'tcp   LISTEN 0      4096     10.10.0.1:53              0.0.0.0:*    users:(("unbound",pid=900,fd=6))',
    'udp   UNCONN 0      0            0.0.0.0:67            0.0.0.0:*    users:(("dhcpd",pid=1200,fd=7))',
    'udp   UNCONN 0      0      0.0.0.0%virbr10:67          0.0.0.0:*    users:(("node",pid=3000,fd=21))',
    'tcp   LISTEN 0      128          0.0.0.0:22            0.0.0.0:*    users:(("sshd",pid=600,fd=3))',
  ].join('\n');

  it('parses ss lines with device, process and pid', () => {
    expect(parseSsListeners(ss)[0]).toEqual({ proto: 'udp', address: '0.0.0.0', device: 'virbr0', port: 67, process: 'dnsmasq', pid: 811 });
    expect(parseSsListeners('UNCONN 0 0 *:53 *:*')).toEqual([{ address: '*', port: 53 }]);
  });

  it('flags a wildcard DHCP server and a DNS server on the gateway, not the ones elsewhere', () => {
    const findings = diagnoseListeners(ss, { bridge: 'virbr10', gateway: '10.10.0.1' });
    const errors = bySeverity(findings, 'error').map((f) => f.message);
    expect(errors).toEqual([
      expect.stringMatching(/^unbound \(pid 900\) holds tcp 10\.10\.0\.1:53: a second DNS server/),
      expect.stringMatching(/^dhcpd \(pid 1200\) holds udp 0\.0\.0\.0:67: a second DHCP server .*every interface/),
    ]);
    expect(bySeverity(findings, 'ok').map((f) => f.message)).toEqual([expect.stringMatching(/^node \(pid 3000\) .*natd itself/)]);
  });

  it('names the dnsmasq fix, and reports a clean host as ok', () => {
    const [finding] = diagnoseListeners('UNCONN 0 0 0.0.0.0%virbr10:67 0.0.0.0:* users:(("dnsmasq",pid=5,fd=4))', { bridge: 'virbr10' });
    expect(finding).toMatchObject({ severity: 'error', fix: expect.stringContaining('except-interface=virbr10') });
    expect(diagnoseListeners(ss.split('\n').slice(0, 4).join('\n'), { bridge: 'virbr10', gateway: '10.10.0.1' })).toEqual([
      { severity: 'ok', check: 'listeners', message: 'no other process holds udp 67 or port 53 on virbr10', fix: '' },
    ]);
  });

  it('never throws on arbitrary ss output (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.constant('udp UNCONN 0 0 0.0.0.0:67 0.0.0.0:*'), fc.constant('x 0 0 a:b'))), (lines) => {
        const text = lines.join('\n');
        for (const l of parseSsListeners(text)) expect(Number.isInteger(l.port)).toBe(true);
        expect(diagnoseListeners(text, { bridge: 'virbr10' }).length).toBeGreaterThan(0);
      }),
    );
  });
});

describe('sysctl checks', () => {
  it('ip_forward: on is ok, off before natd runs warns, off while it runs is an error', () => {
    expect(diagnoseSysctl({ ipForward: '1\n' })[0]!.severity).toBe('ok');
    expect(diagnoseSysctl({ ipForward: '0\n' })[0]).toMatchObject({ severity: 'warn', fix: expect.stringContaining('net.ipv4.ip_forward=1') });
    expect(diagnoseSysctl({ ipForward: '0\n', natdRunning: true })[0]!.severity).toBe('error');
    expect(diagnoseSysctl({ ipForward: undefined })[0]!.severity).toBe('warn');
  });

  it('bridge-nf-call-iptables: warns only when bridged frames go through the ip filters', () => {
    expect(diagnoseBridgeNetfilter({ callIptables: undefined, bridge: 'virbr10' })[0]!.severity).toBe('ok');
    expect(diagnoseBridgeNetfilter({ callIptables: '0\n', bridge: 'virbr10' })[0]!.severity).toBe('ok');
    expect(diagnoseBridgeNetfilter({ callIptables: '1\n', bridge: 'virbr10' })[0]).toMatchObject({ severity: 'warn', message: expect.stringContaining("virbr10's guests") });
  });
});

describe('runDoctor', () => {
  function fakeHost(opts: { ruleset: unknown; ss?: string; bridgeJson?: string; ipForward?: string; nftFails?: boolean; raRoutes?: object[]; files?: Record<string, string> }) {
    const calls: string[] = [];
    const exec: Exec = async (command, args) => {
      calls.push(`${command} ${args.join(' ')}`);
      const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
      if (command === 'nft') return opts.nftFails ? { code: 1, stdout: '', stderr: 'Operation not permitted' } : ok(JSON.stringify(opts.ruleset));
      if (command === 'ss') return ok(opts.ss ?? '');
      if (command === 'ip' && args.includes('addr')) return opts.bridgeJson === undefined ? { code: 1, stdout: '', stderr: 'Device "virbr10" does not exist.' } : ok(opts.bridgeJson);
      if (command === 'ip' && args.includes('-6')) return ok(JSON.stringify(opts.raRoutes ?? [])); // issue 14
      if (command === 'ip' && args.includes('route')) return ok('[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"}]');
      return { code: 127, stdout: '', stderr: 'not found' };
    };
    const files: Record<string, string> = { '/proc/sys/net/ipv4/ip_forward': opts.ipForward ?? '1\n', ...opts.files };
    return { exec, calls, readFile: async (path: string) => files[path] };
  }
  const bridgeJson = '[{"ifname":"virbr10","addr_info":[{"family":"inet","local":"10.10.0.1","prefixlen":24}]}]';

  it('exits 0 on a clean host and reads the subnet from the bridge', async () => {
    const host = fakeHost({ ruleset: fixture('clean'), bridgeJson });
    const { findings, exitCode } = await runDoctor({ bridge: 'virbr10', exec: host.exec, readFile: host.readFile });
    expect(exitCode).toBe(0);
    expect(findings.map((f) => `${f.check}:${f.severity}`)).toEqual(['nftables:ok', 'listeners:ok', 'sysctl:ok', 'ipv6:ok', 'bridge-netfilter:ok']);
    expect(host.calls).toEqual(['ip -j -4 addr show dev virbr10', 'ip -j -4 route show default', 'nft -j list ruleset', 'ss -Hltunp', 'ip -6 -j route show default proto ra']);
  });

  it('exits 1 when something will break, and explains a missing bridge and an unreadable ruleset', async () => {
    const docker = fakeHost({ ruleset: fixture('docker'), bridgeJson, ipForward: '0\n' });
    const broken = await runDoctor({ bridge: 'virbr10', exec: docker.exec, readFile: docker.readFile });
    expect(broken.exitCode).toBe(1);
    expect(formatFindings(broken.findings)).toMatch(/^ERROR ip filter: chain FORWARD[^\n]*\n {6}fix: Docker's FORWARD/);

    const bare = fakeHost({ ruleset: {}, nftFails: true });
    const { findings, exitCode } = await runDoctor({ bridge: 'virbr10', exec: bare.exec, readFile: bare.readFile });
    expect(exitCode).toBe(0);
    expect(findings.filter((f) => f.severity === 'warn').map((f) => f.message)).toEqual([
      expect.stringMatching(/virbr10 does not exist yet/),
      expect.stringMatching(/cannot list the nftables ruleset: Operation not permitted/),
    ]);
  });

  it('issue 14: finds an interface that relies on RAs while IPv6 forwarding is on', async () => {
    const files = { '/proc/sys/net/ipv6/conf/all/forwarding': '1\n', '/proc/sys/net/ipv6/conf/eth0/accept_ra': '1\n', '/proc/sys/net/ipv6/conf/wlan0/accept_ra': '2\n' };
    const raRoutes = [{ dst: 'default', dev: 'eth0', protocol: 'ra' }, { dst: 'default', dev: 'wlan0', protocol: 'ra' }];
    const host = fakeHost({ ruleset: fixture('clean'), bridgeJson, raRoutes, files });
    const { findings, exitCode } = await runDoctor({ bridge: 'virbr10', exec: host.exec, readFile: host.readFile });
    expect(exitCode).toBe(1);
    expect(findings.filter((f) => f.check === 'ipv6')).toEqual([expect.objectContaining({ severity: 'error', message: expect.stringMatching(/^eth0 has its IPv6 default route from a router advertisement but accept_ra=1/), fix: expect.stringContaining('net.ipv6.conf.eth0.accept_ra=2') })]);
    expect(diagnoseIpv6({ forwarding: '0', raInterfaces: [{ dev: 'eth0', acceptRa: '1' }] })[0]?.severity).toBe('warn');
    expect(diagnoseIpv6({ forwarding: '1', raInterfaces: [{ dev: 'eth0', acceptRa: '2' }] })[0]?.severity).toBe('ok');
  });

  it('uses a given subnet without asking the bridge', async () => {
    const host = fakeHost({ ruleset: fixture('clean') });
    await runDoctor({ bridge: 'virbr10', subnet: { gateway: parseIpv4('10.10.0.1')!, subnet }, exec: host.exec, readFile: host.readFile });
    expect(host.calls.some((c) => c.includes('addr show'))).toBe(false);
  });
});
