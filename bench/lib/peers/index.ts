/**
 * The peers natd is measured against besides dnsmasq (issue 18): what each does (Kea: DHCP only, Unbound: DNS only),
 * how it is installed, and whether it is here. A peer that is not installed is skipped with a line saying how to
 * install it, never a failure.
 */
import { execFileSync } from 'node:child_process';
import { KEA_BINARY, KEA_PACKAGE } from './kea.js';
import { UNBOUND_BINARY, UNBOUND_PACKAGE } from './unbound.js';

export type PeerKind = 'kea' | 'unbound';
export const PEER_KINDS: readonly PeerKind[] = ['kea', 'unbound'];

export interface PeerInfo {
  label: string;
  binary: string;
  debianPackage: string;
  /** `<binary> <flag>` prints the version */
  versionFlag: string;
}

export const PEERS: Record<PeerKind, PeerInfo> = {
  kea: { label: 'Kea', binary: KEA_BINARY, debianPackage: KEA_PACKAGE, versionFlag: '-V' },
  unbound: { label: 'Unbound', binary: UNBOUND_BINARY, debianPackage: UNBOUND_PACKAGE, versionFlag: '-V' },
};

/** The peer's version line, or undefined when its binary is not installed (searched in PATH plus /usr/sbin, /sbin). */
export function peerVersion(kind: PeerKind): string | undefined {
  const { binary, versionFlag } = PEERS[kind];
  try {
    const out = execFileSync(binary, [versionFlag], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
    });
    const line = out.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
    return `${PEERS[kind].label} ${line.replace(/^Version\s+/, '')}`;
  } catch {
    return undefined;
  }
}

/**
 * Parses `--peers`: "all" (the default), "none", or a comma list of kea, unbound.
 */
export function parsePeers(spec: string): PeerKind[] {
  const s = spec.trim().toLowerCase();
  if (s === 'all' || s === '') return [...PEER_KINDS];
  if (s === 'none') return [];
  const out: PeerKind[] = [];
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    if (!(PEER_KINDS as readonly string[]).includes(part)) throw new Error(`--peers: all, none or a comma list of ${PEER_KINDS.join(', ')} (got "${part}")`);
    if (!out.includes(part as PeerKind)) out.push(part as PeerKind);
  }
  return out;
}
