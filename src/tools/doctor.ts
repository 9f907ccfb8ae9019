/**
 * `natd doctor --bridge NAME`: finds what else on the host will break the bridge — the most common reasons these
 * set-ups fail are other firewalls (firewalld, Docker, a hand-written nftables.conf), another DHCP/DNS server on
 * the same ports, ip_forward switched off, and br_netfilter sending bridged frames through the ip filters.
 *
 * The diagnose* functions are pure (text or parsed JSON in, findings out) so they are tested with captured
 * output; runDoctor gathers the inputs through an injectable exec/readFile.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import { formatIpv4, makeSubnet, parseIpv4, type Subnet } from '../net/ipv4.js';
import { tableNameFor } from '../defaults.js';
import { defaultExec, type Exec } from '../exec.js';
import { blockersFor, indexRuleset, type AddressSpec, type Blocker, type InterfaceSpec, type ListedChain, type PacketSpec, type RulesetIndex } from './nft-eval.js';
import { diagnoseRoutedIpv6, routedPrefixInTable } from './doctor-ipv6.js'; // issue 14: routed IPv6

export type { Exec, ExecResult } from '../exec.js';

export type Severity = 'error' | 'warn' | 'ok';

export interface Finding {
  severity: Severity;
  message: string;
  /** what to do about it; empty for 'ok' */
  fix: string;
  /** which check produced it */
  check: 'nftables' | 'listeners' | 'sysctl' | 'bridge-netfilter' | 'bridge' | 'ipv6';
}

// ---- nftables ---------------------------------------------------------------------------------------------------

export interface RulesetContext {
  bridge: string;
  /** the bridge's subnet; undefined when the bridge has no address yet (guest addresses then count as unknown) */
  subnet?: Subnet;
  /** the bridge's address; default: the subnet's first host */
  gateway?: number;
  /** the uplink interface (default route); undefined: unknown */
  uplink?: string;
  /** natd's own table (family inet), skipped */
  ownTable: string;
}

type Traffic = 'dhcp' | 'dns' | 'forward';

const TRAFFIC_LABEL: Record<Traffic, string> = {
  dhcp: 'DHCP (udp 67/68)',
  dns: 'DNS (port 53)',
  forward: 'forwarded traffic between the guests and the outside',
};

interface Profile {
  traffic: Traffic;
  hook: string;
  pkt: PacketSpec;
}

const EPHEMERAL_PORT = 40_000;

/** The packets natd's bridge depends on, at each hook they pass (IPv4 only: natd serves IPv4). */
function trafficProfiles(ctx: RulesetContext): Profile[] {
  const br: InterfaceSpec = { kind: 'name', name: ctx.bridge };
  const none: InterfaceSpec = { kind: 'none' };
  const uplink: InterfaceSpec = ctx.uplink ? { kind: 'name', name: ctx.uplink } : { kind: 'unknown' };
  const guests: AddressSpec = ctx.subnet ? { kind: 'subnet', subnet: ctx.subnet } : { kind: 'any' };
  const gatewayAddress = ctx.gateway ?? (ctx.subnet ? ctx.subnet.network + 1 : undefined);
  const gateway: AddressSpec = gatewayAddress === undefined ? { kind: 'any' } : { kind: 'exact', address: gatewayAddress };
  const broadcast: AddressSpec = { kind: 'exact', address: 0xffffffff };
  const internet: AddressSpec = { kind: 'any' };

  const dhcpIn: PacketSpec = { iif: br, oif: none, l4proto: 'udp', sport: 68, dport: 67, saddr: { kind: 'exact', address: 0 }, daddr: broadcast, ctState: 'new' };
  const dhcpOut: PacketSpec = { iif: none, oif: br, l4proto: 'udp', sport: 67, dport: 68, saddr: gateway, daddr: broadcast, ctState: 'new' };
  const dnsIn = (l4proto: 'udp' | 'tcp'): PacketSpec => ({ iif: br, oif: none, l4proto, sport: EPHEMERAL_PORT, dport: 53, saddr: guests, daddr: gateway, ctState: 'new' });
  const dnsOut = (l4proto: 'udp' | 'tcp'): PacketSpec => ({ iif: none, oif: br, l4proto, sport: 53, dport: EPHEMERAL_PORT, saddr: gateway, daddr: guests, ctState: 'established' });
  const outbound = (oif: InterfaceSpec): PacketSpec => ({ iif: br, oif, saddr: guests, daddr: internet, ctState: 'new' });
  const replies: PacketSpec = { iif: uplink, oif: br, saddr: internet, daddr: guests, ctState: 'established' };

  return [
    ...['prerouting', 'input'].map((hook) => ({ traffic: 'dhcp' as const, hook, pkt: dhcpIn })),
    ...['output', 'postrouting'].map((hook) => ({ traffic: 'dhcp' as const, hook, pkt: dhcpOut })),
    ...['prerouting', 'input'].flatMap((hook) => [dnsIn('udp'), dnsIn('tcp')].map((pkt) => ({ traffic: 'dns' as const, hook, pkt }))),
    ...['output', 'postrouting'].flatMap((hook) => [dnsOut('udp'), dnsOut('tcp')].map((pkt) => ({ traffic: 'dns' as const, hook, pkt }))),
    { traffic: 'forward', hook: 'prerouting', pkt: outbound(none) },
    { traffic: 'forward', hook: 'prerouting', pkt: { ...replies, oif: none } },
    ...['forward', 'postrouting'].flatMap((hook) => [outbound(uplink), replies].map((pkt) => ({ traffic: 'forward' as const, hook, pkt }))),
  ];
}

/** Base chains of ip/inet tables other than natd's, lowest priority first (the order netfilter runs them). */
function otherBaseChains(index: RulesetIndex, ownTable: string, families: string[]): ListedChain[] {
  return [...index.chains.values()]
    .filter((c) => c.hook !== undefined && families.includes(c.family) && !(c.family === 'inet' && c.table === ownTable))
    .sort((a, b) => (a.prio ?? 0) - (b.prio ?? 0));
}

function describeBlocker(b: Blocker, base: ListedChain): string {
  const where = b.handle === undefined ? `policy ${b.verdict}` : `rule handle ${b.handle} (${b.verdict}${b.comment ? `, "${b.comment}"` : ''})`;
  const via = b.chain === base.name ? '' : ` in chain ${b.chain}, reached from`;
  return `${b.family} ${b.table}:${via} chain ${base.name} (hook ${base.hook}, priority ${base.prio ?? 0}): ${where}`;
}

function directions(hook: string | undefined): ('iifname' | 'oifname')[] {
  if (hook === 'forward') return ['iifname', 'oifname'];
  return hook === 'output' || hook === 'postrouting' ? ['oifname'] : ['iifname'];
}

/** The fix in the terms of whatever owns the table: firewalld, Docker, iptables, or plain nftables. */
export function fixFor(base: ListedChain, index: RulesetIndex, bridge: string): string {
  if (base.table === 'firewalld') {
    return `put the bridge in firewalld's trusted zone: firewall-cmd --permanent --zone=trusted --add-interface=${bridge} && firewall-cmd --reload`;
  }
  const dockerUser = [...index.chains.values()].some((c) => c.family === base.family && c.table === base.table && c.name === 'DOCKER-USER');
  if (dockerUser && base.hook === 'forward') {
    return (
      `Docker's FORWARD policy drops it; accept the bridge in DOCKER-USER (Docker leaves that chain alone): ` +
      `iptables -I DOCKER-USER -i ${bridge} -j ACCEPT && iptables -I DOCKER-USER -o ${bridge} -j ACCEPT ` +
      '(run it at boot after docker.service, e.g. from a oneshot unit)'
    );
  }
  if (base.family === 'ip' && /^[A-Z][A-Z_-]*$/.test(base.name)) {
    const flags = directions(base.hook).map((d) => (d === 'iifname' ? '-i' : '-o'));
    const table = base.table === 'filter' ? '' : ` -t ${base.table}`;
    return `an iptables rule set (iptables-nft) blocks it; accept the bridge first: ${flags.map((f) => `iptables${table} -I ${base.name} ${f} ${bridge} -j ACCEPT`).join(' && ')} (and save it, e.g. iptables-save)`;
  }
  const rules = directions(base.hook).map((d) => `${d} "${bridge}" accept`);
  return (
    `accept the bridge before that rule: ${rules.map((r) => `nft insert rule ${base.family} ${base.table} ${base.name} ${r}`).join(' && ')}; ` +
    `to keep it, add ${rules.map((r) => `'${r}'`).join(' and ')} at the top of chain ${base.name} in table ${base.family} ${base.table} of /etc/nftables.conf`
  );
}

/** Bridge-family tables see the guests' frames before routing; natd cannot judge their port names, so it warns. */
function bridgeFamilyFindings(index: RulesetIndex, bridge: string): Finding[] {
  const findings: Finding[] = [];
  for (const chain of otherBaseChains(index, '', ['bridge'])) {
    const where = `bridge ${chain.table}: chain ${chain.name} (hook ${chain.hook})`;
    const fix = `if it filters ${bridge}'s ports, accept them first: nft insert rule bridge ${chain.table} ${chain.name} meta ibrname "${bridge}" accept (and in /etc/nftables.conf)`;
    if (chain.policy === 'drop') {
      findings.push({ severity: 'warn', check: 'nftables', message: `${where}: policy drop applies to frames on every bridge, ${bridge} included`, fix });
    }
    for (const rule of index.rules.get(`${chain.family}\u0000${chain.table}\u0000${chain.name}`) ?? []) {
      const text = JSON.stringify(rule.expr);
      if (!/"(?:drop|reject)"\s*:/.test(text)) continue;
      const otherBridge = /"key":"(?:ibrname|obrname)"}},"right":"([^"]*)"/.exec(text);
      if (otherBridge && otherBridge[1] !== bridge && !text.includes('"op":"!="')) continue;
      findings.push({ severity: 'warn', check: 'nftables', message: `${where}: rule handle ${rule.handle ?? '?'} drops bridged frames and may match ${bridge}'s guests`, fix });
    }
  }
  return findings;
}

/**
 * Every other base chain (ip/inet; bridge family as warnings) that would drop or reject the bridge's DHCP, DNS or
 * forwarded traffic. Certain drops are errors, drops that depend on what natd cannot see (marks, uplink name) are
 * warnings, and a clean ruleset gives one 'ok' finding. `listed` is the parsed `nft -j list ruleset`.
 */
export function diagnoseRuleset(listed: unknown, ctx: RulesetContext): Finding[] {
  const index = indexRuleset(listed);
  /** per blocking rule/policy: the traffic it stops, each with whether it surely does */
  const grouped = new Map<string, { blocker: Blocker; base: ListedChain; traffic: Map<Traffic, boolean> }>();
  const chains = otherBaseChains(index, ctx.ownTable, ['ip', 'inet']);
  for (const profile of trafficProfiles(ctx)) {
    for (const base of chains.filter((c) => c.hook === profile.hook)) {
      for (const blocker of blockersFor(index, base, profile.pkt, ctx.bridge)) {
        const key = `${base.family} ${base.table} ${base.name} ${blocker.chain} ${blocker.handle ?? 'policy'}`;
        const entry = grouped.get(key) ?? { blocker, base, traffic: new Map<Traffic, boolean>() };
        entry.traffic.set(profile.traffic, (entry.traffic.get(profile.traffic) ?? false) || blocker.certain);
        grouped.set(key, entry);
      }
    }
  }

  const findings: Finding[] = [...grouped.values()].map(({ blocker, base, traffic }) => {
    const verb = blocker.verdict === 'drop' ? 'drop' : 'reject';
    const sure = [...traffic].filter(([, certain]) => certain).map(([t]) => TRAFFIC_LABEL[t]);
    const maybe = [...traffic].filter(([, certain]) => !certain).map(([t]) => TRAFFIC_LABEL[t]);
    const parts = [
      ...(sure.length ? [`${verb}s ${ctx.bridge}'s ${sure.join(' and ')}`] : []),
      ...(maybe.length ? [`may ${verb} ${sure.length ? 'its' : `${ctx.bridge}'s`} ${maybe.join(' and ')} (depends on what natd cannot see)`] : []),
    ];
    return {
      severity: sure.length ? 'error' : 'warn',
      check: 'nftables',
      message: `${describeBlocker(blocker, base)} ${parts.join('; ')}`,
      fix: fixFor(base, index, ctx.bridge),
    };
  });
  findings.push(...bridgeFamilyFindings(index, ctx.bridge));
  if (findings.length === 0) {
    findings.push({
      severity: 'ok',
      check: 'nftables',
      message: `no other nftables base chain drops ${ctx.bridge}'s DHCP, DNS or forwarded traffic (${chains.length} checked)`,
      fix: '',
    });
  }
  return findings;
}

// ---- listeners (ss) ---------------------------------------------------------------------------------------------

export interface Listener {
  proto?: 'udp' | 'tcp';
  /** '0.0.0.0', '*', '[::]', '10.10.0.1', … as ss prints it */
  address: string;
  /** the SO_BINDTODEVICE device (the `%dev` suffix) */
  device?: string;
  port: number;
  process?: string;
  pid?: number;
}

/** Parses `ss -Hl[t][u]np` output (with or without the Netid column). Unparsable lines are skipped. */
export function parseSsListeners(text: string): Listener[] {
  const listeners: Listener[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    let proto: Listener['proto'];
    if (fields[0] === 'udp' || fields[0] === 'tcp') proto = fields.shift() as 'udp' | 'tcp';
    if (fields.length < 5 || !/^\d+$/.test(fields[1] ?? '')) continue; // state, recv-q, send-q, local, peer
    const local = /^(.*?)(?:%([^:\]]+))?:(\d+|\*)$/.exec(fields[3]!);
    if (!local || local[3] === '*') continue;
    const users = /users:\(\("([^"]*)",pid=(\d+)/.exec(fields.slice(5).join(' '));
    listeners.push({
      ...(proto ? { proto } : {}),
      address: local[1]!,
      ...(local[2] ? { device: local[2] } : {}),
      port: Number(local[3]),
      ...(users ? { process: users[1]!, pid: Number(users[2]) } : {}),
    });
  }
  return listeners;
}

/** Processes that are natd itself when it runs (it is a Node program). */
const NATD_PROCESS = /^(?:natd|node)$/;

/**
 * Who else holds udp 67 or port 53 where natd needs them: bound to the bridge, on its address, or on every IPv4
 * address without a device (such a socket also gets the guests' packets and makes natd's bind fail). Sockets bound
 * to another device (libvirt's dnsmasq on virbr0), to loopback (systemd-resolved) or IPv6-only are fine.
 */
export function diagnoseListeners(ssOutput: string, ctx: { bridge: string; gateway?: string }): Finding[] {
  const findings: Finding[] = [];
  for (const l of parseSsListeners(ssOutput)) {
    if (l.port !== 53 && !(l.port === 67 && l.proto !== 'tcp')) continue;
    const onBridge = l.device === ctx.bridge;
    const wildcard = l.device === undefined && (l.address === '0.0.0.0' || l.address === '*');
    const onGateway = ctx.gateway !== undefined && l.address === ctx.gateway && (l.device === undefined || onBridge);
    if (!onBridge && !wildcard && !onGateway) continue;
    const who = l.process ? `${l.process} (pid ${l.pid})` : 'a process ss could not name (run as root)';
    const where = `${l.proto ? `${l.proto} ` : ''}${l.address}${l.device ? `%${l.device}` : ''}:${l.port}`;
    const service = l.port === 67 ? 'DHCP' : 'DNS';
    if (l.process && NATD_PROCESS.test(l.process)) {
      findings.push({ severity: 'ok', check: 'listeners', message: `${who} holds ${where}: natd itself, when it is running`, fix: '' });
      continue;
    }
    findings.push({
      severity: 'error',
      check: 'listeners',
      message: `${who} holds ${where}: a second ${service} server for ${ctx.bridge}'s guests${wildcard ? ' (it listens on every interface)' : ''}`,
      fix:
        l.process === 'dnsmasq'
          ? `stop that dnsmasq on ${ctx.bridge}: for a system dnsmasq add 'except-interface=${ctx.bridge}' and 'bind-interfaces' to /etc/dnsmasq.d/${ctx.bridge}.conf and restart it; for the recipe's instance, systemctl disable --now it; for libvirt, virsh net-destroy the network using ${ctx.bridge}`
          : `stop ${l.process ?? 'that process'} or bind it to other interfaces only`,
    });
  }
  if (findings.length === 0) {
    findings.push({ severity: 'ok', check: 'listeners', message: `no other process holds udp 67 or port 53 on ${ctx.bridge}`, fix: '' });
  }
  return findings;
}

// ---- sysctls ----------------------------------------------------------------------------------------------------

/**
 * net.ipv4.ip_forward. natd switches it on at start, so off before natd runs is only a warning; off while natd runs
 * means something switched it back (sysctl --system with a file setting 0, another tool) and guests are cut off.
 */
export function diagnoseSysctl(values: { ipForward: string | undefined; natdRunning?: boolean }): Finding[] {
  const persist = 'echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-natd.conf && sysctl --system (and look for a file setting it to 0)';
  const value = values.ipForward?.trim();
  if (value === '1') return [{ severity: 'ok', check: 'sysctl', message: 'net.ipv4.ip_forward is 1', fix: '' }];
  if (value === undefined) return [{ severity: 'warn', check: 'sysctl', message: 'cannot read net.ipv4.ip_forward', fix: 'run natd doctor as root' }];
  if (values.natdRunning) {
    return [{ severity: 'error', check: 'sysctl', message: `net.ipv4.ip_forward is ${value} while natd runs: something switched it off, guests cannot reach the outside`, fix: persist }];
  }
  return [{ severity: 'warn', check: 'sysctl', message: `net.ipv4.ip_forward is ${value}; natd switches it on when it starts`, fix: persist }];
}

/**
 * br_netfilter: with bridge-nf-call-iptables=1, frames bridged between guests also traverse the ip/inet forward
 * chains, so a forward policy drop elsewhere (Docker sets one) cuts guest-to-guest traffic. Undefined value: the
 * module is not loaded, nothing to worry about.
 */
export function diagnoseBridgeNetfilter(values: { callIptables: string | undefined; bridge: string }): Finding[] {
  const value = values.callIptables?.trim();
  if (value === undefined || value === '0') {
    return [{ severity: 'ok', check: 'bridge-netfilter', message: 'bridged frames do not pass through the ip filters (bridge-nf-call-iptables off or br_netfilter not loaded)', fix: '' }];
  }
  return [
    {
      severity: 'warn',
      check: 'bridge-netfilter',
      message: `net.bridge.bridge-nf-call-iptables is ${value}: traffic between ${values.bridge}'s guests also passes the forward chains of every table, so a forward drop there cuts guest-to-guest traffic`,
      fix: 'if nothing needs it (Docker does for its own bridges), sysctl -w net.bridge.bridge-nf-call-iptables=0 and persist it in /etc/sysctl.d; otherwise make sure the forward chains accept the bridge (see the nftables findings)',
    },
  ];
}

// ---- issue 14: IPv6 forwarding and router advertisements --------------------------------------------------------

/**
 * With net.ipv6.conf.all.forwarding=1 (natd sets it when serving IPv6) the kernel ignores RAs on interfaces with
 * accept_ra=1; one whose default route came from an RA loses it when the route's lifetime ends. natd sets
 * accept_ra=2 on those at start; this finds them when something else turned forwarding on, or undid natd's fix.
 */
export function diagnoseIpv6(values: { forwarding: string | undefined; raInterfaces: readonly { dev: string; acceptRa: string | undefined }[] }): Finding[] {
  const forwarding = values.forwarding?.trim();
  if (forwarding === undefined) return [{ severity: 'ok', check: 'ipv6', message: 'IPv6 is disabled on this host', fix: '' }];
  const findings: Finding[] = [];
  for (const { dev, acceptRa } of values.raInterfaces) {
    if (acceptRa?.trim() !== '1') continue;
    const fix = `sysctl -w net.ipv6.conf.${dev}.accept_ra=2 and persist it in /etc/sysctl.d (natd does this itself when it starts with --ipv6/--subnet6)`;
    findings.push(
      forwarding === '1'
        ? { severity: 'error', check: 'ipv6', message: `${dev} has its IPv6 default route from a router advertisement but accept_ra=1 while IPv6 forwarding is on: the kernel ignores further RAs there, and the host loses that route when its lifetime ends`, fix }
        : { severity: 'warn', check: 'ipv6', message: `${dev} has its IPv6 default route from a router advertisement with accept_ra=1: turning IPv6 forwarding on (natd --ipv6) would make the kernel ignore RAs there`, fix },
    );
  }
  if (findings.length === 0) {
    findings.push({ severity: 'ok', check: 'ipv6', message: `net.ipv6.conf.all.forwarding is ${forwarding}; no interface relying on router advertisements would lose its default route`, fix: '' });
  }
  return findings;
}

// ---- gathering --------------------------------------------------------------------------------------------------

export interface DoctorOptions {
  bridge: string;
  /** the bridge's gateway address and subnet; default: read from the bridge */
  subnet?: { gateway: number; subnet: Subnet };
  /** natd's table; default `natd-<bridge>` */
  ownTable?: string;
  exec?: Exec;
  /** reads a /proc file; undefined when missing */
  readFile?: (path: string) => Promise<string | undefined>;
  /** issue 14: check routed IPv6 (--ipv6-mode routed), before natd runs; natd's table says so once it runs */
  ipv6Mode?: string;
  /** issue 14: the routed prefix's gateway/64 when the bridge does not have it yet */
  subnet6?: string;
}

const defaultReadFile = (path: string): Promise<string | undefined> => fsReadFile(path, 'utf8').catch(() => undefined);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The bridge's first IPv4 address, from `ip -j -4 addr show dev BR`. */
function bridgeAddress(ipJson: unknown): { gateway: number; subnet: Subnet } | undefined {
  const links = Array.isArray(ipJson) ? ipJson : [];
  for (const link of links as { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[]) {
    for (const a of link.addr_info ?? []) {
      const gateway = a.family === 'inet' && typeof a.local === 'string' ? parseIpv4(a.local) : undefined;
      if (gateway !== undefined && typeof a.prefixlen === 'number') return { gateway, subnet: makeSubnet(gateway, a.prefixlen) };
    }
  }
  return undefined;
}

function defaultRouteDevice(ipJson: unknown): string | undefined {
  const routes = Array.isArray(ipJson) ? (ipJson as { dev?: unknown }[]) : [];
  return routes.map((r) => r.dev).find((d): d is string => typeof d === 'string');
}

/** Gathers the ruleset, listeners and sysctls and diagnoses them. exitCode is 1 when any finding is an error. */
export async function runDoctor(opts: DoctorOptions): Promise<{ findings: Finding[]; exitCode: number }> {
  const exec = opts.exec ?? defaultExec;
  const readFile = opts.readFile ?? defaultReadFile;
  const ownTable = opts.ownTable ?? tableNameFor(opts.bridge);
  const findings: Finding[] = [];

  let address = opts.subnet;
  if (!address) {
    const shown = await exec('ip', ['-j', '-4', 'addr', 'show', 'dev', opts.bridge]);
    address = shown.code === 0 ? bridgeAddress(parseJson(shown.stdout)) : undefined;
    if (!address) {
      findings.push({
        severity: 'warn',
        check: 'bridge',
        message: `${opts.bridge} ${shown.code === 0 ? 'has no IPv4 address' : 'does not exist'} yet (natd sets it up at start); checks below assume any guest address`,
        fix: '',
      });
    }
  }
  const route = await exec('ip', ['-j', '-4', 'route', 'show', 'default']);
  const uplink = route.code === 0 ? defaultRouteDevice(parseJson(route.stdout)) : undefined;

  const listed = await exec('nft', ['-j', 'list', 'ruleset']);
  const ruleset = listed.code === 0 ? parseJson(listed.stdout) : undefined;
  let natdRunning = false;
  if (ruleset === undefined) {
    findings.push({ severity: 'warn', check: 'nftables', message: `cannot list the nftables ruleset: ${(listed.stderr || 'no JSON output').trim()}`, fix: 'run natd doctor as root' });
  } else {
    natdRunning = [...indexRuleset(ruleset).chains.values()].some((c) => c.family === 'inet' && c.table === ownTable);
    findings.push(
      ...diagnoseRuleset(ruleset, {
        bridge: opts.bridge,
        ownTable,
        ...(address ? { subnet: address.subnet, gateway: address.gateway } : {}),
        ...(uplink ? { uplink } : {}),
      }),
    );
  }

  const ss = await exec('ss', ['-Hltunp']);
  if (ss.code === 0) findings.push(...diagnoseListeners(ss.stdout, { bridge: opts.bridge, ...(address ? { gateway: formatIpv4(address.gateway) } : {}) }));
  else findings.push({ severity: 'warn', check: 'listeners', message: `cannot list listening sockets (ss): ${ss.stderr.trim()}`, fix: 'install iproute2 (ss)' });

  findings.push(...diagnoseSysctl({ ipForward: await readFile('/proc/sys/net/ipv4/ip_forward'), natdRunning }));
  // issue 14: interfaces with a default route from an RA, and their accept_ra
  const raRoutes = await exec('ip', ['-6', '-j', 'route', 'show', 'default', 'proto', 'ra']);
  const raDevs = raRoutes.code === 0 ? [...new Set(((parseJson(raRoutes.stdout) ?? []) as { dev?: unknown }[]).map((r) => r.dev).filter((d): d is string => typeof d === 'string'))] : [];
  const raInterfaces = await Promise.all(raDevs.map(async (dev) => ({ dev, acceptRa: await readFile(`/proc/sys/net/ipv6/conf/${dev}/accept_ra`) })));
  findings.push(...diagnoseIpv6({ forwarding: await readFile('/proc/sys/net/ipv6/conf/all/forwarding'), raInterfaces }));
  findings.push(...(await routedIpv6Findings(opts, exec, readFile, ruleset, ownTable, natdRunning))); // issue 14
  findings.push(...diagnoseBridgeNetfilter({ callIptables: await readFile('/proc/sys/net/bridge/bridge-nf-call-iptables'), bridge: opts.bridge }));

  return { findings, exitCode: findings.some((f) => f.severity === 'error') ? 1 : 0 };
}

/** issue 14: the routed-IPv6 checks (doctor-ipv6.ts), when doctor is asked for them or natd's table is routed. */
async function routedIpv6Findings(opts: DoctorOptions, exec: Exec, readFile: (p: string) => Promise<string | undefined>, ruleset: unknown, ownTable: string, natdRunning: boolean): Promise<Finding[]> {
  const inTable = routedPrefixInTable(ruleset, ownTable);
  if (opts.ipv6Mode !== 'routed' && inTable === undefined) return [];
  const listed = await exec('ip', ['-6', '-j', 'addr', 'show', 'scope', 'global']);
  const links = (listed.code === 0 ? parseJson(listed.stdout) : []) as { ifname?: string; addr_info?: { local?: string; prefixlen?: number }[] }[] | undefined;
  const addresses = (Array.isArray(links) ? links : []).flatMap((l) => (l.addr_info ?? []).flatMap((a) => (typeof a.local === 'string' && typeof a.prefixlen === 'number' && l.ifname ? [{ dev: l.ifname, local: a.local, prefixlen: a.prefixlen }] : [])));
  const onBridge = addresses.find((a) => a.dev === opts.bridge && a.prefixlen === 64);
  const subnet6 = opts.subnet6 ?? (onBridge ? `${onBridge.local}/64` : inTable ? `${inTable}1/64` : undefined);
  return diagnoseRoutedIpv6({ bridge: opts.bridge, subnet6, forwarding: await readFile('/proc/sys/net/ipv6/conf/all/forwarding'), addresses, natdRunning });
}

/** Human output: one block per finding, worst first. */
export function formatFindings(findings: readonly Finding[]): string {
  const order: Record<Severity, number> = { error: 0, warn: 1, ok: 2 };
  const label: Record<Severity, string> = { error: 'ERROR', warn: 'WARN ', ok: 'ok   ' };
  return (
    [...findings]
      .sort((a, b) => order[a.severity] - order[b.severity])
      .map((f) => `${label[f.severity]} ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ''}`)
      .join('\n') + '\n'
  );
}
