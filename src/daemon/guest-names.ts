/**
 * The glue between leases and DNS names: the names a guest gets from its reservation, its lease and the hosts files.
 * The DHCP core and the names refer to each other: the core asks the names whether a lease may carry a name
 * (CoreDeps.nameAllowed), the names ask the core for a client's live lease (LeaseNamesOptions.leaseOf). The names
 * are built first, so the core is the one edge bound late: `attachCore`, before any request is served.
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import type { DhcpServerCore } from '../dhcp/server-core.js';
import type { LeaseChange, Reservation } from '../dhcp/types.js';
import { LocalNames, parseHostsFormat, type HostsEntry } from '../dns/local-names.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import { LeaseNames } from './lease-names.js';

/** Static DNS records from hosts-format files; problems are logged with file:line and the rest loads. */
async function loadStaticHosts(files: readonly string[], domain: string | undefined, logger: Logger): Promise<HostsEntry[]> {
  const entries: HostsEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      logger.warn('cannot read hosts file; no names from it', { file, error: (err as Error).message });
      continue;
    }
    const parsed = parseHostsFormat(text, file, domain);
    for (const p of parsed.problems) logger.warn('hosts file problem', { file: p.file, line: p.line, problem: p.message });
    entries.push(...parsed.entries);
  }
  return entries;
}

export class GuestNames {
  readonly local: LocalNames;
  readonly leases: LeaseNames;
  private core: DhcpServerCore | undefined;

  constructor(config: Config, bridge: BridgeInfo, opts: { logger: Logger; now: () => number; operatorName?: (name: string) => boolean }) {
    this.local = new LocalNames({ ...(config.domain ? { domain: config.domain } : {}), subnet: bridge.subnet, gatewayAddress: bridge.gateway, ttlSeconds: config.localTtl });
    this.leases = new LeaseNames(this.local, { ...opts, leaseOf: (clientId) => this.core?.leases.getByClient(clientId) });
  }

  /** The core's name policy (CoreDeps.nameAllowed). */
  nameAllowed = (name: string, claimant: { clientId: string; mac: string; address: number }, binding: boolean): boolean =>
    this.leases.nameAllowed(name, claimant, binding);

  /** Binds the core and publishes what the journal held: reservations first, then the leases in journal order. */
  attachCore(core: DhcpServerCore, reservations: readonly Reservation[]): void {
    this.core = core;
    this.leases.setReservations(reservations);
    this.leases.restore(core.leases.all());
  }

  /** Names are decided before the journal write, so a refused name is not journaled with the lease (issue 12). */
  settle(changes: LeaseChange[]): LeaseChange[] {
    return this.leases.settle(changes);
  }

  setReservations(reservations: readonly Reservation[]): void {
    this.leases.setReservations(reservations);
  }

  async loadStatic(config: Config, logger: Logger): Promise<void> {
    this.local.setTtl(config.localTtl);
    this.local.replaceStatic(await loadStaticHosts(config.addnHosts, config.domain, logger));
  }
}
