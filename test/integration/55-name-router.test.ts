/**
 * Issue 17: many guests behind one host port 80/443, routed by name (TLS SNI, HTTP Host) through the running daemon,
 * with real clients (curl, openssl) and real TLS servers in two guest namespaces, each with its own self-signed
 * certificate that must reach the client untouched. From the outside (wan), from another guest (hairpin through the
 * host's uplink address) and from the host itself; a wildcard; unknown names (TLS alert unrecognized_name, HTTP
 * 421); PROXY v2 parsed by the guest; runtime expose add/remove on a new port (nft set element + listener) that
 * survives a restart; a plain forward on a routed port refused. Hostile clients: a guest holding its per-client
 * maximum cannot starve others, a slow-loris is cut at the head timeout, junk is counted and closed, and the router
 * never connects to anything but a guest of the served subnet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_HOST, UPLINK_WAN, type RunResult } from '../support/netns.js';
import { waitFor } from '../support/wait.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir, waitForListener, type NatdHandle } from '../support/natd-process.js';

const ALPHA = '10.77.0.50';
const TABLE = 'natd-br0';
const GUEST_SCRIPT = path.join(FIXTURES, 'router-guest.mjs');
const CLIENT_SCRIPT = path.join(FIXTURES, 'router-client.mjs');

describe.skipIf(!isRoot())('the name router (issue 17) through the daemon', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let stateDir: string;
  let natdArgs: string[];
  let certs: string;
  let beta: string;

  const cli = (args: string[]): Promise<RunResult> => topo.run(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  const cacert = (guest: 'a' | 'b') => path.join(certs, `${guest}.pem`);
  /** curl with the name pinned to an address; returns body (stdout) and error text. */
  const curl = (ns: string, url: string, address: string, extra: string[] = []) => {
    const u = new URL(url);
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    return topo.run(ns, ['curl', '-sS', '--max-time', '8', '--resolve', `${u.hostname}:${port}:${address}`, ...extra, url], { timeoutMs: 12_000 });
  };
  const client = async (ns: string, args: string[], timeoutMs = 25_000) => {
    const r = await topo.run(ns, [process.execPath, CLIENT_SCRIPT, ...args], { timeoutMs });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n')[0]!) as Record<string, number | string | null>;
  };
  const status = async () => (JSON.parse((await cli(['status', '--json'])).stdout) as { expose: Record<string, number> }).expose;

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    stateDir = tempDir('natd-router-state-');
    certs = tempDir('natd-router-certs-');
    for (const [guest, names] of [['a', 'DNS:a.example.test'], ['b', 'DNS:b.example.test,DNS:*.dev.example.test']] as const) {
      await topo.runOk(topo.host, ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-subj', `/CN=${guest}.example.test`, '-addext', `subjectAltName=${names}`,
        '-keyout', path.join(certs, `${guest}.key`), '-out', path.join(certs, `${guest}.pem`)]);
    }
    const hostsfile = path.join(tempDir('natd-router-hosts-'), 'hostsfile');
    writeFileSync(hostsfile, `${topo.vm(1).mac},${ALPHA},alpha\n`);
    natdArgs = ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--hostsfile', hostsfile,
      '--expose', 'a.example.test=alpha', // a reservation name
      '--expose', 'b.example.test=beta', // a lease hostname
      '--expose', '*.dev.example.test=beta',
      '--expose', 'proxied.example.test:8080=alpha:8080,proxy-protocol=v2',
      '--expose', 'hold.example.test:9000=alpha:9000',
      '--expose-max-conns-per-client', '4', '--expose-head-timeout', '1s'];
    natd = await startNatd(topo, natdArgs, { stateDir });

    const a = await runUdhcpc(topo, topo.vm(1).ns);
    expect(a.events.find((e) => e.event === 'bound')?.ip).toBe(ALPHA);
    const b = await runUdhcpc(topo, topo.vm(2).ns, ['-x', 'hostname:beta']);
    beta = b.events.find((e) => e.event === 'bound')!.ip!;
    expect(beta).toMatch(/^10\.77\.0\./);
    topo.spawn(topo.vm(1).ns, [process.execPath, GUEST_SCRIPT, 'alpha', path.join(certs, 'a.key'), cacert('a')]);
    topo.spawn(topo.vm(2).ns, [process.execPath, GUEST_SCRIPT, 'beta', path.join(certs, 'b.key'), cacert('b')]);
    for (const ns of [topo.vm(1).ns, topo.vm(2).ns]) for (const port of [80, 443, 8080, 9000]) await waitForListener(topo, ns, port);
  }, 90_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('from outside: a.example.test and b.example.test on one address reach their own guest with its own certificate', async () => {
    const a = await curl(topo.wan, 'https://a.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.trim()).toBe(`alpha tls a.example.test ${GATEWAY}`); // the router connects from the gateway
    const b = await curl(topo.wan, 'https://b.example.test/', UPLINK_HOST, ['--cacert', cacert('b')]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout.trim()).toMatch(/^beta tls b\.example\.test /);
    // the certificate is the guest's own: B's is not trusted with A's CA, and the fingerprints match the files
    const wrong = await curl(topo.wan, 'https://b.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(wrong.code).not.toBe(0);
    const seen = await topo.run(topo.wan, ['sh', '-c', `openssl s_client -connect ${UPLINK_HOST}:443 -servername a.example.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`], { timeoutMs: 10_000 });
    const file = await topo.runOk(topo.host, ['openssl', 'x509', '-in', cacert('a'), '-noout', '-fingerprint', '-sha256']);
    expect(seen.stdout.trim()).toBe(file.trim());
  });

  it('HTTP by Host, and a wildcard route', async () => {
    const a = await curl(topo.wan, 'http://a.example.test/', UPLINK_HOST);
    expect(a.stdout.trim(), a.stderr).toBe(`alpha http a.example.test ${GATEWAY}`);
    const w = await curl(topo.wan, 'http://x.dev.example.test/', UPLINK_HOST);
    expect(w.stdout.trim(), w.stderr).toMatch(/^beta http x\.dev\.example\.test /);
    const wt = await curl(topo.wan, 'https://api.dev.example.test/', UPLINK_HOST, ['--cacert', cacert('b')]);
    expect(wt.stdout.trim(), wt.stderr).toMatch(/^beta tls api\.dev\.example\.test /);
    // one label only: a.b.dev.example.test is not covered by *.dev.example.test
    const deep = await curl(topo.wan, 'http://a.b.dev.example.test/', UPLINK_HOST, ['-o', '/dev/null', '-w', '%{http_code}']);
    expect(deep.stdout.trim()).toBe('421');
  });

  it('unknown names: TLS gets an unrecognized_name alert, HTTP 421', async () => {
    const tls = await curl(topo.wan, 'https://nope.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(tls.code).not.toBe(0);
    expect(tls.stderr).toMatch(/unrecognized name/i);
    const http = await curl(topo.wan, 'http://nope.example.test/', UPLINK_HOST, ['-o', '/dev/null', '-w', '%{http_code}']);
    expect(http.stdout.trim()).toBe('421');
    expect((await status()).unknownNames).toBeGreaterThanOrEqual(2);
  });

  it('PROXY v2: the guest parses the header and sees the outside client address', async () => {
    const r = await curl(topo.wan, 'http://proxied.example.test:8080/', UPLINK_HOST);
    expect(r.stdout.trim(), r.stderr).toBe(`alpha proxy ${UPLINK_WAN}`);
  });

  it('hairpin from another guest through the host address, and from the host itself', async () => {
    const fromGuest = await curl(topo.vm(2).ns, 'https://a.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(fromGuest.stdout.trim(), fromGuest.stderr).toBe(`alpha tls a.example.test ${GATEWAY}`);
    const viaGateway = await curl(topo.vm(2).ns, 'http://a.example.test/', GATEWAY);
    expect(viaGateway.stdout.trim(), viaGateway.stderr).toMatch(/^alpha http /);
    const fromHost = await curl(topo.host, 'https://b.example.test/', UPLINK_HOST, ['--cacert', cacert('b')]);
    expect(fromHost.stdout.trim(), fromHost.stderr).toMatch(/^beta tls b\.example\.test /);
    const loopback = await curl(topo.host, 'http://a.example.test/', '127.0.0.1');
    expect(loopback.stdout.trim(), loopback.stderr).toMatch(/^alpha http /);
  });

  it('expose list shows per-route connections and bytes; the table opens exactly the routed ports', async () => {
    const rows = JSON.parse((await cli(['expose', 'list', '--json'])).stdout) as { name: string; port: number; target?: string; total: number; bytesIn: number; bytesOut: number }[];
    const a443 = rows.find((r) => r.name === 'a.example.test' && r.port === 443)!;
    expect(a443.target).toBe(ALPHA);
    expect(a443.total).toBeGreaterThanOrEqual(3);
    expect(a443.bytesIn).toBeGreaterThan(200); // ClientHellos
    expect(a443.bytesOut).toBeGreaterThan(500); // certificates
    expect(rows.find((r) => r.name === 'b.example.test' && r.port === 80)?.target).toBe(beta);
    const human = await cli(['expose', 'list']);
    expect(human.stdout).toMatch(/a\.example\.test\s+443\s+alpha:443/);
    const table = (await topo.runOk(topo.host, ['nft', 'list', 'set', 'inet', TABLE, 'expose_ports']));
    expect(table.replace(/\s+/g, ' ')).toMatch(/elements = \{ 80, 443, 8080, 9000 \}/);
    expect((await cli(['status'])).stdout).toMatch(/name router\s+8 routes on \* port 80,443,8080,9000: \d+ open, [1-9]\d* routed, [1-9]\d* unknown names/);
    const metrics = (await cli(['metrics'])).stdout;
    expect(metrics).toMatch(/natd_expose_connections_total\{bridge="br0",route="a\.example\.test:443"\} [1-9]/);
  });

  it('a route added at runtime on a new port works at once, survives a restart, and stops when removed', async () => {
    const url = 'http://c.example.test:8081/';
    expect((await curl(topo.wan, url, UPLINK_HOST)).code).not.toBe(0);
    const add = await cli(['expose', 'add', 'c.example.test:8081=beta:80']);
    expect(add.code, add.stderr).toBe(0);
    expect((await curl(topo.wan, url, UPLINK_HOST)).stdout).toMatch(/^beta http c\.example\.test:8081 /);
    // a guest reaches it too (the port was added to the input chain's set)
    expect((await curl(topo.vm(1).ns, url, UPLINK_HOST)).stdout).toMatch(/^beta http /);

    expect(await topo.stop(natd.child, 5000)).toBe(0);
    natd = await startNatd(topo, natdArgs, { stateDir });
    expect((await curl(topo.wan, url, UPLINK_HOST)).stdout).toMatch(/^beta http /);

    const remove = await cli(['expose', 'remove', 'c.example.test']);
    expect(remove.code, remove.stderr).toBe(0);
    expect((await curl(topo.wan, url, UPLINK_HOST)).code).not.toBe(0);
    const set = await topo.runOk(topo.host, ['nft', 'list', 'set', 'inet', TABLE, 'expose_ports']);
    expect(set).not.toContain('8081');
    expect((await cli(['expose', 'remove', 'a.example.test'])).stderr).toMatch(/comes from the configuration/);
  });

  it('refuses a plain forward on a routed port, and bad or non-guest routes, with a clear error and nothing changed', async () => {
    const before = await topo.runOk(topo.host, ['nft', '-j', 'list', 'table', 'inet', TABLE]);
    const forward = await cli(['forwards', 'add', 'tcp:443=alpha:443']);
    expect(forward.code).not.toBe(0);
    expect(forward.stderr).toMatch(/443 is a routed port/);
    const cases: [string, RegExp][] = [
      ['x.example.test=10.77.0.1', /gateway/], // natd's own address: host-only services are never targets
      ['x.example.test=192.0.2.10', /not inside the served subnet/],
      ['x.example.test=web:8443', /give the listen port/],
      ['a.example.test=beta', /already routed/],
      ['x.example.test=alpha,proxy-protocol=v3', /unknown option/],
    ];
    for (const [spec, message] of cases) {
      const r = await cli(['expose', 'add', spec]);
      expect(r.code, spec).not.toBe(0);
      expect(r.stderr, spec).toMatch(message);
    }
    expect(await topo.runOk(topo.host, ['nft', '-j', 'list', 'table', 'inet', TABLE])).toBe(before);
    // check-config rejects the same conflict as configuration
    const check = await topo.run(topo.host, [process.execPath, NATD_CLI, 'check-config', '--bridge', 'br0', '--subnet', '10.77.0.1/24',
      '--expose', 'a.example.test=alpha', '--forward', `80=${ALPHA}:80`]);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toMatch(/tcp port 80 is a routed port/);
  });

  it('hostile guest: holding its per-client maximum does not starve others; one more is refused', async () => {
    const held = client(topo.vm(2).ns, ['hold', UPLINK_HOST, '9000', 'hold.example.test', '4', '4000']);
    const result = await held;
    expect(result.held).toBe(4);
    expect(result.extraClosedAt).not.toBeNull(); // closed at once by the per-client limit
    expect(Number(result.extraClosedAt)).toBeLessThan(1500);
    // the attacker still holds its four: others get through
    const other = await curl(topo.wan, 'https://a.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(other.stdout.trim(), other.stderr).toMatch(/^alpha tls /);
    expect((await status()).refusedByLimit).toBeGreaterThanOrEqual(1);
    // the attacker is gone: its slots are given back
    await waitFor('the held connections released', async () => (await status()).active === 0, 15_000, 100);
  });

  it('hostile clients: a slow-loris is cut at the head timeout; junk is counted and closed; natd stays up', async () => {
    const before = await status();
    const slow = await client(topo.vm(2).ns, ['slow', UPLINK_HOST, '80']);
    expect(slow.closedAfterMs, JSON.stringify({ before, after: await status() })).not.toBeNull();
    expect(Number(slow.closedAfterMs), JSON.stringify({ before, after: await status() })).toBeGreaterThanOrEqual(900);
    expect(Number(slow.closedAfterMs)).toBeGreaterThanOrEqual(900);
    expect(Number(slow.closedAfterMs)).toBeLessThan(4000);
    // a TLS record header announcing a ClientHello, then garbage; and plain binary junk
    for (const junk of ['16030100ff01000000ffffffffffffffffffffffffffffffffff', '00ff00ff00ff0d0a0d0a00']) {
      const r = await client(topo.wan, ['junk', UPLINK_HOST, '443', junk]);
      expect(r.closedAfterMs, junk).not.toBeNull();
    }
    const after = await status();
    expect(after.headTimeouts).toBeGreaterThan(before.headTimeouts!);
    expect(after.invalid! + after.headTimeouts!).toBeGreaterThan(before.invalid! + before.headTimeouts! + 1);
    expect(natd.child.exitCode).toBeNull();
    const ok = await curl(topo.wan, 'http://a.example.test/', UPLINK_HOST);
    expect(ok.stdout).toMatch(/^alpha http /);
  });

  it('reload re-reads expose from the config file: new routes for new connections, removed ones answer 421', async () => {
    expect(await topo.stop(natd.child, 5000)).toBe(0);
    const file = path.join(tempDir('natd-router-config-'), 'natd.json');
    writeFileSync(file, JSON.stringify({ expose: ['r1.example.test=alpha'] }));
    const base = natdArgs.filter((a, i) => a !== '--expose' && natdArgs[i - 1] !== '--expose');
    natd = await startNatd(topo, [...base, '--config', file], { stateDir });
    expect((await curl(topo.wan, 'http://r1.example.test/', UPLINK_HOST)).stdout).toMatch(/^alpha http r1\.example\.test /);
    writeFileSync(file, JSON.stringify({ expose: ['r2.example.test=beta'] }));
    const reloads = natd.logs.filter((l) => l.msg === 'reloaded').length;
    natd.child.kill('SIGHUP');
    await waitFor('reloaded', async () => natd.logs.filter((l) => l.msg === 'reloaded').length > reloads, 10_000, 100);
    expect((await curl(topo.wan, 'http://r2.example.test/', UPLINK_HOST)).stdout).toMatch(/^beta http r2\.example\.test /);
    const gone = await curl(topo.wan, 'http://r1.example.test/', UPLINK_HOST, ['-o', '/dev/null', '-w', '%{http_code}']);
    expect(gone.stdout.trim()).toBe('421');
  });
});
