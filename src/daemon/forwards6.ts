/**
 * issue 14: IPv6 port forwards that name a guest follow its DHCPv6 lease. IPv4 forwards name reservations only
 * (re-resolved on reload); an IPv6 forward may name a DHCPv6 lease (or a SLAAC guest), whose address comes and goes.
 * After each DHCPv6 lease change the names the forwards use are resolved again (guest-ipv6.ts); when one answers
 * differently the firewall reloads with the current config. Coalesced: one reload at a time, and one more after it
 * when changes came meanwhile. A reload that fails (a v6-only forward whose name lost its address) is logged
 * (rate-limited) and the table stays as it was.
 */
import type { Logger } from '../log.js';
import type { NameResolver6 } from '../nft/forward6.js';

export interface Forwards6Deps {
  /** the guest names the forwards use (Firewall.guestNames) */
  names: () => Iterable<string>;
  /** the current name → IPv6 lookup */
  resolver: () => NameResolver6;
  /** re-applies the forwards with this lookup (Firewall.reload with the running config) */
  reload: (resolver: NameResolver6) => Promise<void>;
  logger: Logger;
}

/** Returns the function to call after lease changes. */
export function forwards6Refresher(deps: Forwards6Deps): () => void {
  // without forwards naming guests (the usual case) a lease change costs no lookup at all
  const answers = (names: string[], resolve: () => NameResolver6): string =>
    names.length === 0 ? '[]' : JSON.stringify(names.sort().map((n) => [n, resolve()(n) ?? null]));
  const lookup = (): (() => NameResolver6) => {
    let resolver: NameResolver6 | undefined;
    return () => (resolver ??= deps.resolver());
  };
  let last = answers([...deps.names()], lookup());
  let busy = false;
  let again = false;
  const run = async (): Promise<void> => {
    busy = true;
    try {
      do {
        again = false;
        const resolve = lookup();
        const now = answers([...deps.names()], resolve);
        if (now === last) continue;
        last = now;
        try {
          await deps.reload(resolve());
        } catch (err) {
          deps.logger.warnLimited('dhcp6:forwards', 'cannot re-resolve IPv6 port forwards after a DHCPv6 lease change', { error: (err as Error).message });
        }
      } while (again);
    } finally {
      busy = false;
    }
  };
  return () => {
    if (busy) again = true;
    else if (last !== '[]' || !isEmpty(deps.names())) void run();
  };
}

function isEmpty(names: Iterable<string>): boolean {
  for (const _ of names) return false;
  return true;
}
