/**
 * `natd demo`: a safe first try. Builds throwaway network namespaces (a host with a bridge, two fake VMs, a fake
 * internet), runs natd in the host namespace, and shows the VMs getting leases, resolving each other's names and
 * reaching the internet through the NAT. Everything is deleted afterwards, also on failure or Ctrl-C; the
 * machine's own network is never touched.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, NatdError } from '../errors.js';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from './topology.js';
import type { ChildProcess } from 'node:child_process';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOMAIN = 'demo';

/** udhcpc calls this with the lease in its environment; it configures eth0 like a guest OS would. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    echo "$ip" > "$LEASE_OUT" ;;
esac
`;

function say(line: string): void {
  process.stdout.write(line + '\n');
}

/** Starts a process in a namespace and waits for its ready line; a failure is a COMMAND error with its output. */
async function startReady(topo: Topology, ns: string, argv: string[], ready: string, what: string): Promise<ChildProcess> {
  try {
    return (await topo.start(ns, argv, { ready, what, stream: 'stdout' })).child;
  } catch (err) {
    throw new NatdError(ErrorCodes.COMMAND, (err as Error).message);
  }
}

function requireTools(): void {
  const missing = ['busybox', 'dig'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    throw new NatdError(ErrorCodes.COMMAND, `natd demo needs ${missing.join(' and ')} (apt-get install busybox dnsutils)`);
  }
}

export async function runDemo(): Promise<number> {
  if (!isRoot()) throw new NatdError(ErrorCodes.COMMAND, 'natd demo creates network namespaces: run it as root');
  requireTools();
  const work = mkdtempSync(path.join(tmpdir(), 'natd-demo-'));
  const script = path.join(work, 'udhcpc.sh');
  writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
  say('natd demo: building throwaway namespaces (host with bridge br0, vm alpha, vm beta, a fake internet)');
  const topo = Topology.create({ vms: 2 });
  try {
    await startReady(topo, topo.wan, [process.execPath, path.join(HERE, 'fake-internet.js'), UPLINK_WAN], 'listening', 'the fake internet');
    const natd = await startReady(topo, topo.host, [
      process.execPath, path.join(HERE, '..', 'cli.js'), '--bridge', 'br0', '--domain', DOMAIN, '--upstream', UPLINK_WAN,
      '--state-dir', path.join(work, 'state'), '--control-socket', path.join(work, 'natd.sock'),
    ], '"natd ready"', 'natd');
    say(`✓ natd is serving br0 in the host namespace (gateway ${GATEWAY}, DHCP, DNS, nftables)`);

    const names = ['alpha', 'beta'];
    const addresses: string[] = [];
    for (const [i, name] of names.entries()) {
      const out = path.join(work, `${name}.lease`);
      const r = await topo.run(topo.vm(i + 1).ns, [
        'env', `LEASE_OUT=${out}`, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1',
        '-x', `hostname:${name}`, '-s', script,
      ]);
      if (r.code !== 0) throw new NatdError(ErrorCodes.COMMAND, `vm ${name} got no lease: ${r.stderr.trim()}`);
      addresses.push(readFileSync(out, 'utf8').trim());
      say(`✓ vm ${name} got ${addresses[i]} from natd's DHCP server (udhcpc)`);
    }

    const resolved = (await topo.runOk(topo.vm(1).ns, ['dig', '+short', '+time=2', `@${GATEWAY}`, `beta.${DOMAIN}`])).trim();
    if (resolved !== addresses[1]) throw new NatdError(ErrorCodes.COMMAND, `alpha resolved beta.${DOMAIN} to "${resolved}"`);
    say(`✓ alpha resolves beta.${DOMAIN} → ${resolved} (natd's DNS knows its guests)`);
    const web = (await topo.runOk(topo.vm(1).ns, ['dig', '+short', '+time=2', `@${GATEWAY}`, 'www.example'])).trim();
    say(`✓ alpha resolves www.example → ${web} (forwarded to the upstream in the fake internet)`);

    const fetch = `require('net').connect(80, '${web}', function () { this.write('GET / HTTP/1.0\\r\\n\\r\\n'); }).on('data', (d) => process.stdout.write(d.toString().split('\\r\\n\\r\\n')[1] ?? ''))`;
    const page = (await topo.runOk(topo.vm(1).ns, [process.execPath, '-e', fetch])).trim();
    say(`✓ alpha → http://www.example/ says: "${page}" (the host's uplink address: masquerade works)`);

    const leases = await topo.runOk(topo.host, [process.execPath, path.join(HERE, '..', 'cli.js'), 'leases', '--control-socket', path.join(work, 'natd.sock')]);
    say('\n`natd leases` in the host namespace:\n' + leases);
    await topo.stop(natd);
    const tables = await topo.runOk(topo.host, ['nft', 'list', 'tables']);
    if (tables.includes('natd-br0')) throw new NatdError(ErrorCodes.COMMAND, 'natd stopped but left its nftables table behind');
    say('✓ natd stopped; its nftables table is gone');
    return 0;
  } finally {
    await topo.destroy();
    rmSync(work, { recursive: true, force: true });
    say('cleaned up: every namespace the demo made is deleted');
  }
}
