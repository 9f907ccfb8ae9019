/**
 * The same 10,000 leases for both servers before the DNS and resource measurements: dnsmasq gets them in its lease
 * file, natd in its lease journal (written with natd's own LeaseStore). Filling them through DORA instead would take
 * dnsmasq minutes (its per-packet work grows with the lease count), far past the time budget.
 *
 * Addresses are spread over the pool with a stride coprime to its size, as a hash-based allocator leaves them;
 * a solid block at the pool start would make every hash that lands in it walk the whole block.
 */
import { writeFileSync } from 'node:fs';
import { LeaseStore } from '../../src/dhcp/lease-store.js';
import type { Lease } from '../../src/dhcp/types.js';
import { silentLogger } from '../../src/log.js';
import { formatIpv4, parseIpv4 } from '../../src/net/ipv4.js';
import { POOL_END, POOL_START } from './topology.js';

export interface SeedLease {
  mac: string;
  address: number;
  hostname: string;
  /** ms epoch */
  expiresAt: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** `count` leases named `<prefix><i>`, MACs 02:5e:<i as 32 bits> (distinct from the load generator's 02:b0). */
export function makeSeedLeases(count: number, prefix: string, now: number, lifetimeMs = 3_600_000): SeedLease[] {
  const start = parseIpv4(POOL_START)!;
  const size = parseIpv4(POOL_END)! - start + 1;
  if (count > size) throw new Error(`cannot seed ${count} leases into a pool of ${size}`);
  let stride = Math.floor(size * 0.618);
  while (gcd(stride, size) !== 1) stride++;
  return Array.from({ length: count }, (_, i) => {
    const bytes = [0x02, 0x5e, (i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff];
    return {
      mac: bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'),
      address: start + ((i * stride) % size),
      hostname: `${prefix}${i}`,
      expiresAt: now + lifetimeMs,
    };
  });
}

/** dnsmasq's lease file format: `<expiry s> <mac> <ip> <hostname> <client id or *>` per line. */
export function writeDnsmasqLeases(file: string, leases: readonly SeedLease[]): void {
  const lines = leases.map((l) => `${Math.floor(l.expiresAt / 1000)} ${l.mac} ${formatIpv4(l.address)} ${l.hostname} *`);
  writeFileSync(file, lines.join('\n') + '\n');
}

/** natd's journal in `stateDir`, through natd's own store; client ids as natd derives them without option 61. */
export async function writeNatdLeases(stateDir: string, leases: readonly SeedLease[]): Promise<void> {
  const store = await LeaseStore.open(stateDir, { logger: silentLogger });
  try {
    await store.commit(leases.map((l) => {
      const lease: Lease = { clientId: `01${l.mac.replaceAll(':', '')}`, mac: l.mac, address: l.address, hostname: l.hostname, expiresAt: l.expiresAt };
      return { kind: 'bind' as const, lease };
    }));
  } finally {
    await store.close();
  }
}
