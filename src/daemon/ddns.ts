/**
 * Issue 15: lease names published to an authoritative DNS server (src/ddns/). The publisher learns every lease
 * change after the lease names have settled it (guest-names.ts), so it publishes exactly the names natd's own DNS
 * answers for leases: a refused claim is not published either. A lease is published as its name's holder: when
 * LocalNames gives the name to someone else (a reservation, an earlier lease), that lease is not.
 */
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Config } from '../config.js';
import { UdpDdnsClient } from '../ddns/client.js';
import { FileOwnedNames } from '../ddns/owned-names.js';
import { DdnsPublisher, type PublisherStats } from '../ddns/publisher.js';
import type { DdnsConfig } from '../ddns/settings.js';
import { reverseZoneOf } from '../ddns/updates.js';
import type { DhcpServerCore } from '../dhcp/server-core.js';
import type { Lease, LeaseChange } from '../dhcp/types.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import type { GuestNames } from './guest-names.js';

export interface DdnsStatus extends PublisherStats {
  server: string;
  zone: string;
  reverseZone: string | undefined;
  key: string | undefined;
  /** answers dropped: malformed, for another message, bad or missing signature */
  answersDropped: number;
}

/** A TSIG secret readable by other users lets them change the zone: said once at start, as ssh does for its keys. */
function warnIfShared(file: string, logger: Logger): void {
  try {
    const mode = statSync(file).mode;
    if (mode & 0o077) logger.warn('DDNS: the TSIG key file is readable by other users; chmod 600 it', { file, mode: (mode & 0o777).toString(8) });
  } catch {
    /* it was read a moment ago; a race here is not worth a warning */
  }
}

export class DdnsService {
  private readonly publisher: DdnsPublisher;
  private readonly client: UdpDdnsClient;
  private readonly reverseZone: string | undefined;
  private settings: DdnsConfig;

  constructor(config: Config & { ddns: DdnsConfig }, bridge: BridgeInfo, private readonly names: GuestNames, private readonly core: DhcpServerCore, private readonly opts: { logger: Logger; now: () => number }) {
    this.settings = config.ddns;
    this.reverseZone = config.ddns.reverse ? reverseZoneOf(bridge.subnet.network, bridge.subnet.prefix) : undefined;
    this.client = new UdpDdnsClient({ server: config.ddns.server, key: config.ddns.key });
    this.publisher = new DdnsPublisher({
      exchanger: this.client,
      owned: new FileOwnedNames(config.stateDir, opts.logger),
      zone: config.ddns.zone,
      reverseZone: this.reverseZone,
      owner: `${hostname()}/${config.bridge}`,
      // RFC 4702 §4 suggests a third of the lease time (Kea's default too), within 1 min - 1 h
      ttlSeconds: Math.min(3600, Math.max(60, Math.floor(config.leaseTimeSeconds / 3))),
      logger: opts.logger,
      now: opts.now,
    });
    if (!config.ddns.key) opts.logger.warn('DDNS: no --ddns-key-file: updates are sent unsigned', { server: config.ddns.serverText });
    else warnIfShared(config.ddns.keyFile!, opts.logger);
  }

  /** The resync: every named lease now, every owned name without one removed; then updates go out. */
  start(): void {
    const now = this.opts.now();
    const named: { address: number; label: string }[] = [];
    for (const lease of this.core.leases.all()) {
      const label = lease.expiresAt > now ? this.publishedName(lease) : undefined;
      if (label) named.push({ address: lease.address, label });
    }
    this.publisher.resync(named);
    this.publisher.start();
    this.opts.logger.info('DDNS: publishing lease names', { server: this.settings.serverText, zone: this.settings.zone, reverseZone: this.reverseZone, leases: named.length });
  }

  /** The lease changes as they were journaled (after the names settled them). Synchronous and cheap. */
  leaseChanges(changes: readonly LeaseChange[]): void {
    for (const change of changes) {
      if (change.kind === 'bind') this.publisher.setAddress(change.lease.address, this.publishedName(change.lease));
      else this.publisher.setAddress(change.address, undefined);
    }
  }

  /** A reservation change can give a name to another client: every lease is looked at again. */
  reservationsChanged(): void {
    const now = this.opts.now();
    for (const lease of this.core.leases.all()) this.publisher.setAddress(lease.address, lease.expiresAt > now ? this.publishedName(lease) : undefined);
  }

  /** A reload: a changed key file takes effect, and whatever waited for the old key is tried at once. */
  reload(config: Config): void {
    const next = config.ddns;
    if (!next) return;
    if (next.serverText !== this.settings.serverText || next.zone !== this.settings.zone || next.reverse !== this.settings.reverse) {
      this.opts.logger.warn('DDNS: a changed server, zone or reverse setting takes effect at the next start', { server: next.serverText, zone: next.zone });
    }
    const keyChanged = next.key?.name !== this.settings.key?.name || next.key?.algorithm !== this.settings.key?.algorithm || !next.key?.secret.equals(this.settings.key?.secret ?? Buffer.alloc(0));
    this.settings = { ...this.settings, key: next.key, keyFile: next.keyFile };
    if (keyChanged) {
      this.client.setKey(next.key);
      this.opts.logger.info('DDNS: new TSIG key loaded; retrying now', { key: next.key?.name });
      this.publisher.retryNow();
    }
  }

  status(): DdnsStatus {
    const { state, ...stats } = this.publisher.stats();
    // the state first: it is what `natd status` readers look for
    return { state, server: this.settings.serverText, zone: this.settings.zone, reverseZone: this.reverseZone, key: this.settings.key?.name, answersDropped: this.client.dropped, ...stats };
  }

  close(): void {
    this.publisher.close();
  }

  private publishedName(lease: Lease): string | undefined {
    if (!lease.hostname) return undefined;
    const holder = this.names.local.holderOf(lease.hostname);
    return holder && holder.address === lease.address && (holder.source === 'lease' || holder.source === 'reservation') ? lease.hostname : undefined;
  }
}
