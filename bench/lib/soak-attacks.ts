/**
 * The soak's cast (bench/soak.ts): the hostile guests of issue 12, each an Attack that repeats one bounded round
 * (a fixed count of packets over a fixed time, then a pause) until stopped, and the well-behaved neighbours whose
 * lost answers the soak reports. Every process runs inside the soak's namespaces through Topology.spawn, is killed by
 * PID on stop() or at its round's time limit, and prints one JSON line that is summed into the attack's counts.
 *
 * The attacks only use what natd has today (no flag of the DHCP/name/host fixes): they perform the attack and count
 * what they see; judging natd is the soak's job (RSS, the neighbours' answers, natd alive).
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Topology } from '../../src/demo/topology.js';

export interface Attack {
  readonly name: string;
  /** what it does, for the report */
  readonly what: string;
  start(topology: Topology): void;
  /** Ends the current round at once (its processes are killed by PID) and resolves when nothing is left running. */
  stop(): Promise<void>;
  /** rounds run, rounds that failed (a tool exiting non-zero), and the sums of the tools' JSON fields */
  counts(): Record<string, number>;
}

export interface SoakAddresses {
  gateway: string;
  /** the bridge subnet's broadcast and network address */
  broadcast: string;
  network: string;
  domain: string;
}

export interface SoakTools {
  fixtures: string;
  node: string;
  python: string;
  workDir: string;
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv in a namespace, killed (SIGKILL, by PID) after timeoutMs or when `running` is cleared by stop(). */
export function runTool(topology: Topology, ns: string, argv: string[], timeoutMs: number, running?: Set<ChildProcess>): Promise<ToolResult> {
  const child = topology.spawn(ns, argv);
  running?.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d.slice(0, 1 << 20)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 1 << 16)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      running?.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The last line of a tool's output as numbers (JSON object fields, or a bare number as `sent`). */
export function summaryOf(stdout: string): Record<string, number> {
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed: unknown = JSON.parse(last);
    if (typeof parsed === 'number') return { sent: parsed };
    if (parsed && typeof parsed === 'object') {
      return Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === 'number' || typeof v === 'boolean').map(([k, v]) => [k, Number(v)]));
    }
  } catch {
    const sent = /^sent (\d+)$/.exec(last);
    if (sent) return { sent: Number(sent[1]) };
  }
  return {};
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One repeated, bounded round. `round` returns what it counted; a round that throws is counted as failed and the
 * attack carries on after its pause.
 */
export class RoundsAttack implements Attack {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly totals: Record<string, number> = { rounds: 0, failedRounds: 0, interruptedRounds: 0 };
  /** the processes of the round in progress: stop() kills them */
  readonly running = new Set<ChildProcess>();
  private wake: (() => void) | undefined;

  constructor(
    readonly name: string,
    readonly what: string,
    private readonly round: (topology: Topology, index: number, running: Set<ChildProcess>) => Promise<Record<string, number>>,
    private readonly pauseMs = 1000,
    /** stop() lets the round in progress finish (a neighbour's load) instead of killing it (an attack) */
    private readonly finishRoundOnStop = false,
  ) {}

  start(topology: Topology): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = (async () => {
      while (!this.stopping) {
        const index = this.totals.rounds!;
        this.totals.rounds!++;
        try {
          const counted = await this.round(topology, index, this.running);
          // a round cut short by stop() counted nothing it could be judged by
          if (this.stopping && !this.finishRoundOnStop) this.totals.interruptedRounds!++;
          else add(this.totals, counted);
        } catch (err) {
          if (this.stopping && !this.finishRoundOnStop) this.totals.interruptedRounds!++;
          else this.totals.failedRounds!++;
          if (!this.stopping) process.stderr.write(`soak: ${this.name} round failed: ${(err as Error).message.slice(0, 300)}\n`);
        }
        if (!this.stopping) await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, this.pauseMs); });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    if (!this.finishRoundOnStop) for (const child of this.running) child.kill('SIGKILL');
    await this.loop;
    this.loop = undefined;
  }

  counts(): Record<string, number> {
    return { ...this.totals };
  }
}

/** A round that runs one tool and counts its JSON summary; a non-zero exit (not killed by stop) is a failure. */
function toolRound(ns: () => string, argv: (index: number) => string[], timeoutMs: number) {
  return async (topology: Topology, index: number, running: Set<ChildProcess>): Promise<Record<string, number>> => {
    const r = await runTool(topology, ns(), argv(index), timeoutMs, running);
    if (r.code !== 0 && r.code !== null) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
    const complaint = r.stderr.trim().split('\n')[0];
    if (complaint && index === 0) process.stderr.write(`soak: ${argv(index)[2] ?? ''}: ${complaint.slice(0, 200)}\n`);
    return summaryOf(r.stdout);
  };
}

export interface SoakVms {
  /** DNS and RA attacker (static address) */
  dnsAttacker: string;
  /**
   * the never-answered-zone flood's own vm: its queries stay pending for the whole 4 s upstream budget, so from the
   * same address they would take the per-client allowance of the attacks that follow it in the rotation
   */
  upstreamFlooder: string;
  /** the DNS neighbour (static address): its listener is where a broadcast answer would land */
  dnsNeighbour: string;
  /** DHCP attacker (static address, to send broadcasts from) */
  dhcpAttacker: string;
  /** its own address, the giaddr of the relayed packets (so replies to the "relay" come back to it) */
  dhcpAttackerAddress: string;
  /** a guest claiming names with udhcpc -x hostname:NAME */
  nameClaimer: string;
  /** the first holder of the name `db` */
  dbHolder: string;
  /** db holder's leased address, known once it has its lease */
  dbHolderAddress: () => string | undefined;
}

export function dnsAttacks(vms: SoakVms, at: SoakAddresses, tools: SoakTools): Attack[] {
  const dnsTool = path.join(tools.fixtures, 'dns-attack.mjs');
  const node = (mode: string, ...args: string[]): string[] => [tools.node, dnsTool, mode, at.gateway, ...args];
  const attacker = () => vms.dnsAttacker;
  const spoofedSources = [at.broadcast, at.network, '255.255.255.255', '0.0.0.0', '224.0.0.251'];
  return [
    new RoundsAttack('dns-tcp-pipeline', 'row 2: one TCP connection pipelines 2,000 queries for a ~60 KB TXT and never reads (3 s)',
      toolRound(attacker, () => node('tcp-pipeline', '2000', '3000'), 20_000)),
    new RoundsAttack('dns-port0-flood', 'row 3: 20,000 queries from UDP source port 0 over 5 s (raw socket)',
      toolRound(attacker, () => [tools.python, path.join(tools.fixtures, 'dns-port-zero.py'), at.gateway, '20000', '5'], 20_000)),
    new RoundsAttack('dns-upstream-flood', 'row 7: 6,000 unique names in a zone that never answers, as fast as the socket goes',
      toolRound(() => vms.upstreamFlooder, () => node('udp-unique-flood', '6000'), 20_000), 2000),
    new RoundsAttack('dns-large-answers', 'row 4: 200 new names with ~60 KB answers per round over 4 TCP connections',
      toolRound(attacker, (i) => node('tcp-names', '200', '4', `s${process.pid}r${i}n`), 60_000)),
    new RoundsAttack('dns-tcp-slots', 'row 7: 80 TCP connections, each busy with a never-answered query (3 s)',
      toolRound(attacker, () => node('tcp-slots', '80', '3000'), 20_000)),
    new RoundsAttack('dns-broadcast-spoof', 'row 8: TXT/ANY queries (EDNS 4096) spoofed from broadcast, network, 0.0.0.0, multicast; the neighbour listens',
      async (topology, _index, running) => {
        const listener = runTool(topology, vms.dnsNeighbour, node('listen', '40053', '4000'), 15_000, running);
        await sleep(700); // node start-up in the neighbour before the spoofed queries go out
        const sent = await runTool(topology, vms.dnsAttacker,
          [tools.python, path.join(tools.fixtures, 'dns-spoof.py'), at.gateway, '40053', spoofedSources.join(',')], 30_000, running);
        const heard = summaryOf((await listener).stdout);
        if (sent.code !== 0 && sent.code !== null) throw new Error(`spoof exit ${sent.code}: ${sent.stderr.trim().slice(-300)}`);
        return { sent: summaryOf(sent.stdout).sent ?? 0, answersSeenByNeighbour: heard.received ?? 0 };
      }),
  ];
}

export function dhcpAttacks(vms: SoakVms, at: SoakAddresses, tools: SoakTools): Attack[] {
  const dhcpTool = path.join(tools.fixtures, 'dhcp-attack.mjs');
  const node = (mode: string, ...args: string[]): string[] => [tools.node, dhcpTool, mode, at.gateway, ...args];
  const attacker = () => vms.dhcpAttacker;
  return [
    new RoundsAttack('dhcp-discover-flood', 'row 5: DISCOVERs from 250 invented MACs over 5 s',
      toolRound(attacker, () => node('discover-flood', '250', '5'), 20_000)),
    new RoundsAttack('dhcp-decline', 'row 5: 50 DISCOVER+DECLINE pairs over 5 s (each offered address declined)',
      toolRound(attacker, () => node('decline-pairs', '50', '5'), 20_000)),
    new RoundsAttack('dhcp-relayed', 'row 9: 100 DISCOVERs with giaddr set (as from a relay) over 5 s; replies counted',
      toolRound(attacker, () => node('relayed', '100', '5', vms.dhcpAttackerAddress), 20_000)),
    new RoundsAttack('dhcp-off-subnet-ciaddr', 'row 9: 100 REQUEST/INFORM with ciaddr 192.0.2.77 (off the subnet) over 5 s',
      toolRound(attacker, () => node('off-subnet', '100', '5', '192.0.2.77'), 20_000)),
  ];
}

/** busybox udhcpc once (obtain or renew), with the test event script; resolves with the leased address or undefined. */
export async function udhcpc(topology: Topology, ns: string, tools: SoakTools, options: { hostname?: string; requestIp?: string; running?: Set<ChildProcess> } = {}): Promise<string | undefined> {
  const log = path.join(tools.workDir, `udhcpc-${path.basename(ns)}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.log`);
  const argv = ['env', `UDHCPC_LOG=${log}`, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-A', '1',
    '-s', path.join(tools.fixtures, 'udhcpc-script.sh'),
    ...(options.hostname ? ['-x', `hostname:${options.hostname}`] : []),
    ...(options.requestIp ? ['-r', options.requestIp] : [])];
  const r = await runTool(topology, ns, argv, 15_000, options.running);
  if (r.code !== 0) return undefined;
  const { readFileSync, rmSync } = await import('node:fs');
  try {
    const bound = readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('event=bound') || l.startsWith('event=renew')).pop();
    return /\bip=(\S+)/.exec(bound ?? '')?.[1];
  } catch {
    return undefined;
  } finally {
    rmSync(log, { force: true });
  }
}

/** dig from a namespace; the answer section's first address, and the header flags. */
async function dig(topology: Topology, ns: string, gateway: string, name: string, type = 'A'): Promise<{ address: string | undefined; flags: string; status: string }> {
  const r = await runTool(topology, ns, ['dig', '+time=2', '+tries=1', `@${gateway}`, name, type], 10_000);
  const flags = /;; flags: ([^;]*);/.exec(r.stdout)?.[1] ?? '';
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'no-answer';
  const address = /^\S+\s+\d+\s+IN\s+A\s+(\S+)$/m.exec(r.stdout)?.[1];
  return { address, flags, status };
}

export function nameAttack(vms: SoakVms, at: SoakAddresses, tools: SoakTools): Attack {
  return new RoundsAttack('name-claims', 'row 6: a second guest claims hostname db (held by another lease), then wpad, localhost, com (udhcpc -x hostname:NAME); checked with dig',
    async (topology, _index, running) => {
      const seen: Record<string, number> = { claims: 0, leases: 0, dbStillFirstHolder: 0, dbTakenByClaimer: 0, wpadPublished: 0, localhostPublished: 0, comAuthoritative: 0 };
      for (const name of ['db', 'wpad', 'localhost', 'com']) {
        seen.claims!++;
        const address = await udhcpc(topology, vms.nameClaimer, tools, { hostname: name, running });
        if (!address) continue;
        seen.leases!++;
        const asked = await dig(topology, vms.dnsNeighbour, at.gateway, name === 'com' ? 'com' : `${name}.${at.domain}`, name === 'com' ? 'DS' : 'A');
        if (name === 'db') {
          if (asked.address && asked.address === vms.dbHolderAddress()) seen.dbStillFirstHolder!++;
          if (asked.address === address) seen.dbTakenByClaimer!++;
        } else if (name === 'wpad' && asked.address === address) seen.wpadPublished!++;
        else if (name === 'localhost' && asked.address === address) seen.localhostPublished!++;
        // natd answering the TLD itself (an authoritative empty NOERROR) instead of forwarding: DNSSEC for .com breaks
        // for the guests. The fake upstream refuses `com DS`, so a forwarded question comes back REFUSED.
        else if (name === 'com' && /\baa\b/.test(asked.flags) && asked.status === 'NOERROR') seen.comAuthoritative!++;
      }
      return seen;
    }, 2000);
}

export function hostAttack(vms: SoakVms, tools: SoakTools, hostBridge: string): Attack {
  return new RoundsAttack('host-ra', 'row 1: Router Advertisement (high preference, 2001:db8:bad::/64) to ff02::1 from a guest, 3 per round; host checked',
    async (topology, _index, running) => {
      const r = await runTool(topology, vms.dnsAttacker, [tools.python, path.join(tools.fixtures, 'host-ra.py'), 'eth0', '3', '1'], 30_000, running);
      if (r.code !== 0 && r.code !== null) throw new Error(`host-ra exit ${r.code}: ${r.stderr.trim().slice(-300)}`);
      await sleep(1500); // the host's autoconf and route take a moment after the last RA
      const routes = await runTool(topology, topology.host, ['ip', '-6', 'route', 'show', 'default'], 5000);
      const addresses = await runTool(topology, topology.host, ['ip', '-6', 'addr', 'show', 'dev', hostBridge], 5000);
      return {
        sent: summaryOf(r.stdout).sent ?? 0,
        hostDefaultRouteViaGuest: /via fe80:/.test(routes.stdout) ? 1 : 0,
        hostAddressInGuestPrefix: /2001:db8:bad:/.test(addresses.stdout) ? 1 : 0,
      };
    }, 2000);
}

/**
 * The well-behaved DNS neighbour: paced queries in rounds of 5 s, 100/s for a cached name and 20/s for new names
 * (cache misses that go upstream), every answer matched by id.
 */
export function dnsNeighbourLoad(vms: SoakVms, at: SoakAddresses, tools: SoakTools): RoundsAttack {
  const dnsTool = path.join(tools.fixtures, 'dns-attack.mjs');
  return new RoundsAttack('neighbour-dns', 'a neighbour: 100 q/s for a cached name, 20 q/s for new names, answers matched by id',
    async (topology, _index, running) => {
      const [hits, misses] = await Promise.all([
        runTool(topology, vms.dnsNeighbour, [tools.node, dnsTool, 'udp-victim', at.gateway, '500', '5000', 'v.example.test'], 20_000, running),
        runTool(topology, vms.dnsNeighbour, [tools.node, dnsTool, 'udp-victim', at.gateway, '100', '5000', 'm#.example.test'], 20_000, running),
      ]);
      const h = summaryOf(hits.stdout);
      const m = summaryOf(misses.stdout);
      return {
        hitSent: h.sent ?? 0, hitAnswered: h.answered ?? 0, hitFailed: h.failed ?? 0,
        missSent: m.sent ?? 0, missAnswered: m.answered ?? 0, missFailed: m.failed ?? 0,
      };
    }, 0, true);
}

/** The well-behaved DHCP neighbour: udhcpc every 3 s, asking for the address it had (-r) once it has one. */
export function dhcpNeighbourLoad(ns: string, tools: SoakTools): RoundsAttack {
  let address: string | undefined;
  return new RoundsAttack('neighbour-dhcp', 'a neighbour vm obtaining/renewing its lease with udhcpc every 3 s',
    async (topology, _index, running) => {
      const got = await udhcpc(topology, ns, tools, { hostname: 'neighbour', ...(address ? { requestIp: address } : {}), running });
      const changed = got !== undefined && address !== undefined && got !== address;
      if (got) address = got;
      return { attempts: 1, ok: got ? 1 : 0, addressChanged: changed ? 1 : 0 };
    }, 3000, true);
}
