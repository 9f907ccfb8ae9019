/**
 * issue 14: `natd doctor` for routed IPv6 (--ipv6-mode routed). What can be checked on the host: the mode and the
 * prefix (a unique-local prefix cannot be routed to the host), IPv6 forwarding, and whether the prefix is also
 * on-link on another interface (then the upstream router finds guests by neighbour discovery on that link, which
 * only an NDP proxy answers; natd does not proxy). What cannot: whether the upstream router (or provider) really
 * routes the prefix to this host; doctor says so and how to test it from outside.
 */
import { formatIpv6, networkOf, parseIpv6, sameBytes } from '../ipv6/address.js';
import { isUniqueLocal } from '../ipv6/egress-config.js';

export interface RoutedIpv6Facts {
  bridge: string;
  /** the bridge's served /64 gateway, e.g. "2001:db8:77::1/64"; undefined: natd serves no IPv6 there */
  subnet6: string | undefined;
  /** net.ipv6.conf.all.forwarding */
  forwarding: string | undefined;
  /** every global IPv6 address of the host (`ip -6 -j addr show scope global`) */
  addresses: readonly { dev: string; local: string; prefixlen: number }[];
  natdRunning: boolean;
}

type Finding = { severity: 'ok' | 'warn' | 'error'; check: 'ipv6'; message: string; fix: string };

export function diagnoseRoutedIpv6(f: RoutedIpv6Facts): Finding[] {
  const gateway = f.subnet6 ? parseIpv6(f.subnet6.split('/')[0]!) : undefined;
  if (!gateway) {
    return [{ severity: 'error', check: 'ipv6', message: `routed IPv6: ${f.bridge} has no global IPv6 /64 (natd --subnet6 gives it)`, fix: 'start natd with --subnet6 GLOBAL-PREFIX::1/64 --ipv6-mode routed, or pass --subnet6 to doctor' }];
  }
  const network = networkOf(gateway, 64);
  const prefix = `${formatIpv6(network)}/64`;
  const findings: Finding[] = [];
  if (isUniqueLocal(gateway)) {
    findings.push({ severity: 'error', check: 'ipv6', message: `routed IPv6: ${prefix} is unique-local (fc00::/7): nobody outside can route it to this host`, fix: 'use --ipv6-mode nat (the default), or a global prefix from your provider' });
  }
  if (f.forwarding?.trim() !== '1') {
    findings.push(f.natdRunning
      ? { severity: 'error', check: 'ipv6', message: 'routed IPv6: net.ipv6.conf.all.forwarding is not 1 while natd runs: guests are cut off', fix: 'something reset it; restart natd or sysctl -w net.ipv6.conf.all.forwarding=1 (mind accept_ra=2 on RA uplinks)' }
      : { severity: 'ok', check: 'ipv6', message: 'routed IPv6: net.ipv6.conf.all.forwarding is off; natd turns it on at start', fix: '' });
  }
  for (const a of f.addresses) {
    const bytes = parseIpv6(a.local);
    if (!bytes || a.dev === f.bridge || a.prefixlen > 64) continue;
    if (sameBytes(networkOf(bytes, a.prefixlen), networkOf(network, a.prefixlen))) {
      findings.push({ severity: 'warn', check: 'ipv6', message: `routed IPv6: ${prefix} is also on-link on ${a.dev} (${a.local}/${a.prefixlen}): the upstream router will look for the guests by neighbour discovery on ${a.dev}, and natd does not proxy it`, fix: `have the provider route ${prefix} to this host's address on ${a.dev} (the usual: a separate routed /64 or a delegated prefix), or run an NDP proxy such as ndppd` });
    }
  }
  findings.push({ severity: 'ok', check: 'ipv6', message: `routed IPv6: whether ${prefix} is routed to this host cannot be checked from here; the upstream router needs a route for it via this host's uplink address (test from outside: ping -6 a guest's address)`, fix: '' });
  return findings;
}

/** The routed prefix natd applied, from its table's JSON listing (the rule natd comments as the routed prefix). */
export function routedPrefixInTable(ruleset: unknown, table: string): string | undefined {
  const items = (ruleset as { nftables?: unknown[] } | undefined)?.nftables ?? [];
  for (const item of items as { rule?: { table?: string; comment?: string; expr?: unknown[] } }[]) {
    const rule = item.rule;
    if (rule?.table !== table || !rule.comment?.startsWith('natd: routed IPv6 prefix')) continue;
    const text = JSON.stringify(rule.expr);
    const m = /"prefix":\{"addr":"([0-9a-f:]+)","len":64\}/.exec(text);
    if (m) return m[1];
  }
  return undefined;
}
