/**
 * The control commands' output for people: aligned tables and a short status summary. `--json` prints the
 * daemon's answer as it is instead (control/commands.ts); what is here only reads the typed results (protocol.ts).
 */
import { INFINITE_EXPIRES_AT } from '../dhcp/types.js';
import type { ExposeRow, ForwardRow, LeaseRow, ReservationRow, StatusReport } from './protocol.js';
import { journalSummary } from './wait-summary.js'; // issue 18

/** Renders rows as an aligned text table with a header. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** 3725 s as 1h02m, 75 s as 1m15s, 9 s as 9s; 1d and more as 2d03h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s >= 86400) return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  return `${s}s`;
}

/** Bytes as 512 B, 1.5 KiB, 32 MiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 || v >= 10 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((100 * part) / whole)}%` : '-';
}

/** A counter map as `discover 3, request 5`, largest first; `none` when empty. */
function counts(map: Record<string, number> | undefined): string {
  const entries = Object.entries(map ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

/** Time left until `expiresAt`, or 'infinite' for a lease that never ends (issue 16). */
export function remaining(expiresAt: number, now = Date.now()): string {
  return expiresAt >= INFINITE_EXPIRES_AT ? 'infinite' : formatDuration((expiresAt - now) / 1000);
}

export function formatLeases(rows: LeaseRow[], now = Date.now()): string {
  if (!rows.length) return 'no leases\n';
  const left = (expiresAt: number) => remaining(expiresAt, now);
  return formatTable(['ADDRESS', 'MAC', 'HOSTNAME', 'EXPIRES IN', 'CLIENT ID'],
    rows.map((l) => l.state === 'declined'
      ? [l.address, '-', '(declined)', left(l.expiresAt), '-']
      : [l.address, l.mac || '-', l.hostname ?? '-', left(l.expiresAt), l.iaid === undefined ? l.clientId : `${l.clientId} iaid ${l.iaid}`]));
}

export function formatReservations(rows: ReservationRow[]): string {
  if (!rows.length) return 'no reservations\n';
  return formatTable(['MAC', 'ADDRESS', 'NAME', 'SOURCE'], rows.map((r) => [r.mac, r.address, r.hostname ?? '-', r.source ?? '-']));
}

/** `natd forwards list` for people; a forward kept but not applied says so beside its guest. */
export function formatForwards(rows: ForwardRow[]): string {
  if (!rows.length) return 'no port forwards\n';
  const guest = (f: ForwardRow) => (f.inTable === false ? `${f.guest} (${f.problem ? `${f.problem}; ` : ''}not in the table)` : f.guest);
  return formatTable(['PROTO', 'HOST', 'GUEST', 'SPEC'], rows.map((f) => [f.protocol, f.host, guest(f), f.spec]));
}

/** issue 17: `natd expose list` for people: one row per name and port, with its guest now and its traffic. */
export function formatExpose(rows: ExposeRow[]): string {
  if (!rows.length) return 'no name routes\n';
  const guest = (r: ExposeRow) => `${r.guest}:${r.guestPort}${r.target && r.target !== r.guest ? ` (${r.target})` : ''}${r.problem ? ` (${r.problem})` : ''}${r.proxyProtocol ? ` proxy-${r.proxyProtocol}` : ''}`;
  return formatTable(['NAME', 'PORT', 'GUEST', 'ACTIVE', 'TOTAL', 'IN', 'OUT', 'SOURCE'], rows.map((r) => [
    r.name, String(r.port), guest(r), String(r.active), String(r.total), formatBytes(r.bytesIn), formatBytes(r.bytesOut), r.source,
  ]));
}

type Dhcp = NonNullable<StatusReport['dhcp']>;
type Dns = NonNullable<StatusReport['dns']>;

function dhcpRows(d: Dhcp): string[][] {
  const inUse = d.leases + d.offers + d.quarantined;
  const rows = [
    ['dhcp pool', `${d.range}: ${d.rangeSize} addresses, ${d.free} free, ${percent(inUse, d.rangeSize)} in use`],
    ['leases', `${d.leases} active, ${d.offers} offered, ${d.quarantined} quarantined (at most ${d.quarantineLimit}); ${d.reservations} reservations; lease time ${formatDuration(d.leaseTimeSeconds)}`],
    ['dhcp in', `${d.received} messages (${counts(d.receivedByType)}); dropped: ${counts(d.dropped)}`],
    ['dhcp out', `${counts(d.sent)}; failed: ${d.sendFailures} sends, ${d.commitFailures} journal writes`],
  ];
  if (d.journal) rows.push(['dhcp journal', journalSummary(d.journal)]); // issue 18: what ACKs wait for the disk
  if (d.probes) rows.push(['probes', `${d.probes.probes} sent, ${d.probes.inUse} found in use, ${d.probes.running} running, ${d.probes.queued} queued, ${d.probes.errors} errors`]);
  return rows;
}

function dnsRows(d: Dns): string[][] {
  const c = d.cache;
  return [
    ['dns', `${d.queries} queries (udp ${d.udp}, tcp ${d.tcp}): ${d.cacheHits} from cache, ${d.forwarded} forwarded, ${d.local} local, ${d.servfail} SERVFAIL, ${d.refused} refused, ${d.dropped} dropped`],
    ['dns cache', `${d.cacheEntries} of ${c.maxEntries} entries, ${formatBytes(c.bytes)} of ${formatBytes(c.maxBytes)}; hit rate ${percent(c.hits, c.hits + c.misses)}; ${c.evictions} evicted`],
    ['upstreams', `${d.upstream.perServer.length} servers: ${d.upstream.sent} sent, ${d.upstream.received} answered, ${d.upstream.timeouts} timed out, ${d.upstream.failures} queries failed`],
    // issue 14: natd's DNS on the IPv6 gateway
    ...(d.ipv6 ? [['dns ipv6', `[${d.ipv6.address}]:53: ${d.ipv6.queries} queries, ${d.ipv6.cacheHits} from cache, ${d.ipv6.refused} refused; ${d.ipv6.guestAddresses.addresses} guest addresses known`]] : []),
  ];
}

/** One row per upstream server, with its health: ok, failing, or backing off. */
function upstreamTable(d: Dns): string {
  const servers = d.upstream.perServer;
  if (!servers.length) return '  (no upstream servers: only local names are answered)\n';
  const health = (s: Dns['upstream']['perServer'][number]) =>
    s.backoffRemainingMs > 0 ? `backing off ${formatDuration(s.backoffRemainingMs / 1000)} (${s.consecutiveFailures} failures)`
      : s.consecutiveFailures > 0 ? `failing (${s.consecutiveFailures} in a row)` : 'ok';
  const table = formatTable(['SERVER', 'SENT', 'ANSWERED', 'TIMEOUTS', 'AVG MS', 'HEALTH'], servers.map((s) => [
    s.server, String(s.sent), String(s.received), String(s.timeouts), s.received ? s.latencyMsAvg.toFixed(1) : '-', health(s),
  ]));
  return table.split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
}

/** issue 14: the DHCPv6 lines of `natd status` */
function dhcp6Rows(d: NonNullable<StatusReport['dhcp6']>): string[][] {
  return [
    ['dhcpv6', `${d.mode}${d.range ? ` ${d.range}` : ''}: ${d.leases} leases, ${d.offers} advertised, ${d.declined} declined; ${d.reservations} reservations`],
    ['dhcpv6 in', `${d.received} messages (${counts(d.receivedByType)}); dropped: ${counts(d.dropped)}; outcomes: ${counts(d.outcomes)}`],
    ['dhcpv6 out', `${counts(d.sent)}; failed: ${d.sendFailures} sends`],
  ];
}

/** `natd status` for people: the state of each part in a line or a table; `--json` has everything. */
export function formatStatus(s: StatusReport): string {
  const up = s.state === 'starting' ? 'starting' : `up ${formatDuration(s.uptimeSeconds ?? 0)}`;
  const rows: string[][] = [];
  if (s.subnet) rows.push(['subnet', `${s.subnet}, gateway ${s.gateway ?? '-'}`]);
  if (s.dhcp) rows.push(...dhcpRows(s.dhcp));
  if (s.state === 'running') rows.push(...(s.dns ? dnsRows(s.dns) : [['dns', 'off (--no-dns)']]));
  const tail: string[][] = [];
  if (s.state === 'running') tail.push(['firewall', s.firewall ? `table ${s.firewall.table}: applied ${s.firewall.applies}x, healed ${s.firewall.heals}x, ${s.firewall.runtimeForwards} runtime forwards` : 'off (--no-firewall)']);
  if (s.expose && s.expose.routes) { // issue 17
    const e = s.expose;
    tail.push(['name router', `${e.routes} routes on ${e.listen} port ${e.ports.join(',')}: ${e.active} open, ${e.routed} routed, ${e.unknownNames} unknown names, ${e.refusedByLimit} refused by limit, ${e.headTimeouts} head timeouts`]);
  }
  if (s.control) tail.push(['control', `${s.control.refusedPeers} peers refused`]);
  if (s.kernelDrops) tail.push(['kernel drops', counts(s.kernelDrops)]);
  if (s.dhcp6) rows.push(...dhcp6Rows(s.dhcp6)); // issue 14
  const width = Math.max(0, ...[...rows, ...tail].map(([k]) => k!.length));
  const line = ([k, v]: string[]) => `${k!.padEnd(width)}  ${v}\n`;
  return `natd on ${s.bridge}, pid ${s.pid}, ${up}\n` + rows.map(line).join('') + (s.dns ? upstreamTable(s.dns) : '') + tail.map(line).join('');
}
