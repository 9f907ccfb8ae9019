/**
 * systemd-networkd as the namespace tests run it: in a private mount namespace of its vm (the caller runs the script
 * with `unshare`), on a tmpfs /run of its own (no D-Bus, none of the host's networkd state), with only the given
 * .network file (the host's /etc/systemd/network hidden), and a read-only /sys so it does not wait for udev.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes `dir/<networkName>` with these lines and the start script at `script` (mode 0755). */
export function writeNetworkdScript(dir: string, script: string, networkName: string, networkLines: readonly string[]): void {
  const networkFile = path.join(dir, networkName);
  writeFileSync(networkFile, networkLines.join('\n'));
  const hidden = path.join(dir, 'empty');
  mkdirSync(hidden, { recursive: true });
  writeFileSync(script, [
    '#!/bin/sh', 'set -e',
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    'mkdir -p /run/systemd/netif /run/systemd/network',
    'chown systemd-network:systemd-network /run/systemd/netif',
    `cp ${networkFile} /run/systemd/network/`,
    `if [ -d /etc/systemd/network ]; then mount --bind ${hidden} /etc/systemd/network; fi`,
    'mount -o remount,ro /sys',
    'exec env SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-networkd',
    '',
  ].join('\n'), { mode: 0o755 });
}
