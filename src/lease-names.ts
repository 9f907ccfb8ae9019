/**
 * Keeps DNS local names in step with DHCP: reservations name their address; a lease's hostname names its address
 * while the lease lives. Reservation names win (LocalNames handles precedence by source).
 */
import type { LocalNames } from './dns/local-names.js';
import type { Lease, LeaseChange, Reservation } from './dhcp/types.js';

export class LeaseNames {
  // No table of its own: LocalNames holds one 'lease' entry per address, which is what a lease published
  // (a map from address to name here cost about 30 bytes per lease, issue 7).
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
      else this.names.removeAddress(change.address, 'lease');
    }
  }

  /**
   * The lease's name now names its address. setHost also drops the name the address had before, and the name from
   * another address; a lease without a usable name leaves its address unnamed.
   */
  private bind(lease: Lease): void {
    if (!lease.hostname || !this.names.setHost(lease.hostname, lease.address, 'lease')) this.names.removeAddress(lease.address, 'lease');
  }
}
