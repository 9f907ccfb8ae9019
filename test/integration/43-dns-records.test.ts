/**
 * Issue 15: custom DNS records end to end. Real `dig` in a vm namespace against natd on the gateway; the config is
 * the README's OpenShift example (read from README.md, moved onto the test subnet), plus a flag of every other kind.
 * "Answered by natd itself" is checked against the fake upstream's query log. Also: `natd records add/remove` seen
 * at once and kept across a restart, SIGHUP re-reads the records, and a guest whose DHCP hostname is a record name
 * (or lies under an address= rule) cannot take it over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { FIXTURES, NATD_CLI, PROJECT_ROOT, runUdhcpc, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';

const needsRoot = !isRoot() && !process.env.CI;
const LB = '10.77.0.5';

interface Dig {
  status: string | undefined;
  flags: string[];
  /** "name type rdata" per answer line */
  answers: string[];
  /** "name type" per authority line */
  authority: string[];
}

function parseDig(stdout: string): Dig {
  const status = /status: ([A-Z]+)/.exec(stdout)?.[1];
  const flags = (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').split(' ').filter(Boolean);
  const sections: Record<string, string[]> = {};
  let current = '';
  for (const line of stdout.split('\n')) {
    const header = /^;; (\w+) SECTION:/.exec(line);
    if (header) current = header[1]!;
    else if (line && !line.startsWith(';')) (sections[current] ??= []).push(line.trim().split(/\s+/).join(' '));
  }
  const strip = (l: string) => { const f = l.split(' '); return [f[0]!.toLowerCase(), f[3], ...f.slice(4)].join(' '); };
  return { status, flags, answers: (sections.ANSWER ?? []).map(strip), authority: (sections.AUTHORITY ?? []).map((l) => l.split(' ').slice(0, 4).filter((_, i) => i !== 1 && i !== 2).join(' ').toLowerCase()) };
}

/** The README's OpenShift config, on the test topology's subnet and bridge. */
function openshiftConfig(): Record<string, unknown> {
  const readme = readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const block = /<!-- openshift-example[^>]*-->\n```json\n([\s\S]*?)\n```/.exec(readme);
  if (!block) throw new Error('README has no openshift-example block');
  return JSON.parse(block[1]!.replaceAll('10.10.0.', '10.77.0.').replace('"virbr10"', '"br0"')) as Record<string, unknown>;
}

describe.skipIf(needsRoot)('issue 15: custom DNS records', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let upstreamLog: string;
  let configFile: string;
  let natdArgs: string[];

  const upstreamQueries = (): string[] => (existsSync(upstreamLog) ? readFileSync(upstreamLog, 'utf8').trim().split('\n').filter(Boolean) : []);
  const cli = (...args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);

  async function dig(name: string, type = 'A', vm = 3): Promise<Dig> {
    const r = await topo.run(topo.vm(vm).ns, ['dig', `@${GATEWAY}`, '+time=3', '+tries=1', '+noall', '+comments', '+answer', '+authority', name, type], { timeoutMs: 10_000 });
    return parseDig(r.stdout);
  }

  async function startUpstream(log: string): Promise<void> {
    const child = topo.spawn(topo.wan, [process.execPath, path.join(FIXTURES, 'fake-upstream.mjs'), '--listen', `${UPLINK_WAN}:53`, '--log', log]);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
      child.once('exit', (code) => reject(new Error(`fake upstream exited ${code}`)));
    });
  }

  async function restartNatd(): Promise<void> {
    natd.child.kill('SIGTERM');
    await new Promise((resolve) => natd.child.once('exit', resolve));
    natd = await startNatd(topo, natdArgs, { stateDir: natd.stateDir });
  }

  beforeAll(async () => {
    topo = Topology.create({ vms: 3 });
    upstreamLog = path.join(tempDir('natd-records-upstream-'), 'queries.log');
    await startUpstream(upstreamLog);
    configFile = path.join(tempDir('natd-records-config-'), 'natd.json');
    writeFileSync(configFile, JSON.stringify(openshiftConfig(), null, 2));
    natdArgs = [
      '--config', configFile, '--upstream', UPLINK_WAN, '--no-firewall', '--local-ttl', '30',
      '--cname', 'console.ocp.lab,api.ocp.lab', '--cname', 'ext.ocp.lab,fwd-a.example.test',
      '--txt-record', 'ocp.lab,"v=spf1 -all","second, with comma"', '--mx-host', 'ocp.lab,mail.ocp.lab,10',
      '--ptr-record', '_http._tcp.ocp.lab,web._http._tcp.ocp.lab',
    ];
    natd = await startNatd(topo, natdArgs);
    await topo.run(topo.vm(3).ns, ['ip', 'addr', 'add', '10.77.0.250/24', 'dev', 'eth0']);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('answers the OpenShift example: api, api-int, SRV for the three etcd members, their host records and PTRs, *.apps', async () => {
    const before = upstreamQueries().length;
    expect((await dig('api.ocp.lab')).answers).toEqual([`api.ocp.lab. A ${LB}`]);
    const apiInt = await dig('API-INT.ocp.lab');
    expect(apiInt.answers).toEqual([`api-int.ocp.lab. A ${LB}`]);
    expect(apiInt.flags).toContain('aa');
    const srv = await dig('_etcd-server-ssl._tcp.ocp.lab', 'SRV');
    expect(srv.answers.sort()).toEqual([0, 1, 2].map((i) => `_etcd-server-ssl._tcp.ocp.lab. SRV 0 10 2380 etcd-${i}.ocp.lab.`));
    for (const i of [0, 1, 2]) {
      expect((await dig(`etcd-${i}.ocp.lab`)).answers).toEqual([`etcd-${i}.ocp.lab. A 10.77.0.1${i + 1}`]);
      expect((await dig(`1${i + 1}.0.77.10.in-addr.arpa`, 'PTR')).answers).toEqual([`1${i + 1}.0.77.10.in-addr.arpa. PTR etcd-${i}.ocp.lab.`]);
    }
    for (const name of ['console-openshift-console.apps.ocp.lab', 'oauth-openshift.apps.ocp.lab', 'apps.ocp.lab']) {
      expect((await dig(name)).answers).toEqual([`${name}. A ${LB}`]);
    }
    expect(upstreamQueries().slice(before)).toEqual([]);
  });

  it('answers TXT, MX, PTR records and the TTL of --local-ttl', async () => {
    expect((await dig('ocp.lab', 'TXT')).answers).toEqual(['ocp.lab. TXT "v=spf1 -all" "second, with comma"']);
    expect((await dig('ocp.lab', 'MX')).answers).toEqual(['ocp.lab. MX 10 mail.ocp.lab.']);
    expect((await dig('_http._tcp.ocp.lab', 'PTR')).answers).toEqual(['_http._tcp.ocp.lab. PTR web._http._tcp.ocp.lab.']);
    const r = await topo.run(topo.vm(3).ns, ['dig', `@${GATEWAY}`, '+noall', '+answer', 'api.ocp.lab'], { timeoutMs: 10_000 });
    expect(r.stdout.trim().split(/\s+/)[1]).toBe('30');
  });

  it('NODATA with the SOA for an existing name of another type and for an empty non-terminal; NXDOMAIN with the SOA in the domain', async () => {
    const nodata = await dig('api.ocp.lab', 'AAAA');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authority).toEqual(['ocp.lab. soa']);
    const ent = await dig('_tcp.ocp.lab', 'SRV');
    expect([ent.status, ent.answers.length, ent.authority]).toEqual(['NOERROR', 0, ['ocp.lab. soa']]);
    const nx = await dig('nothere.ocp.lab');
    expect([nx.status, nx.authority]).toEqual(['NXDOMAIN', ['ocp.lab. soa']]);
    const wildNodata = await dig('x.apps.ocp.lab', 'TXT');
    expect([wildNodata.status, wildNodata.answers.length, wildNodata.authority]).toEqual(['NOERROR', 0, ['apps.ocp.lab. soa']]);
  });

  it('follows a CNAME to a local target in one answer; to an external target it returns the CNAME alone', async () => {
    expect((await dig('console.ocp.lab')).answers).toEqual(['console.ocp.lab. CNAME api.ocp.lab.', `api.ocp.lab. A ${LB}`]);
    const before = upstreamQueries().length;
    expect((await dig('ext.ocp.lab')).answers).toEqual(['ext.ocp.lab. CNAME fwd-a.example.test.']);
    expect(upstreamQueries().slice(before)).toEqual([]);
  });

  it('natd records add is answered at once, list shows it, it survives a restart, remove takes it away at once', async () => {
    expect((await dig('db.ocp.lab')).status).toBe('NXDOMAIN');
    expect(await cli('records', 'add', 'host-record=db.ocp.lab,10.77.0.7,fd00::7')).toMatch(/added host-record=db\.ocp\.lab,10\.77\.0\.7,fd00::7/);
    expect(await cli('records', 'add', 'address', '/blocked.example.test/')).toMatch(/added address=\/blocked\.example\.test\//);
    expect((await dig('db.ocp.lab')).answers).toEqual(['db.ocp.lab. A 10.77.0.7']);
    expect((await dig('db.ocp.lab', 'AAAA')).answers).toEqual(['db.ocp.lab. AAAA fd00::7']);
    expect((await dig('7.0.77.10.in-addr.arpa', 'PTR')).answers).toEqual(['7.0.77.10.in-addr.arpa. PTR db.ocp.lab.']);
    expect((await dig('ads.blocked.example.test')).status).toBe('NXDOMAIN');
    await cli('records', 'add', 'address=/v6.example.test/fd00::50');
    expect((await dig('svc.v6.example.test', 'AAAA')).answers).toEqual(['svc.v6.example.test. AAAA fd00::50']);
    const v4 = await dig('svc.v6.example.test', 'A');
    expect([v4.status, v4.answers, v4.authority]).toEqual(['NOERROR', [], ['v6.example.test. soa']]);
    const rows = JSON.parse(await cli('records', 'list', '--json')) as { kind: string; spec: string; source: string }[];
    expect(rows).toContainEqual({ kind: 'host-record', spec: 'db.ocp.lab,10.77.0.7,fd00::7', source: 'runtime' });
    const status = JSON.parse(await cli('status', '--json')) as { dns: { records: Record<string, number> } };
    expect(status.dns.records).toMatchObject({ 'host-record': 5, 'srv-host': 3, address: 3, cname: 2 });
    expect(await cli('metrics')).toMatch(/natd_dns_records\{bridge="br0",kind="host-record"\} 5/);
    expect(rows).toContainEqual({ kind: 'srv-host', spec: '_etcd-server-ssl._tcp.ocp.lab,etcd-0.ocp.lab,2380,0,10', source: 'config' });
    // a clash is refused with the reason, nothing changed
    const clash = await topo.run(topo.host, [process.execPath, NATD_CLI, 'records', 'add', 'cname=db.ocp.lab,api.ocp.lab', '--control-socket', natd.controlSocket]);
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toMatch(/a CNAME name holds nothing else/);

    await restartNatd();
    expect((await dig('db.ocp.lab')).answers).toEqual(['db.ocp.lab. A 10.77.0.7']);
    expect((await dig('x.blocked.example.test')).status).toBe('NXDOMAIN');

    await cli('records', 'remove', 'host-record=db.ocp.lab,10.77.0.7,fd00::7');
    expect((await dig('db.ocp.lab')).status).toBe('NXDOMAIN');
    const fromConfig = await topo.run(topo.host, [process.execPath, NATD_CLI, 'records', 'remove', 'host-record=api.ocp.lab,api-int.ocp.lab,10.77.0.5', '--control-socket', natd.controlSocket]);
    expect(fromConfig.stderr).toMatch(/comes from the config/);
    await restartNatd();
    expect((await dig('db.ocp.lab')).status).toBe('NXDOMAIN');
  }, 60_000);

  it('re-reads the records on SIGHUP', async () => {
    const config = openshiftConfig();
    writeFileSync(configFile, JSON.stringify({ ...config, hostRecord: [...(config.hostRecord as string[]), 'bootstrap.ocp.lab,10.77.0.9'] }, null, 2));
    natd.child.kill('SIGHUP');
    await natd.waitForLog((l) => l.msg === 'reloaded' && natd.logs.indexOf(l) > natd.logs.length - 20);
    expect((await dig('bootstrap.ocp.lab')).answers).toEqual(['bootstrap.ocp.lab. A 10.77.0.9']);
    writeFileSync(configFile, JSON.stringify(config, null, 2));
  });

  it('attack: a guest whose DHCP hostname is a record name, or lies under an address= rule, cannot take it over', async () => {
    const before = (JSON.parse(await cli('status', '--json')) as { dns: { namesRefused: Record<string, number> } }).dns.namesRefused.record;
    for (const [vm, hostname] of [[1, 'api'], [2, 'apps']] as const) {
      const r = await runUdhcpc(topo, topo.vm(vm).ns, ['-x', `hostname:${hostname}`]);
      expect(r.events.find((e) => e.event === 'bound')?.ip, `vm${vm} leased`).toBeDefined();
    }
    expect((await dig('api.ocp.lab')).answers).toEqual([`api.ocp.lab. A ${LB}`]);
    expect((await dig('api')).answers).toEqual([]);
    expect((await dig('apps.ocp.lab')).answers).toEqual([`apps.ocp.lab. A ${LB}`]);
    const leases = JSON.parse(await cli('leases', '--json')) as { hostname?: string }[];
    expect(leases.map((l) => l.hostname).filter(Boolean)).toEqual([]);
    // nor can an operator's runtime reservation take a record's name
    const resv = await topo.run(topo.host, [process.execPath, NATD_CLI, 'reservations', 'add', '52:54:00:00:00:99', '10.77.0.99', 'api', '--control-socket', natd.controlSocket]);
    expect(resv.stderr).toMatch(/"api" is a DNS record name/);
    const after = (JSON.parse(await cli('status', '--json')) as { dns: { namesRefused: Record<string, number> } }).dns.namesRefused.record;
    expect((after ?? 0) - (before ?? 0)).toBe(2);
  });
});
