/**
 * Refuses to run network-changing benchmark code outside a named network namespace: the load generator
 * broadcasts DHCP and the nft timer creates tables, which must only ever happen inside the benchmark's own
 * namespaces (`ip netns add`), never in the main one.
 */
import { execFileSync } from 'node:child_process';

/** Throws unless this process runs in a namespace `ip netns` knows by name (the main namespace has none). */
export function assertInsideNamespace(what: string): void {
  let name = '';
  try {
    name = execFileSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* treated as "no named namespace" */
  }
  if (!name) throw new Error(`${what}: refusing to run outside a named network namespace; start it with ip netns exec`);
}
