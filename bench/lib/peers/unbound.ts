/**
 * NLnet Labs Unbound (Debian's unbound) as a DNS peer, set up as a caching forwarder like natd and dnsmasq: every
 * query forwarded to the bench's fake upstream (forward-zone "."), the iterator module only (no DNSSEC validation),
 * one thread, on the bridge address, answering the guest subnet. Its config, pid file and working directory are in
 * the run's temp dir; the benchmark starts it (`-d`: in the foreground, so the PID is Unbound's) and stops it by PID.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Started } from '../../../test/support/netns.js';
import { BENCH_PREFIX, GATEWAY, UPLINK_WAN, type BenchNetwork } from '../topology.js';

export const UNBOUND_BINARY = 'unbound';
export const UNBOUND_PACKAGE = 'unbound';
/** The bench's query names end in this zone; "test." is one of Unbound's default local zones (RFC 6761), which it
 * would answer NXDOMAIN itself, so it is switched off with `local-zone: "test." nodefault`. */
export const BENCH_TEST_ZONE = 'test.';

export function unboundConfig(dir: string): string {
  return `server:
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${path.join(dir, 'unbound.pid')}"
  use-syslog: no
  logfile: ""
  verbosity: 1
  interface: ${GATEWAY}
  port: 53
  do-ip6: no
  num-threads: 1
  module-config: "iterator"
  access-control: 10.77.0.0/${BENCH_PREFIX} allow
  local-zone: "${BENCH_TEST_ZONE}" nodefault
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: ${UPLINK_WAN}
`;
}

export async function startUnbound(net: BenchNetwork, dir: string): Promise<Started> {
  const configFile = path.join(dir, 'unbound.conf');
  writeFileSync(configFile, unboundConfig(dir));
  return net.topology.start(net.hostNs, [UNBOUND_BINARY, '-d', '-c', configFile], {
    ready: /start of service/,
    what: 'unbound',
    timeoutMs: 20_000,
  });
}
