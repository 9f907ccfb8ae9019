/**
 * issue 14: `--ipv6 auto`: a Unique Local /64 (RFC 4193) for the bridge, the same on every start. RFC 4193 3.2.2
 * derives the 40-bit Global ID from a hash of a timestamp and an EUI-64; natd has to find the same prefix again on
 * every start without storing it, so the hash input is the bridge name and the host's machine-id (when readable):
 * two bridges on a host, or the same bridge name on two hosts, get different prefixes. Subnet ID 0, gateway ::1.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { formatIpv6, type Ipv6Bytes } from './address.js';

export interface UlaPrefix {
  /** the /64 network, e.g. fd12:3456:789a:: */
  network: Ipv6Bytes;
  /** the gateway: the network's ::1 */
  gateway: Ipv6Bytes;
  prefix: 64;
}

export function deriveUla(bridge: string, machineId: string | undefined): UlaPrefix {
  const h = createHash('sha256').update(`natd-ula:${bridge}:${(machineId ?? '').trim()}`).digest();
  const network = new Uint8Array(16);
  network[0] = 0xfd;
  network.set(h.subarray(0, 5), 1); // the 40-bit Global ID; bytes 6-7 (Subnet ID) stay 0
  const gateway = Uint8Array.from(network);
  gateway[15] = 1;
  return { network, gateway, prefix: 64 };
}

/** /etc/machine-id (or the D-Bus copy), undefined when neither is readable. */
export function readMachineId(files: readonly string[] = ['/etc/machine-id', '/var/lib/dbus/machine-id']): string | undefined {
  for (const file of files) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (id) return id;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function describeUla(ula: UlaPrefix): string {
  return `${formatIpv6(ula.network)}/${ula.prefix}`;
}
