/**
 * issue 14: RA guard (RFC 6105) on the bridge. natd is the only router on it, but any guest can send Router
 * Advertisements to the other guests (the classic rogue router: their kernels take an address in its prefix and a
 * default route through it). natd's inet table never sees frames bridged between two ports, so the guard is a small
 * table of its own in the bridge family: router advertisements and DHCPv6 server messages that arrive on a bridge
 * port and are forwarded to another port are dropped. natd's own RAs leave through the bridge's output hook and
 * pass. Off with --no-firewall (natd then manages no nftables), removed on stop.
 *
 * nft matches `icmpv6 type` after IPv6 extension headers too (meta l4proto), so a hop-by-hop header does not
 * evade it; an RA split into fragments (RFC 7113) is not caught here, and guests' kernels drop those anyway
 * (RFC 6980).
 */
import { applyBatch, deleteTable } from '../nft/apply.js';
import type { NftOptions } from '../nft/runner.js';
import type { NftBatch } from '../nft/schema.js';

export function raGuardTableName(bridge: string): string {
  return `natd-${bridge}-raguard`;
}

/** The guard's table as one atomic nft JSON batch (bridge family; schema.ts types only the ip families). */
export function buildRaGuard(bridge: string): NftBatch {
  const table = { family: 'bridge', name: raGuardTableName(bridge) };
  const base = { family: 'bridge', table: table.name };
  const ibrname = { meta: { key: 'ibrname' } };
  const eq = (left: unknown, right: unknown) => ({ match: { op: '==', left, right } });
  const batch = {
    nftables: [
      { add: { table } },
      { delete: { table } },
      { add: { table } },
      { add: { chain: { ...base, name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } } },
      { add: { rule: { ...base, chain: 'forward', expr: [eq(ibrname, bridge), eq({ payload: { protocol: 'icmpv6', field: 'type' } }, 'nd-router-advert'), { drop: null }], comment: 'natd: RA guard, guests send no router advertisements' } } },
      { add: { rule: { ...base, chain: 'forward', expr: [eq(ibrname, bridge), eq({ meta: { key: 'l4proto' } }, 'udp'), eq({ payload: { protocol: 'udp', field: 'sport' } }, 547), { drop: null }], comment: 'natd: guests run no DHCPv6 server' } } },
    ],
  };
  return batch as unknown as NftBatch;
}

export interface RaGuard {
  apply(): Promise<void>;
  remove(): Promise<void>;
}

export function raGuard(bridge: string, opts: NftOptions = {}): RaGuard {
  return {
    apply: () => applyBatch(buildRaGuard(bridge), opts),
    remove: () => deleteTable('bridge' as never, raGuardTableName(bridge), opts),
  };
}
