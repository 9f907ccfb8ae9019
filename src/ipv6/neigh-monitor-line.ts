/**
 * One line of `ip -6 monitor neigh dev <bridge>` (iproute2): the kernel's neighbour-table changes as they happen,
 * in `ip neigh` syntax with a prefix for the message type:
 *
 *   fd00::5 lladdr 52:54:00:12:34:56 REACHABLE          RTM_NEWNEIGH (a new entry, or a state/lladdr change)
 *   Deleted fd00::5 lladdr 52:54:00:12:34:56 STALE      RTM_DELNEIGH (garbage-collected or flushed)
 *   miss fd00::5 INCOMPLETE                             RTM_GETNEIGH (an application-probe request)
 *   [NEIGH]fd00::5 ...                                  the same with `label` (not asked for; read anyway)
 *
 * `ip -json monitor` prints text on iproute2 6.1 (the -json flag is ignored by `monitor`), so the text is parsed.
 * Guests choose the addresses and MACs these lines carry: the parser never throws, bounds what it reads (MAX_LINE),
 * and yields an event only for a line that starts (after the prefixes) with an IPv6 address (parseNeighbourLine).
 */
import { parseNeighbourLine, type NeighbourEntry } from './neighbours.js';

export type NeighbourEventKind = 'new' | 'deleted' | 'miss';

export interface NeighbourEvent {
  kind: NeighbourEventKind;
  entry: NeighbourEntry;
}

/** Longer lines are not iproute2's (an address, a MAC and a few flags fit in about 120 characters). */
export const MAX_LINE = 1024;

export function parseMonitorLine(line: string): NeighbourEvent | undefined {
  if (line.length > MAX_LINE) return undefined;
  let rest = line.trim();
  if (rest.startsWith('[NEIGH]')) rest = rest.slice('[NEIGH]'.length).trimStart();
  let kind: NeighbourEventKind = 'new';
  const first = /^(\S+)\s+/.exec(rest);
  if (first?.[1] === 'Deleted') kind = 'deleted';
  else if (first?.[1] === 'miss') kind = 'miss';
  if (kind !== 'new') rest = rest.slice(first![0].length);
  const entry = parseNeighbourLine(rest);
  return entry ? { kind, entry } : undefined;
}
