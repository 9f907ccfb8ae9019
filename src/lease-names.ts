/**
 * Keeps DNS local names in step with DHCP: reservations name their address; a lease's hostname names its address
 * while the lease lives. Reservation names win (LocalNames handles precedence by source).
 */
import type { LocalNames } from './dns/local-names.js';
import type { Lease, LeaseChange, Reservation } from './dhcp/types.js';

export class LeaseNames {
  /** address -> hostname currently published from a lease */
  private readonly byAddress = new Map<number, string>();

  constructor(private readonly names: LocalNames) {}

  setReservations(reservations: readonly Reservation[]): void {
    this.names.clearSource('reservation');
    for (const r of reservations) if (r.hostname) this.names.setHost(r.hostname, r.address, 'reservation');
  }

  restore(leases: readonly Lease[]): void {
    for (const lease of leases) this.bind(lease);
  }

  apply(changes: readonly LeaseChange[]): void {
    for (const change of changes) {
      if (change.kind === 'bind') this.bind(change.lease);
      else this.unbind(change.address);
    }
  }

  private bind(lease: Lease): void {
    const previous = this.byAddress.get(lease.address);
    if (previous === lease.hostname) return;
    if (previous !== undefined) this.unbind(lease.address);
    if (!lease.hostname) return;
    this.byAddress.set(lease.address, lease.hostname);
    this.names.setHost(lease.hostname, lease.address, 'lease');
  }

  private unbind(address: number): void {
    const name = this.byAddress.get(address);
    if (name === undefined) return;
    this.byAddress.delete(address);
    this.names.removeHost(name, address, 'lease');
  }
}
