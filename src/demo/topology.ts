/**
 * The namespace test bench every integration test, the benchmarks and `natd demo` use.
 *
 * Layout (all inside namespaces this file creates; the main namespace is never touched):
 *
 *   vm1 (eth0) ─┐                                   ┌─ wan (eth0 198.51.100.2, .3): fake internet + upstream DNS
 *   vm2 (eth0) ─┼─ host: br0 10.77.0.1/24 ── wan0 ──┘     198.51.100.1 is the host's uplink address
 *   outsider   ─── host: lan0 10.88.0.1/24 (not on the bridge; natd must ignore it)
 *
 * Names carry the creating PID (`natdt-<pid>-<rand>-…`), so a later run removes what a crashed run left behind
 * (its PID is dead) without touching a concurrent run's namespaces. Everything is deleted by `destroy()`, by the
 * process 'exit' handler, and on SIGINT/SIGTERM.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runCommand, runCommandOk, stopChild, watchOutput, type RunOptions, type RunResult, type WaitOptions, type WatchedOutput } from './process.js';

export type { RunOptions, RunResult } from './process.js';

export const NS_PREFIX = 'natdt-';
export const BRIDGE = 'br0';
export const GATEWAY = '10.77.0.1';
export const SUBNET_PREFIX = 24;
export const SUBNET = '10.77.0.0/24';
export const UPLINK_HOST = '198.51.100.1';
export const UPLINK_WAN = '198.51.100.2';
/** A second address in the wan namespace (second upstream, second server). */
export const UPLINK_WAN2 = '198.51.100.3';
// issue 14: IPv6 on the uplink (TopologyOptions.ipv6): documentation addresses, the host's default route via wan
export const UPLINK6_HOST = '2001:db8:51::1';
export const UPLINK6_WAN = '2001:db8:51::2';
export const OUTSIDER_HOST = '10.88.0.1';
export const OUTSIDER_ADDR = '10.88.0.2';

export interface Vm {
  ns: string;
  /** MAC of the vm's eth0 */
  mac: string;
  /** host-side port name on the bridge */
  port: string;
}

export interface TopologyOptions {
  vms?: number;
  /** add a non-bridge interface with an outsider namespace */
  outsider?: boolean;
  /** issue 14: IPv6 addresses on the uplink (UPLINK6_*) and the host's IPv6 default route via the wan side */
  ipv6?: boolean;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function ipSync(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function listNamespaces(): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  if (!out) return [];
  return (JSON.parse(out) as { name: string }[]).map((n) => n.name);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces left by earlier runs whose process is gone. */
export function removeStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const name of listNamespaces()) {
    const m = /^natdt-(\d+)-/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      ipSync(['netns', 'del', name]);
      removed.push(name);
    } catch {
      /* already gone */
    }
  }
  return removed;
}

const liveTopologies = new Set<Topology>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const t of liveTopologies) t.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const t of liveTopologies) t.destroySync();
      process.kill(process.pid, signal);
    });
  }
}

/** A process started with Topology.start: its child, captured output, and stop(). */
export interface Started extends WatchedOutput {
  child: ChildProcess;
  stop(graceMs?: number): Promise<number | null>;
}

export class Topology {
  readonly id: string;
  readonly host: string;
  readonly wan: string;
  readonly outsider: string | undefined;
  readonly vms: Vm[] = [];
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(options: TopologyOptions) {
    this.id = `${NS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
    this.host = `${this.id}-h`;
    this.wan = `${this.id}-w`;
    this.outsider = options.outsider ? `${this.id}-x` : undefined;
  }

  /** Builds the whole layout; on any failure deletes what was made and rethrows. */
  static create(options: TopologyOptions = {}): Topology {
    if (!isRoot()) throw new Error('the namespace test bench needs root (ip netns add)');
    removeStaleNamespaces();
    installExitHooks();
    const t = new Topology(options);
    liveTopologies.add(t);
    try {
      t.build(options.vms ?? 2);
      if (options.ipv6) t.addUplinkIpv6(); // issue 14
    } catch (err) {
      t.destroySync();
      throw err;
    }
    return t;
  }

  private addNamespace(name: string): void {
    ipSync(['netns', 'add', name]);
    this.namespaces.push(name);
    ipSync(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private build(vmCount: number): void {
    const { host, wan } = this;
    this.addNamespace(host);
    this.addNamespace(wan);

    // bridge with a pinned MAC: this kernel has no dummy link type, so set the bridge address explicitly
    ipSync(['-n', host, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    ipSync(['-n', host, 'link', 'set', BRIDGE, 'address', '52:54:00:77:00:01']);
    ipSync(['-n', host, 'addr', 'add', `${GATEWAY}/${SUBNET_PREFIX}`, 'brd', '+', 'dev', BRIDGE]);
    ipSync(['-n', host, 'link', 'set', BRIDGE, 'up']);

    // uplink: host wan0 <-> wan eth0, the host's default route points at the wan side
    ipSync(['link', 'add', 'wan0', 'netns', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', wan]);
    ipSync(['-n', host, 'addr', 'add', `${UPLINK_HOST}/24`, 'dev', 'wan0']);
    ipSync(['-n', host, 'link', 'set', 'wan0', 'up']);
    ipSync(['-n', wan, 'addr', 'add', `${UPLINK_WAN}/24`, 'dev', 'eth0']);
    ipSync(['-n', wan, 'addr', 'add', `${UPLINK_WAN2}/24`, 'dev', 'eth0']);
    ipSync(['-n', wan, 'link', 'set', 'eth0', 'up']);
    ipSync(['-n', host, 'route', 'add', 'default', 'via', UPLINK_WAN]);

    for (let i = 1; i <= vmCount; i++) this.addVm(i);

    if (this.outsider) {
      ipSync(['netns', 'add', this.outsider]);
      this.namespaces.push(this.outsider);
      ipSync(['-n', this.outsider, 'link', 'set', 'lo', 'up']);
      ipSync(['link', 'add', 'lan0', 'netns', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.outsider]);
      ipSync(['-n', host, 'addr', 'add', `${OUTSIDER_HOST}/24`, 'dev', 'lan0']);
      ipSync(['-n', host, 'link', 'set', 'lan0', 'up']);
      ipSync(['-n', this.outsider, 'link', 'set', 'eth0', 'address', '52:54:00:88:00:02', 'up']);
    }
  }

  /** issue 14: IPv6 on host wan0 and wan eth0 (no DAD: usable at once), the host's IPv6 default route via wan. */
  private addUplinkIpv6(): void {
    ipSync(['-n', this.host, 'addr', 'add', `${UPLINK6_HOST}/64`, 'dev', 'wan0', 'nodad']);
    ipSync(['-n', this.wan, 'addr', 'add', `${UPLINK6_WAN}/64`, 'dev', 'eth0', 'nodad']);
    ipSync(['-n', this.host, '-6', 'route', 'add', 'default', 'via', UPLINK6_WAN, 'dev', 'wan0']);
  }

  /** Adds one more vm namespace joined to the bridge; returns it. */
  addVm(index = this.vms.length + 1): Vm {
    const ns = `${this.id}-v${index}`;
    const port = `vm${index}`;
    const mac = `52:54:00:77:10:${index.toString(16).padStart(2, '0')}`;
    this.addNamespace(ns);
    ipSync(['link', 'add', port, 'netns', this.host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ipSync(['-n', this.host, 'link', 'set', port, 'master', BRIDGE, 'up']);
    ipSync(['-n', ns, 'link', 'set', 'eth0', 'address', mac, 'up']);
    const vm = { ns, mac, port };
    this.vms.push(vm);
    return vm;
  }

  vm(index: number): Vm {
    const vm = this.vms[index - 1];
    if (!vm) throw new Error(`no vm ${index}`);
    return vm;
  }

  /** Runs a command inside a namespace to its end (process.ts runCommand: never rejects on exit code, 124 on timeout). */
  run(ns: string, argv: string[], options: RunOptions = {}): Promise<RunResult> {
    return runCommand(['ip', 'netns', 'exec', ns, ...argv], options);
  }

  /** Like run, but throws with the command's stderr when it exits non-zero. */
  runOk(ns: string, argv: string[], options: RunOptions = {}): Promise<string> {
    return runCommandOk(['ip', 'netns', 'exec', ns, ...argv], options, ns);
  }

  /** Starts a long-running process in a namespace; it is killed (by PID) in destroy(). */
  spawn(ns: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * spawn with its output captured (process.ts watchOutput); with `ready`, resolves once the process prints it (and
   * rejects, with its output, when it exits first or takes longer than timeoutMs).
   */
  async start(ns: string, argv: string[], options: SpawnOptions & WaitOptions & { ready?: string | RegExp } = {}): Promise<Started> {
    const { ready, timeoutMs, what, stream, ...spawnOptions } = options;
    const child = this.spawn(ns, argv, spawnOptions);
    const watched = watchOutput(child);
    const started: Started = { ...watched, child, stop: (graceMs?: number) => this.stop(child, graceMs) };
    if (ready !== undefined) {
      await watched.waitForOutput(ready, { what: what ?? argv.join(' '), ...(timeoutMs ? { timeoutMs } : {}), ...(stream ? { stream } : {}) });
    }
    return started;
  }

  /** Stops a spawned child by PID: SIGTERM, then SIGKILL after graceMs. */
  stop(child: ChildProcess, graceMs = 3000): Promise<number | null> {
    return stopChild(child, graceMs);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c, 2000)));
    this.destroySync();
  }

  /** Synchronous teardown (exit handler): kills our children by PID and deletes our namespaces. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of [...this.namespaces].reverse()) {
      try {
        ipSync(['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
    liveTopologies.delete(this);
  }
}
