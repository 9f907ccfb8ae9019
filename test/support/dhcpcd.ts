/**
 * dhcpcd -6 as the namespace tests run it (tests 92 and 97). dhcpcd keeps its DUID and leases in /var/lib/dhcpcd and
 * its pid and control files in /run/dhcpcd, shared by every namespace: each guest gets an interface name of its own
 * (renameIface) and runs dhcpcd in a mount (and uts) namespace of its own with a tmpfs on /var/lib/dhcpcd, so each
 * makes its own DUID-LLT from its own MAC, as a VM would.
 */
import type { Topology, Vm } from './netns.js';

/** Renames the vm's eth0 to `name` (and brings it up). */
export async function renameIface(topo: Topology, vm: Vm, name: string): Promise<void> {
  await topo.runOk(vm.ns, ['ip', 'link', 'set', 'eth0', 'down']);
  await topo.runOk(vm.ns, ['ip', 'link', 'set', 'eth0', 'name', name]);
  await topo.runOk(vm.ns, ['ip', 'link', 'set', name, 'up']);
}

/** The argv (for Topology.spawn) of `dhcpcd -B -6 -d -f conf iface`; `before`: shell run first in its namespace. */
export function dhcpcdArgv(conf: string, iface: string, before = ''): string[] {
  const run = `mount -t tmpfs tmpfs /var/lib/dhcpcd && ${before ? `${before} && ` : ''}exec dhcpcd -B -6 -d -f ${conf} ${iface}`;
  return ['unshare', '--mount', '--uts', '--propagation', 'private', 'sh', '-c', run];
}
