/**
 * What the importers (import-dnsmasq, import-libvirt) share: reading optional side files, refusing to overwrite an
 * operator's state, checking reservations against the subnet, and writing natd's state dir (reservations file,
 * lease journal through LeaseStore) and config — the config last, so a half-done import is never started.
 */
import { access, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../state/atomic-file.js';
import type { RawSettings } from '../config.js';
import { STATE_FILES } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { silentLogger } from '../log.js';
import { formatIpv4, makeSubnet, parseIpv4, type Subnet } from '../net/ipv4.js';
import type { FileProblem } from '../dhcp/hostsfile.js';
import { LeaseStore } from '../dhcp/lease-store.js';
import type { Lease, Reservation } from '../dhcp/types.js';
import { reservationClash } from '../dhcp/reservation-rules.js';

/** natd's reservations file in the state dir (dnsmasq hostsfile format). */
export const RESERVATIONS_FILE = STATE_FILES.importedReservations;

export async function readOptional(path: string, skipped: FileProblem[], what: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    skipped.push({ file: path, line: 0, message: `cannot read the ${what}: ${(err as Error).message}; nothing imported from it` });
    return undefined;
  }
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Refuses to overwrite what an operator (or a running natd) already has, unless forced. */
export async function checkTargets(force: boolean | undefined, configOut: string, reservationsFile: string, journal: string): Promise<void> {
  if (force) return;
  const taken: string[] = [];
  if (await exists(configOut)) taken.push(configOut);
  if (await exists(reservationsFile)) taken.push(reservationsFile);
  const journalText = await readFile(journal, 'utf8').catch(() => '');
  if (journalText.trim() !== '') taken.push(journal);
  if (taken.length) {
    throw new NatdError(ErrorCodes.STATE, `import would overwrite ${taken.join(', ')}; move them away or pass --force`);
  }
}

/** Writes the imported config, creating its directory (e.g. /etc/natd on a host that never ran natd). */
export async function writeImportedConfig(configOut: string, settings: unknown): Promise<void> {
  await mkdir(dirname(configOut), { recursive: true });
  await writeFileAtomic(configOut, JSON.stringify(settings, null, 2) + '\n');
}

/** The subnet the settings describe, to check reservations and leases against. */
export function settingsSubnet(settings: RawSettings): Subnet | undefined {
  if (typeof settings.subnet !== 'string') return undefined;
  const [address, prefix] = settings.subnet.split('/');
  const parsed = parseIpv4(address ?? '');
  return parsed === undefined ? undefined : makeSubnet(parsed, Number(prefix));
}

/** Adds `second` to `first`; an entry whose MAC or address is already taken is skipped (first definition wins). */
export function mergeReservations(first: Reservation[], second: Reservation[], file: string, skipped: FileProblem[]): Reservation[] {
  const merged = [...first];
  for (const r of second) {
    const clash = reservationClash(merged, r);
    if (clash) skipped.push({ file, line: 0, message: `reservation ${r.mac} ${formatIpv4(r.address)} clashes with ${clash.mac} ${formatIpv4(clash.address)}; skipped` });
    else merged.push(r);
  }
  return merged;
}

/** Writes the leases through LeaseStore, so the journal is exactly what the daemon reads (and its lock is honoured). */
export async function writeLeases(dir: string, leases: Lease[], replace: boolean, now: number): Promise<void> {
  const store = await LeaseStore.open(dir, { logger: silentLogger, now: () => now });
  try {
    if (replace) {
      // --force: the imported leases replace whatever the journal held.
      const old = store.load(0).leases;
      await store.commit(old.map((l) => ({ kind: 'release', clientId: l.clientId, address: l.address })));
    }
    await store.commit(leases.map((lease) => ({ kind: 'bind', lease })));
    await store.compact();
  } finally {
    await store.close();
  }
}
