/**
 * natd's firewall component: keeps natd's nftables table equal to its inputs (configured forwards plus forwards added
 * at runtime, resolved against the reservations). It applies the table whole and reads it back at start and reload,
 * changes forwards at runtime with element batches only, heals the table when something else removes it, and deletes
 * it on stop. Every nft call goes through one serial queue (batches must not interleave) and has a deadline
 * (runner.ts), so a hung nft fails one operation instead of blocking the queue.
 *
 * Order of a runtime change (add or remove): validate everything, apply the element batch, then persist the runtime
 * forwards file. If nft refuses, nothing was written and nothing changed. If the write fails, the element batch is
 * undone; should the undo fail too, the in-memory table still describes the old set, so the healer's next check sees
 * the difference and re-applies the old table. The file therefore never holds a forward nft refused, and a crash
 * between the two steps loses only the change that was never acknowledged. An nft killed at its deadline may have
 * committed its batch or not; the in-memory table stays the old one and the healer settles the kernel on it.
 */
// issue 14
import type { Ipv6RulesetInput } from './ipv6-rules.js';
import { parseIpv6 } from '../ipv6/address.js';
import { isUniqueLocal } from '../ipv6/egress-config.js';
import { splitFamilies, type GuestResolvers, type NameResolver6 } from './forward6.js';
import type { Config } from '../config.js';
import { tableNameFor } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import { formatForwardSpec, parseForwardSpec, type PortForward, type PortForward6 } from './forward-spec.js';
import {
  alreadyForwarded, forwardRows, guestNames, parseConfiguredForwards, parseForwardEntry, parseStoredForwards,
  resolveForwards, type ActiveForward, type ForwardEntry, type ForwardRow,
} from './forward-set.js';
import { forwardsFile, type ForwardsStore } from './forwards-file.js';
import type { ServiceAddresses } from './forward-services.js';
import { resolveFamilies } from './forward6.js';
import { buildExposePortsChange, buildForwardChange, buildRuleset, TABLE_FAMILY, type RulesetInput } from './ruleset.js';
import { applyAndVerify, applyBatch, deleteTable, tableIntact } from './apply.js';
import { startHealer, type Healer } from './healer.js';
import { nftMonitor } from './ruleset-watch.js';
import type { NftOptions } from './runner.js';

export type NameResolver = (name: string) => number | undefined;

export interface FirewallOptions {
  config: Config;
  bridge: BridgeInfo;
  logger: Logger;
  resolveName: NameResolver;
  healIntervalMs?: number;
  /** how nft is run: binary, exec (tests inject a fake), deadline per call */
  nft?: NftOptions;
  /** where runtime forwards persist; default forwards.json in config.stateDir */
  store?: ForwardsStore;
  /** issue 14: the IPv6 prefix natd serves on the bridge (its mode comes from config.ipv6Mode, so a reload switches it) */
  ipv6?: Ipv6RulesetInput;
  /** issue 14: a guest name → its IPv6 address, for forwards over IPv6 (daemon/guest-ipv6.ts) */
  resolveName6?: NameResolver6;
  /**
   * issue 17: the name router's routed ports are in the table (a set, changed by elements); `conflicts` names the
   * forwards (configured with `config`, or one added at runtime) that would take a routed port.
   */
  expose?: { conflicts(forwards: readonly ForwardEntry[], config: Config): string[] };
}

export { tableNameFor };

/** What `natd status` shows of the firewall. */
export interface FirewallStatus {
  /** family and name, e.g. inet natd-virbr10 */
  table: string;
  /** whole-table applies since start (start, reloads) */
  applies: number;
  /** times the healer restored the table after someone changed it */
  heals: number;
  runtimeForwards: number;
}

/** What is in the kernel: heals restore exactly this, element changes start from it. */
interface AppliedTable {
  input: RulesetInput;
  active: ActiveForward[];
}

type Rule = PortForward | PortForward6;
/** issue 14: a forward's map entries, one per family it serves */
const rulesOf = (a: ActiveForward): Rule[] => [...(a.forward.v4 ? [a.forward.v4] : []), ...(a.forward.v6 ? [a.forward.v6] : [])];

export class Firewall {
  private config: Config;
  private resolveName: NameResolver;
  private resolveName6: NameResolver6 | undefined;
  private configured: ForwardEntry[] = [];
  private runtime: ForwardEntry[] = [];
  private readonly store: ForwardsStore;
  private readonly nft: NftOptions;
  private healer: Healer | undefined;
  private applied: AppliedTable | undefined;
  private applies = 0;
  private closed = false;
  /** issue 17: the routed ports now in the table */
  private routedPorts: readonly number[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: FirewallOptions) {
    this.config = opts.config;
    this.resolveName = opts.resolveName;
    this.resolveName6 = opts.resolveName6;
    this.store = opts.store ?? forwardsFile(opts.config.stateDir);
    this.nft = opts.nft ?? {};
  }

  private get table(): string {
    return tableNameFor(this.opts.bridge.name);
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** issue 14: the name lookups in both families; IPv6 only when natd serves it */
  private resolvers(resolveName: NameResolver, resolveName6 = this.resolveName6): GuestResolvers {
    const network = this.opts.ipv6 ? parseIpv6(this.opts.ipv6.network) : undefined;
    return { v4: resolveName, ...(network ? { v6: { network, lookup: resolveName6 ?? (() => undefined) } } : {}) };
  }

  /** Where natd serves the guests' DNS and DHCP (and TFTP): a forward there would capture them (forward-services.ts). */
  private serviceAddresses(config = this.config): ServiceAddresses {
    const { gateway, subnet } = this.opts.bridge;
    return { gateway, broadcast: subnet.broadcast, tftp: config.tftp !== undefined, ...(this.opts.ipv6 ? { gateway6: this.opts.ipv6.gateway } : {}) };
  }

  /** issue 14: the configured mode, but never routed for the unique-local prefix natd started with (a reload that
   *  changes the prefix takes effect at restart, so the running prefix decides) */
  private ipv6Mode(config: Config): 'nat' | 'routed' {
    const network = parseIpv6(this.opts.ipv6?.network ?? '');
    return config.ipv6Mode === 'routed' && network !== undefined && !isUniqueLocal(network) ? 'routed' : 'nat';
  }

  private inputFor(config: Config, active: readonly ActiveForward[]): RulesetInput {
    const { v4, v6 } = splitFamilies(active.map((a) => a.forward));
    return {
      table: this.table,
      bridge: this.opts.bridge.name,
      subnet: this.opts.bridge.subnet,
      gateway: this.opts.bridge.gateway,
      masqueradePorts: [config.masqueradePorts[0], config.masqueradePorts[1]],
      forwards: v4,
      allowIpv6Forward: config.allowIpv6Forward,
      guestToHost: config.guestToHost,
      tftp: config.tftp !== undefined, // issue 16
      ...(this.opts.ipv6 ? { ipv6: { ...this.opts.ipv6, mode: this.ipv6Mode(config) }, forwards6: v6 } : {}), // issue 14
      ...(this.opts.expose ? { expose: { ports: this.routedPorts, ...(config.expose.listen !== undefined ? { listen: config.expose.listen } : {}) } } : {}), // issue 17
    };
  }

  /** issue 17: a forward on a routed port is a config error (the router and a DNAT cannot share a port). */
  private checkRouted(forwards: readonly ForwardEntry[], config: Config): void {
    const problems = this.opts.expose?.conflicts(forwards, config) ?? [];
    if (problems.length) throw new NatdError(ErrorCodes.CONFIG, problems.join('; '));
  }

  /** issue 17: the routed ports the table opens, changed with one element batch (no rebuild). */
  setRoutedPorts(ports: readonly number[]): Promise<void> {
    return this.serial(async () => {
      const before = this.applied!;
      const add = ports.filter((p) => !this.routedPorts.includes(p));
      const remove = this.routedPorts.filter((p) => !ports.includes(p));
      if (add.length + remove.length === 0) return;
      await applyBatch(buildExposePortsChange(before.input, add, remove), this.nft);
      this.routedPorts = Object.freeze([...ports]);
      this.applied = { ...before, input: { ...before.input, ...(before.input.expose ? { expose: { ...before.input.expose, ports: this.routedPorts } } : {}) } };
      this.opts.logger.info('routed ports changed', { ports: this.routedPorts.join(',') });
    });
  }

  /** Forward entries as they stand (issue 17: the name router checks new routes against them). */
  forwardEntries(): readonly ForwardEntry[] {
    return this.entries();
  }

  /** The table for these inputs; runtime forwards left out are logged, configured ones that fail throw. */
  private plan(config: Config, configured: readonly ForwardEntry[], resolveName: NameResolver): AppliedTable {
    const { active, leftOut } = resolveForwards(configured, this.runtime, this.resolvers(resolveName));
    for (const { entry, reason } of leftOut) {
      this.opts.logger.warn('runtime port forward left out of the table', { forward: entry.text, error: reason });
    }
    return { input: this.inputFor(config, active), active };
  }

  /** Full apply and read-back; `applied` changes only when nft accepted and the table reads back as built. */
  private async applyFull(reason: string, table: AppliedTable): Promise<void> {
    await applyAndVerify(table.input, this.nft);
    this.applied = table;
    this.applies++;
    this.opts.logger.info('nftables table applied', { table: `${TABLE_FAMILY} ${this.table}`, reason, forwards: table.active.length });
  }

  /** `routedPorts`: issue 17, the name router's ports at start. */
  async start(routedPorts: readonly number[] = []): Promise<void> {
    this.routedPorts = Object.freeze([...routedPorts]);
    this.configured = parseConfiguredForwards(this.config.forwards, this.serviceAddresses());
    const stored = parseStoredForwards(await this.store.load(), this.serviceAddresses());
    for (const { text, reason } of stored.rejected) {
      this.opts.logger.warn('runtime port forward left out of the table', { forward: text, error: reason });
    }
    // issue 17: a stored runtime forward on a port the configuration now routes by name is left out
    this.runtime = stored.entries.filter((entry) => {
      const conflict = this.opts.expose?.conflicts([entry], this.config)[0];
      if (conflict) this.opts.logger.warn('runtime port forward left out of the table', { forward: entry.text, error: conflict });
      return conflict === undefined;
    });
    await this.serial(() => this.applyFull('start', this.plan(this.config, this.configured, this.resolveName)));
    this.healer = startHealer({
      check: () => this.serial(() => tableIntact(this.applied!.input, this.nft)),
      reapply: () => this.serial(() => this.applyFull('heal', this.applied!)),
      ...(this.opts.healIntervalMs ? { intervalMs: this.opts.healIntervalMs } : {}),
      // issue 17: checks follow `nft monitor` events instead of an nft child every 2 s; not with an injected exec
      ...(this.nft.exec === undefined ? { watch: nftMonitor(this.nft.nft) } : {}),
      logger: this.opts.logger,
    });
  }

  /** New config or names: everything is parsed and resolved first, then one full apply; on error nothing changes. */
  reload(config: Config, resolveName: NameResolver, resolveName6?: NameResolver6): Promise<void> {
    return this.serial(async () => {
      const configured = parseConfiguredForwards(config.forwards, this.serviceAddresses(config));
      this.checkRouted(configured, config); // issue 17
      const previous6 = this.resolveName6;
      if (resolveName6) this.resolveName6 = resolveName6;
      try {
        await this.applyFull('reload', this.plan(config, configured, resolveName));
      } catch (err) {
        this.resolveName6 = previous6;
        throw err;
      }
      this.config = config;
      this.configured = configured;
      this.resolveName = resolveName;
    });
  }

  private entries(): ForwardEntry[] {
    return [...this.configured, ...this.runtime];
  }

  /** Reservation names the forwards refer to: removing such a reservation would orphan a forward. */
  guestNames(): Set<string> {
    return guestNames(this.entries());
  }

  /** Every forward, configured then runtime, as plain rows (the control layer renders them). */
  listForwards(): ForwardRow[] {
    return forwardRows(this.entries(), new Set(this.applied?.active.map((a) => a.entry)), this.resolvers(this.resolveName));
  }

  /** Adds a runtime forward with one element batch (no rebuild): applied, then persisted (see the header). */
  addForward(text: string): Promise<void> {
    return this.serial(async () => {
      const entry = parseForwardEntry(text, 'runtime', this.serviceAddresses());
      const taken = this.entries().find((e) => e.hostKey === entry.hostKey);
      if (taken) throw alreadyForwarded(entry.text, entry.hostKey);
      this.checkRouted([entry], this.config); // issue 17
      const added: ActiveForward = { entry, forward: resolveFamilies(entry.spec, this.resolvers(this.resolveName)) };
      const before = this.applied!;
      const active = [...before.active, added];
      const after: AppliedTable = { input: this.withForwards(before.input, active), active };
      buildRuleset(after.input); // validates the whole result before touching anything
      await this.changeAndPersist(before, after, rulesOf(added), [], [...this.runtime, entry]);
      this.opts.logger.info('port forward added', { forward: entry.text });
    });
  }

  /** Removes a runtime forward (configured ones are the config's); its element goes only if it is in the table. */
  removeForward(text: string): Promise<void> {
    return this.serial(async () => {
      const canonical = formatForwardSpec(parseForwardSpec(text));
      const entry = this.runtime.find((e) => e.text === canonical);
      if (!entry) {
        throw new NatdError(ErrorCodes.CONFIG, this.configured.some((e) => e.text === canonical)
          ? `forward ${canonical} comes from the configuration; remove it there and reload`
          : `no runtime forward ${canonical}`);
      }
      const before = this.applied!;
      const removed = before.active.find((a) => a.entry === entry);
      const active = before.active.filter((a) => a !== removed);
      const after: AppliedTable = { input: this.withForwards(before.input, active), active };
      await this.changeAndPersist(before, after, [], removed ? rulesOf(removed) : [], this.runtime.filter((e) => e !== entry));
      this.opts.logger.info('port forward removed', { forward: canonical });
    });
  }

  /**
   * The runtime-change order from the header: element batch, then the file, then the in-memory state. A failed
   * write undoes the batch (best effort; the healer covers a failed undo) and rethrows.
   */
  /** issue 14: the input with these forwards, each family in its maps */
  private withForwards(input: RulesetInput, active: readonly ActiveForward[]): RulesetInput {
    const { v4, v6 } = splitFamilies(active.map((a) => a.forward));
    return { ...input, forwards: v4, ...(input.ipv6 ? { forwards6: v6 } : {}) };
  }

  private async changeAndPersist(before: AppliedTable, after: AppliedTable, add: Rule[], remove: Rule[], runtime: ForwardEntry[]): Promise<void> {
    const changesTable = add.length + remove.length > 0;
    if (changesTable) await applyBatch(buildForwardChange(before.input, add, remove), this.nft);
    try {
      await this.store.save(runtime.map((e) => e.text));
    } catch (err) {
      if (changesTable) await this.undo(before, remove, add);
      throw err;
    }
    this.applied = after;
    this.runtime = runtime;
  }

  private async undo(before: AppliedTable, add: Rule[], remove: Rule[]): Promise<void> {
    try {
      await applyBatch(buildForwardChange(before.input, add, remove), this.nft);
    } catch (err) {
      this.opts.logger.error('undoing a port forward change failed; the healer restores the table', { error: (err as Error).message });
    }
  }

  status(): FirewallStatus {
    return { table: `${TABLE_FAMILY} ${this.table}`, applies: this.applies, heals: this.healer?.heals() ?? 0, runtimeForwards: this.runtime.length };
  }

  counters(): { applies: number; heals: number } {
    return { applies: this.applies, heals: this.healer?.heals() ?? 0 };
  }

  /** Stops healing and deletes the table; conntrack keeps existing connections during a restart. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.healer?.stop();
    await this.serial(() => deleteTable(TABLE_FAMILY, this.table, this.nft));
    this.opts.logger.info('nftables table removed', { table: `${TABLE_FAMILY} ${this.table}` });
  }
}
