/**
 * ISC Kea (Debian's kea-dhcp4-server) as a DHCP peer: started by the benchmark by PID, with a config written into
 * the run's temp dir (never the system's kea service or /etc/kea): raw sockets on the bench bridge, the same pool and
 * 1 h leases as natd and dnsmasq, authoritative, no reservations, a memfile lease file in the temp dir (Kea appends
 * each lease change to it; it does not fsync per lease), no lease-file cleanup (LFC) during a run.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatIpv4 } from '../../../src/net/ipv4.js';
import type { SeedLease } from '../seed-leases.js';
import { BENCH_PREFIX, BRIDGE, POOL_END, POOL_START, type BenchNetwork } from '../topology.js';
import type { Started } from '../../../test/support/netns.js';

export const KEA_BINARY = 'kea-dhcp4';
export const KEA_PACKAGE = 'kea-dhcp4-server';
const SUBNET = `10.77.0.0/${BENCH_PREFIX}`;
const LEASE_SECONDS = 3600;

/** The memfile's CSV columns in Kea 2.2 (lease4 schema 2.0). */
const CSV_HEADER = 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context';

export function keaConfig(leaseFile: string): object {
  return {
    Dhcp4: {
      'interfaces-config': { interfaces: [BRIDGE], 'dhcp-socket-type': 'raw' },
      'lease-database': { type: 'memfile', persist: true, name: leaseFile, 'lfc-interval': 0 },
      'valid-lifetime': LEASE_SECONDS,
      authoritative: true,
      // no reservations anywhere: Kea skips the host lookups
      'reservations-global': false,
      'reservations-in-subnet': false,
      'reservations-out-of-pool': false,
      'host-reservation-identifiers': ['hw-address'],
      subnet4: [{ id: 1, subnet: SUBNET, pools: [{ pool: `${POOL_START} - ${POOL_END}` }] }],
      // INFO for the start-up line the benchmark waits for; lease and packet loggers at WARN so Kea logs nothing
      // per exchange (natd logs none and dnsmasq runs with --quiet-dhcp)
      loggers: [
        { name: 'kea-dhcp4', output_options: [{ output: 'stderr' }], severity: 'INFO' },
        { name: 'kea-dhcp4.leases', output_options: [{ output: 'stderr' }], severity: 'WARN' },
        { name: 'kea-dhcp4.packets', output_options: [{ output: 'stderr' }], severity: 'WARN' },
        { name: 'kea-dhcp4.alloc-engine', output_options: [{ output: 'stderr' }], severity: 'WARN' },
        { name: 'kea-dhcp4.ddns', output_options: [{ output: 'stderr' }], severity: 'WARN' },
      ],
    },
  };
}

/** The seeded leases in Kea's memfile format (the same leases natd and dnsmasq get). */
export function writeKeaLeases(file: string, leases: readonly SeedLease[]): void {
  const lines = leases.map((l) => {
    const expire = Math.floor(l.expiresAt / 1000);
    return `${formatIpv4(l.address)},${l.mac},01:${l.mac},${LEASE_SECONDS},${expire},1,0,0,${l.hostname},0,`;
  });
  writeFileSync(file, [CSV_HEADER, ...lines].join('\n') + '\n');
}

/** Starts kea-dhcp4 in the host namespace; its pid and lock files go to `dir` too (KEA_PIDFILE_DIR, KEA_LOCKFILE_DIR). */
export async function startKea(net: BenchNetwork, dir: string, seed?: readonly SeedLease[]): Promise<Started> {
  const leaseFile = path.join(dir, 'kea-leases4.csv');
  if (seed) writeKeaLeases(leaseFile, seed);
  const configFile = path.join(dir, 'kea-dhcp4.json');
  writeFileSync(configFile, JSON.stringify(keaConfig(leaseFile), null, 1));
  return net.topology.start(net.hostNs, [KEA_BINARY, '-c', configFile], {
    env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir, KEA_LOGGER_DESTINATION: 'stderr' },
    ready: /DHCP4_STARTED/,
    what: 'kea-dhcp4',
    timeoutMs: 20_000,
  });
}
