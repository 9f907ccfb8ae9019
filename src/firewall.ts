/**
 * natd's firewall component: derives the nftables table from the desired inputs (config forwards plus forwards
 * added at runtime), applies it whole and verifies it at start and reload, changes forwards at runtime with element
 * batches only, heals the table when something else removes it, and deletes it on stop.
 * Runtime forwards are persisted (inputs, not rules) in the state dir and included in every later full apply.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';
import { ErrorCodes, NatdError } from './errors.js';
import type { Logger } from './log.js';
import type { BridgeInfo } from './net/bridge.js';
import { formatIpv4 } from './net/ipv4.js';
import { writeFileAtomic } from './state/atomic-file.js';
import { formatForwardSpec, parseForwardSpec, resolveForward, type PortForward, type PortForwardSpec } from './nft/forward-spec.js';
import { buildForwardChange, buildRuleset, forwardKey, TABLE_FAMILY, type RulesetInput } from './nft/ruleset.js';
import { applyAndVerify, applyBatch, deleteTable, tableIntact } from './nft/apply.js';
import { startHealer, type Healer } from './nft/healer.js';

const RUNTIME_FORWARDS_FILE = 'forwards.json';

export type NameResolver = (name: string) => number | undefined;

export interface FirewallOptions {
  config: Config;
  bridge: BridgeInfo;
  logger: Logger;
  resolveName: NameResolver;
  healIntervalMs?: number;
}

export interface ForwardView {
  spec: string;
  protocol: string;
  host: string;
  guest: string;
  source: 'config' | 'runtime';
}

export function tableNameFor(bridge: string): string {
  return `natd-${bridge}`;
}

/** Ports whose capture on every local address would swallow the guests' own DNS/DHCP traffic to the gateway. */
function checkNotServicePort(forward: PortForward, spec: string): void {
  const service = forward.hostPort === 53 || (forward.protocol === 'udp' && forward.hostPort === 67);
  if (service && forward.hostAddress === undefined) {
    throw new NatdError(ErrorCodes.CONFIG, `forward "${spec}": port ${forward.hostPort} on every local address would capture the guests' DNS/DHCP; give a host address (e.g. udp:198.51.100.1:53=web:53)`);
  }
}

/** The map key of a spec's host side (the guest does not take part in it). */
function hostKeyOf(spec: PortForwardSpec): string {
  return forwardKey({ protocol: spec.protocol, hostPort: spec.hostPort, guestAddress: 0, guestPort: spec.guestPort, ...(spec.hostAddress === undefined ? {} : { hostAddress: spec.hostAddress }) });
}

export class Firewall {
  private config: Config;
  private resolveName: NameResolver;
  private runtimeSpecs: string[] = [];
  private healer: Healer | undefined;
  /** what is in the kernel now: heals restore exactly this, element changes start from it */
  private applied: RulesetInput | undefined;
  private applies = 0;
  private closed = false;
  /** serialises applies, element changes and heals: nft batches must not interleave */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: FirewallOptions) {
    this.config = opts.config;
    this.resolveName = opts.resolveName;
  }

  private get table(): string {
    return tableNameFor(this.opts.bridge.name);
  }

  private get runtimeFile(): string {
    return path.join(this.config.stateDir, RUNTIME_FORWARDS_FILE);
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Resolves specs to forwards; every bad spec is named. `lenient` specs (runtime ones) that fail are skipped with
   * a warning instead: a reservation that went away must not stop the NAT for every guest.
   */
  private resolveAll(specs: readonly string[], lenient: readonly string[] = []): PortForward[] {
    const problems: string[] = [];
    const forwards: PortForward[] = [];
    const keys = new Set<string>();
    for (const spec of [...specs, ...lenient]) {
      try {
        const forward = resolveForward(parseForwardSpec(spec), this.resolveName);
        checkNotServicePort(forward, spec);
        const key = forwardKey(forward);
        if (keys.has(key)) throw new NatdError(ErrorCodes.CONFIG, `forward "${spec}": host side ${key} is already forwarded`);
        keys.add(key);
        forwards.push(forward);
      } catch (err) {
        if (!specs.includes(spec)) {
          this.opts.logger.warn('runtime port forward left out of the table', { forward: spec, error: (err as Error).message });
          continue;
        }
        problems.push((err as Error).message);
      }
    }
    if (problems.length) throw new NatdError(ErrorCodes.CONFIG, problems.join('; '));
    return forwards;
  }

  private input(forwards: PortForward[]): RulesetInput {
    return {
      table: this.table,
      bridge: this.opts.bridge.name,
      subnet: this.opts.bridge.subnet,
      gateway: this.opts.bridge.gateway,
      masqueradePorts: [this.config.masqueradePorts[0], this.config.masqueradePorts[1]],
      forwards,
      allowIpv6Forward: this.config.allowIpv6Forward,
      guestToHost: this.config.guestToHost,
    };
  }

  private currentInput(): RulesetInput {
    return this.input(this.resolveAll(this.config.forwards, this.runtimeSpecs));
  }

  async start(): Promise<void> {
    this.runtimeSpecs = await this.readRuntimeSpecs();
    await this.serial(() => this.applyFull('start'));
    this.healer = startHealer({
      check: () => this.serial(() => tableIntact(this.applied!)),
      reapply: () => this.serial(() => this.applyFull('heal', this.applied)),
      ...(this.opts.healIntervalMs ? { intervalMs: this.opts.healIntervalMs } : {}),
      logger: this.opts.logger,
    });
  }

  /** Full apply of `input` (default: derived from the current inputs). */
  private async applyFull(reason: string, input: RulesetInput = this.currentInput()): Promise<void> {
    await applyAndVerify(input);
    this.applied = input;
    this.applies++;
    this.opts.logger.info('nftables table applied', { table: `${TABLE_FAMILY} ${this.table}`, reason, forwards: input.forwards.length });
  }

  /** New config or names: validate everything first, then one full apply; on error nothing changes. */
  async reload(config: Config, resolveName: NameResolver): Promise<void> {
    const previous = { config: this.config, resolveName: this.resolveName };
    this.config = config;
    this.resolveName = resolveName;
    try {
      await this.serial(() => this.applyFull('reload'));
    } catch (err) {
      Object.assign(this, previous);
      throw err;
    }
  }

  /** Reservation names the forwards refer to: removing such a reservation would orphan a forward. */
  guestNames(): Set<string> {
    const names = new Set<string>();
    for (const spec of [...this.config.forwards, ...this.runtimeSpecs]) {
      const guest = parseForwardSpec(spec).guest;
      if ('name' in guest) names.add(guest.name);
    }
    return names;
  }

  listForwards(): ForwardView[] {
    const view = (spec: string, source: ForwardView['source']): ForwardView => {
      const parsed = parseForwardSpec(spec);
      let guest: string;
      try {
        guest = `${formatIpv4(resolveForward(parsed, this.resolveName).guestAddress)}:${parsed.guestPort}`;
      } catch {
        guest = `${'name' in parsed.guest ? parsed.guest.name : '?'}:${parsed.guestPort} (no such reservation; not in the table)`;
      }
      return {
        spec: formatForwardSpec(parsed),
        protocol: parsed.protocol,
        host: `${parsed.hostAddress === undefined ? '*' : formatIpv4(parsed.hostAddress)}:${parsed.hostPort}`,
        guest,
        source,
      };
    };
    return [...this.config.forwards.map((s) => view(s, 'config')), ...this.runtimeSpecs.map((s) => view(s, 'runtime'))];
  }

  /** Adds a forward with one element batch (no rebuild); persisted before it is applied. */
  addForward(spec: string): Promise<void> {
    return this.serial(async () => {
      const canonical = formatForwardSpec(parseForwardSpec(spec));
      const before = this.applied!;
      const [forward] = this.resolveAll([canonical]);
      const key = forwardKey(forward!);
      if (before.forwards.some((f) => forwardKey(f) === key) || this.runtimeSpecs.includes(canonical))
        throw new NatdError(ErrorCodes.CONFIG, `forward "${canonical}": host side ${key} is already forwarded`);
      const after = { ...before, forwards: [...before.forwards, forward!] };
      buildRuleset(after); // validates the whole result before touching anything
      await applyBatch(buildForwardChange(before, [forward!], []));
      this.applied = after;
      this.runtimeSpecs = [...this.runtimeSpecs, canonical];
      await this.writeRuntimeSpecs();
      this.opts.logger.info('port forward added', { forward: canonical });
    });
  }

  removeForward(spec: string): Promise<void> {
    return this.serial(async () => {
      const canonical = formatForwardSpec(parseForwardSpec(spec));
      const index = this.runtimeSpecs.indexOf(canonical);
      if (index < 0) {
        const fromConfig = this.config.forwards.some((s) => formatForwardSpec(parseForwardSpec(s)) === canonical);
        throw new NatdError(ErrorCodes.CONFIG, fromConfig
          ? `forward ${canonical} comes from the configuration; remove it there and reload`
          : `no runtime forward ${canonical}`);
      }
      const before = this.applied!;
      // by host side, as applied: the guest's reservation may be gone by now
      const key = hostKeyOf(parseForwardSpec(canonical));
      const forward = before.forwards.find((f) => forwardKey(f) === key);
      if (forward) {
        await applyBatch(buildForwardChange(before, [], [forward]));
        this.applied = { ...before, forwards: before.forwards.filter((f) => f !== forward) };
      }
      this.runtimeSpecs = this.runtimeSpecs.filter((_, i) => i !== index);
      await this.writeRuntimeSpecs();
      this.opts.logger.info('port forward removed', { forward: canonical });
    });
  }

  private async readRuntimeSpecs(): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(this.runtimeFile, 'utf8');
    } catch {
      return [];
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed) && parsed.every((s) => typeof s === 'string')) return parsed;
    } catch {
      /* fall through */
    }
    throw new NatdError(ErrorCodes.STATE, `${this.runtimeFile}: not a JSON list of forward specs; fix or remove it`);
  }

  private writeRuntimeSpecs(): Promise<void> {
    return writeFileAtomic(this.runtimeFile, JSON.stringify(this.runtimeSpecs, null, 2) + '\n');
  }

  status(): Record<string, unknown> {
    return { table: `${TABLE_FAMILY} ${this.table}`, applies: this.applies, heals: this.healer?.heals() ?? 0, runtimeForwards: this.runtimeSpecs.length };
  }

  counters(): { applies: number; heals: number } {
    return { applies: this.applies, heals: this.healer?.heals() ?? 0 };
  }

  /** Stops healing and deletes the table; conntrack keeps existing connections during a restart. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.healer?.stop();
    await this.serial(() => deleteTable(TABLE_FAMILY, this.table));
    this.opts.logger.info('nftables table removed', { table: `${TABLE_FAMILY} ${this.table}` });
  }
}
