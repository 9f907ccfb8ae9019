/**
 * Issue 17, the name router's edges with real clients in namespaces (55 has the main cases):
 *   - a TLS client whose ClientHello goes one byte per TCP segment (TCP_NODELAY, 1 ms apart) still gets routed by
 *     SNI and completes its handshake with the right guest's certificate;
 *   - clients that ask a guest for hundreds of MiB and never read cannot grow natd's RSS (VmRSS of the natd process
 *     this test started) beyond a bound, while another client's download through the same router goes on at speed;
 *   - `--expose-listen ADDR`: the routed ports listen on that address only; the same port on another host address
 *     (the gateway, loopback) routes nothing;
 *   - `--expose-fallback GUEST`: a ClientHello without SNI (curl to an IP address) reaches the fallback guest; after
 *     a reload without it, the same client gets the unrecognized_name alert and a clean close (a FIN, no reset);
 *   - a stop while clients hold stalled downloads is clean (exit 0 within natd's 2 s);
 *   - the per-client limit counts an IPv6 client by its /64: a second address of the same /64 is refused once the
 *     first holds the limit, an address of another /64 gets in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK6_HOST, UPLINK_HOST, UPLINK_WAN, type RunResult } from '../support/netns.js';
import { buildClientHelloMessage, toRecords } from '../support/tls-records.js';
import { waitFor } from '../support/wait.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir, waitForListener, type NatdHandle } from '../support/natd-process.js';

const ALPHA = '10.77.0.50';
const GUEST_SCRIPT = path.join(FIXTURES, 'router-guest.mjs');
const CLIENT_SCRIPT = path.join(FIXTURES, 'router-client.mjs');
/** natd's RSS may grow by at most this much while clients hold stalled downloads */
const RSS_BOUND_KIB = 32 * 1024;
const STALLED_CLIENTS = 4;
const STALLED_MIB = 512;

describe.skipIf(!isRoot())('the name router (issue 17): trickled ClientHello, stalled readers, listen address, fallback', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let certs: string;
  let configFile: string;
  let stateDir: string;
  let natdArgs: string[];

  const cli = (args: string[]): Promise<RunResult> => topo.run(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  const cacert = (guest: 'a' | 'b') => path.join(certs, `${guest}.pem`);
  const fingerprint = async (guest: 'a' | 'b') =>
    (await topo.runOk(topo.host, ['openssl', 'x509', '-in', cacert(guest), '-noout', '-fingerprint', '-sha256'])).trim().replace(/^.*=/, '');
  const curl = (ns: string, url: string, address: string | undefined, extra: string[] = []) => {
    const u = new URL(url);
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    const resolve = address === undefined ? [] : ['--resolve', `${u.hostname}:${port}:${address}`];
    return topo.run(ns, ['curl', '-sS', '--max-time', '8', ...resolve, ...extra, url], { timeoutMs: 12_000 });
  };
  const client = async (ns: string, args: string[], timeoutMs = 25_000) => {
    const r = await topo.run(ns, [process.execPath, CLIENT_SCRIPT, ...args], { timeoutMs });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n')[0]!) as Record<string, number | string | boolean | null>;
  };
  const status = async () => (JSON.parse((await cli(['status', '--json'])).stdout) as { expose: Record<string, number> }).expose;
  const routeRow = async (name: string) =>
    (JSON.parse((await cli(['expose', 'list', '--json'])).stdout) as { name: string; active: number; total: number; bytesOut: number }[]).find((r) => r.name === name)!;
  const rssKiB = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${natd.child.pid}/status`, 'utf8'))![1]);
  /** curl download of MIB MiB through the router from the wan: bytes and bytes/s as curl counts them */
  const download = async (mib: number) => {
    const r = await topo.run(topo.wan, ['curl', '-sS', '--max-time', '60', '--resolve', `big.example.test:9100:${UPLINK_HOST}`, '-o', '/dev/null',
      '-w', '%{size_download} %{speed_download}', `http://big.example.test:9100/${mib}`], { timeoutMs: 65_000 });
    expect(r.code, r.stderr).toBe(0);
    const [size, speed] = r.stdout.trim().split(' ').map(Number) as [number, number];
    return { size, speed };
  };

  beforeAll(async () => {
    topo = Topology.create({ vms: 2, ipv6: true });
    stateDir = tempDir('natd-router56-state-');
    certs = tempDir('natd-router56-certs-');
    for (const [guest, names] of [['a', 'DNS:a.example.test'], ['b', 'DNS:b.example.test']] as const) {
      await topo.runOk(topo.host, ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
        '-subj', `/CN=${guest}.example.test`, '-addext', `subjectAltName=${names}`,
        '-keyout', path.join(certs, `${guest}.key`), '-out', path.join(certs, `${guest}.pem`)]);
    }
    const hostsfile = path.join(tempDir('natd-router56-hosts-'), 'hostsfile');
    writeFileSync(hostsfile, `${topo.vm(1).mac},${ALPHA},alpha\n`);
    configFile = path.join(tempDir('natd-router56-config-'), 'natd.json');
    writeFileSync(configFile, JSON.stringify({ exposeFallback: 'beta' }));
    natdArgs = ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--hostsfile', hostsfile, '--config', configFile,
      '--expose', 'a.example.test=alpha', '--expose', 'b.example.test=beta',
      '--expose', 'big.example.test:9100=alpha:9100', '--expose', 'stall.example.test:9100=alpha:9100'];
    natd = await startNatd(topo, [...natdArgs, '--expose-listen', UPLINK_HOST], { stateDir });
    // the process whose RSS is measured is natd itself (ip netns exec replaces itself with it)
    expect(readFileSync(`/proc/${natd.child.pid}/cmdline`, 'utf8')).toContain(NATD_CLI);

    const a = await runUdhcpc(topo, topo.vm(1).ns);
    expect(a.events.find((e) => e.event === 'bound')?.ip).toBe(ALPHA);
    const b = await runUdhcpc(topo, topo.vm(2).ns, ['-x', 'hostname:beta']);
    expect(b.events.find((e) => e.event === 'bound')?.ip).toMatch(/^10\.77\.0\./);
    topo.spawn(topo.vm(1).ns, [process.execPath, GUEST_SCRIPT, 'alpha', path.join(certs, 'a.key'), cacert('a')]);
    topo.spawn(topo.vm(2).ns, [process.execPath, GUEST_SCRIPT, 'beta', path.join(certs, 'b.key'), cacert('b')]);
    for (const ns of [topo.vm(1).ns, topo.vm(2).ns]) for (const port of [80, 443, 9100]) await waitForListener(topo, ns, port);
  }, 90_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('a ClientHello sent one byte per segment is routed by SNI; the handshake completes with the guest\'s own certificate', async () => {
    const r = await client(topo.wan, ['trickle', UPLINK_HOST, '443', 'a.example.test', cacert('a')]);
    expect(Number(r.trickledWrites)).toBeGreaterThan(200); // the whole ClientHello, one byte per write
    expect(r.fingerprint256).toBe(await fingerprint('a'));
    expect(r.body).toMatch(/^alpha tls a\.example\.test /);
    // b's name through the same trickle reaches b
    const rb = await client(topo.wan, ['trickle', UPLINK_HOST, '443', 'b.example.test', cacert('b')]);
    expect(rb.fingerprint256).toBe(await fingerprint('b'));
  });

  it(`clients that never read ${STALLED_MIB} MiB downloads do not grow natd's RSS by more than ${RSS_BOUND_KIB / 1024} MiB; another download meanwhile goes on`, async () => {
    // warm up (heap, read buffers) and measure the download alone
    const alone = await download(64);
    expect(alone.size).toBe(64 * 1024 * 1024);
    const rssBefore = rssKiB();
    const stalled = await topo.start(topo.wan, [process.execPath, CLIENT_SCRIPT, 'stall', UPLINK_HOST, '9100', 'stall.example.test', String(STALLED_MIB),
      String(STALLED_CLIENTS), '30000'], { ready: /"opened":/ });
    let during: { size: number; speed: number } | undefined;
    let context = '';
    try {
      expect(JSON.parse(stalled.stdout().trim().split('\n')[0]!)).toEqual({ opened: STALLED_CLIENTS });
      await waitFor('stalled connections routed', async () => (await routeRow('stall.example.test')).active === STALLED_CLIENTS, 10_000, 100);
      // several seconds with the stalled readers open, sampling RSS, one download of 128 MiB in the middle
      let rssMax = rssBefore;
      const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssKiB())), 200);
      try {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        during = await download(128);
        await new Promise((resolve) => setTimeout(resolve, 2000));
      } finally {
        clearInterval(sampler);
      }
      const row = await routeRow('stall.example.test');
      context = JSON.stringify({ rssBeforeKiB: rssBefore, rssMaxKiB: rssMax, alone, during, stalledRoute: row });
      expect(rssMax - rssBefore, context).toBeLessThan(RSS_BOUND_KIB);
      expect(row.active, context).toBe(STALLED_CLIENTS); // still open, not cut
      // what reached the stalled clients is what kernel buffers hold, not the downloads' size
      expect(row.bytesOut / STALLED_CLIENTS, context).toBeLessThan(32 * 1024 * 1024);
      expect(during!.size).toBe(128 * 1024 * 1024);
      expect(natd.child.exitCode).toBeNull();
    } finally {
      await stalled.stop();
    }
    await waitFor('stalled connections released', async () => (await routeRow('stall.example.test')).active === 0, 10_000, 100);
    // the other download was not held up by the stalled ones (loose: the machine is shared, bench/ measures speed).
    // Compared with the slower of two downloads alone, one before and one after: the machine's load changes during a
    // CI run (other files start and end), and one reading taken in a quiet moment made a busy one look held up.
    const aloneAfter = await download(64);
    expect(during!.speed, `${context} alone after: ${JSON.stringify(aloneAfter)}`).toBeGreaterThan(Math.min(alone.speed, aloneAfter.speed) / 4);
  }, 120_000); // three downloads (up to 60 s each on a loaded machine) and 4 s of sampling

  it('--expose-listen: routed ports listen on that address only; the gateway and loopback route nothing', async () => {
    const listeners = await topo.runOk(topo.host, ['ss', '-Hltn', 'sport = :443']);
    expect(listeners.trim().split('\n').map((l) => l.trim().split(/\s+/)[3])).toEqual([`${UPLINK_HOST}:443`]);
    // a guest reaches the name through the listen address (hairpin) …
    const via = await curl(topo.vm(2).ns, 'https://a.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(via.stdout.trim(), via.stderr).toMatch(/^alpha tls a\.example\.test /);
    // … but not through the gateway address, and the host not through loopback
    const gateway = await curl(topo.vm(2).ns, 'https://a.example.test/', GATEWAY, ['--cacert', cacert('a'), '--max-time', '3']);
    expect(gateway.code).not.toBe(0);
    const loopback = await curl(topo.host, 'http://a.example.test/', '127.0.0.1', ['--max-time', '3']);
    expect(loopback.code).not.toBe(0);
    expect(loopback.stderr).toMatch(/refused|Couldn't connect/i);
    // the table opens the routed ports for the listen address only
    const table = await topo.runOk(topo.host, ['nft', 'list', 'chain', 'inet', 'natd-br0', 'input']);
    expect(table).toMatch(new RegExp(`ip daddr ${UPLINK_HOST.replace(/\./g, '\\.')} tcp dport @expose_ports accept`));
  });

  it('--expose-fallback: TLS without a server name reaches the fallback guest; without a fallback it is refused and closed cleanly', async () => {
    // curl to an IP address sends no SNI
    const noSni = await curl(topo.wan, `https://${UPLINK_HOST}/`, undefined, ['-k']);
    expect(noSni.stdout.trim(), noSni.stderr).toMatch(new RegExp(`^beta tls ${UPLINK_HOST.replace(/\./g, '\\.')} `));
    const seen = await topo.run(topo.wan, ['sh', '-c', `openssl s_client -connect ${UPLINK_HOST}:443 -noservername </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`], { timeoutMs: 10_000 });
    expect(seen.stdout.trim().replace(/^.*=/, '')).toBe(await fingerprint('b'));
    const routed = (await status()).routed;
    expect(routed).toBeGreaterThan(0);

    // reload without the fallback
    writeFileSync(configFile, JSON.stringify({}));
    const reloads = natd.logs.filter((l) => l.msg === 'reloaded').length;
    natd.child.kill('SIGHUP');
    await waitFor('reloaded', async () => natd.logs.filter((l) => l.msg === 'reloaded').length > reloads, 10_000, 100);
    const refused = await curl(topo.wan, `https://${UPLINK_HOST}/`, undefined, ['-k']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unrecognized name/i);
    // a raw ClientHello without SNI: the alert unrecognized_name(112), then a FIN, well before the head timeout
    const hello = toRecords(buildClientHelloMessage({})).toString('hex');
    const raw = await client(topo.wan, ['junk', UPLINK_HOST, '443', hello]);
    expect(raw.reply).toBe('15030300020270');
    expect(raw.ended).toBe(true);
    expect(Number(raw.closedAfterMs)).toBeLessThan(3000);
    // names still route
    const named = await curl(topo.wan, 'https://a.example.test/', UPLINK_HOST, ['--cacert', cacert('a')]);
    expect(named.stdout.trim(), named.stderr).toMatch(/^alpha tls /);
  });

  it('a stop while clients hold stalled downloads is clean: exit 0 within the 2 s natd promises', async () => {
    const stalled = await topo.start(topo.wan, [process.execPath, CLIENT_SCRIPT, 'stall', UPLINK_HOST, '9100', 'stall.example.test', String(STALLED_MIB),
      '2', '30000'], { ready: /"opened":/ });
    try {
      await waitFor('stalled connections routed', async () => (await routeRow('stall.example.test')).active === 2, 10_000, 100);
      const old = natd;
      const started = Date.now();
      const code = await topo.stop(old.child, 5000);
      const tookMs = Date.now() - started;
      expect(code, `${old.stderr()} ${JSON.stringify(old.logs.slice(-5))}`).toBe(0);
      // exit 0 (and no "did not finish" line) is the 2 s promise: natd's own timer ends a stop that is not done in
      // 1.8 s with exit 1; this clock also counts the signal, the exit and our event loop, which a loaded machine slows
      expect(tookMs).toBeLessThan(3000);
      expect(old.logs.some((l) => l.msg === 'stop did not finish in time; exiting')).toBe(false);
    } finally {
      await stalled.stop();
      // the next test's natd: all addresses (IPv6 too), a sink route, two connections per client
      natd = await startNatd(topo, [...natdArgs, '--expose', 'hold.example.test:9000=alpha:9000', '--expose-max-conns-per-client', '2'], { stateDir });
    }
  });

  it('per-client limit: an IPv6 client is its /64 (another address of it is refused, another /64 gets in)', async () => {
    const [first, second, otherNet] = ['2001:db8:51::3', '2001:db8:51::4', '2001:db8:99::5'];
    for (const address of [first, second]) await topo.runOk(topo.wan, ['ip', 'addr', 'add', `${address}/64`, 'dev', 'eth0', 'nodad']);
    await topo.runOk(topo.wan, ['ip', 'addr', 'add', `${otherNet}/128`, 'dev', 'eth0', 'nodad']); // the host routes it back via wan
    // two connections from ::3 hold the limit; one more from ::4 (the same /64) is closed at once
    const holder = await topo.start(topo.wan, [process.execPath, CLIENT_SCRIPT, 'hold', UPLINK6_HOST, '9000', 'hold.example.test', '2', '6000', first, second],
      { ready: /"held":/, timeoutMs: 10_000 });
    try {
      const result = JSON.parse(holder.stdout().trim().split('\n')[0]!) as { held: number; extraClosedAt: number | null };
      expect(result.held).toBe(2);
      expect(result.extraClosedAt).not.toBeNull();
      expect(result.extraClosedAt!).toBeLessThan(1500);
      expect((await status()).refusedByLimit).toBe(1);
      // meanwhile a client of another /64 is routed
      const other = await topo.run(topo.wan, ['curl', '-sS', '--max-time', '5', '-g', '--interface', otherNet, '-H', 'Host: a.example.test', `http://[${UPLINK6_HOST}]/`], { timeoutMs: 8000 });
      expect(other.stdout.trim(), other.stderr).toMatch(/^alpha http a\.example\.test /);
      expect((await status()).refusedByLimit).toBe(1);
    } finally {
      await holder.stop();
    }
  });
});
