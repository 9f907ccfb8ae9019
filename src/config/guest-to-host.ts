/** `--guest-to-host`: the host services guests may reach besides DHCP, DNS and ping. */
import type { HostService } from '../nft/ruleset.js';

const HOST_SERVICE_RE = /^(?:(tcp|udp):)?(\d{1,5})(?:-(\d{1,5}))?$/;

/**
 * `--guest-to-host`: the host services guests may reach (the input chain rejects the rest, as firewalld's libvirt
 * zone does). Each entry is [tcp|udp:]PORT[-PORT] (tcp when no protocol), or 'all' alone to reject nothing.
 */
export function parseGuestToHost(entries: readonly string[], problems: string[]): readonly HostService[] | 'all' {
  if (entries.includes('all')) {
    if (entries.length > 1) problems.push(`guestToHost: 'all' cannot be combined with ports (got "${entries.join(',')}")`);
    return 'all';
  }
  const services: HostService[] = [];
  entries.forEach((text, i) => {
    const m = HOST_SERVICE_RE.exec(text.trim().toLowerCase());
    const first = Number(m?.[2]);
    const last = m?.[3] === undefined ? first : Number(m[3]);
    if (!m || first < 1 || last > 65535 || first > last) {
      problems.push(`guestToHost.${i}: expected [tcp|udp:]PORT[-PORT] with ports 1-65535, or all (got "${text}")`);
      return;
    }
    services.push(Object.freeze({ protocol: (m[1] ?? 'tcp') as 'tcp' | 'udp', ports: Object.freeze([first, last]) as readonly [number, number] }));
  });
  return Object.freeze(services);
}
