import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importDnsmasq, parseDnsmasqConf, RESERVATIONS_FILE } from '../../src/tools/import-dnsmasq.js';
import { readConfigFile, resolveConfig } from '../../src/config.js';
import { parseHostsfile } from '../../src/dhcp/hostsfile.js';
import { LeaseStore } from '../../src/dhcp/lease-store.js';
import { silentLogger } from '../../src/log.js';
import { ErrorCodes } from '../../src/errors.js';
import { ip } from '../support/addresses.js';

const recipeDir = fileURLToPath(new URL('../fixtures/dnsmasq-recipe/', import.meta.url));
/** 2023-11-14T22:13:20Z: the fixture's leases expire a day later, one expired before. */
const NOW = 1_700_000_000_000;

const messagesAt = (problems: { line: number; message: string }[], line: number): string =>
  problems.filter((p) => p.line === line).map((p) => p.message).join(' | ');

describe('parseDnsmasqConf', () => {
  it('reads the recipe config into natd settings and accounts for every option', async () => {
    const text = await readFile(join(recipeDir, 'dnsmasq.conf'), 'utf8');
    const parsed = parseDnsmasqConf(text, 'dnsmasq.conf');
    expect(parsed.settings).toEqual({
      bridge: 'virbr10',
      subnet: '10.10.0.1/24',
      dhcpRange: '10.10.0.10-10.10.0.200',
      leaseTime: 12 * 3600,
      domain: 'vm',
      upstreams: ['192.0.2.53', '198.51.100.53'],
      dhcpOptions: ['option:ntp-server,10.10.0.1'], // issue 16: dnsmasq's option specs are natd's too
      server: ['/corp.example/10.0.0.53'],
      strictOrder: true,
    });
    expect(parsed.hostsfile).toBe('hostsfile');
    expect(parsed.leasefile).toBe('leases');
    expect(parsed.hosts).toEqual([{ mac: '52:54:00:aa:00:01', address: ip('10.10.0.4'), hostname: 'router-vm' }]);
    expect(parsed.unknown).toEqual([{ line: 41, option: 'enable-dbus' }]);
    expect(messagesAt(parsed.problems, 37)).toBe(''); // server=/corp.example/… is a domain route now (issue 15)
    expect(messagesAt(parsed.problems, 40)).toBe(''); // dhcp-option is imported (issue 16)
    const ignored = new Map(parsed.ignored.map((i) => [i.option, i.line]));
    for (const [option, line] of [['except-interface', 6], ['bind-dynamic', 8], ['dhcp-lease-max', 19], ['dhcp-no-override', 26],
      ['expand-hosts', 31], ['domain-needed', 32], ['bogus-priv', 33], ['no-resolv', 34],
      ['dhcp-authoritative', 38], ['pid-file', 42]] as const) {
      expect(ignored.get(option), option).toBe(line);
    }
    // the settings are what natd accepts
    expect(() => resolveConfig({}, parsed.settings)).not.toThrow();
  });

  it('imports a plain range with dnsmasq defaults and no listen-address', () => {
    const parsed = parseDnsmasqConf('interface=br5\ndhcp-range=192.168.50.2,192.168.50.254\n', 'c');
    expect(parsed.settings).toEqual({ bridge: 'br5', dhcpRange: '192.168.50.2-192.168.50.254' });
    expect(parsed.problems).toEqual([]);
  });

  it('takes the prefix from the mask and the gateway from the listen-address inside that subnet', () => {
    const parsed = parseDnsmasqConf(
      'interface=br5\nlisten-address=127.0.0.1,192.168.8.1\ndhcp-range=192.168.8.100,192.168.9.200,255.255.254.0,192.168.9.255,90m\n',
      'c',
    );
    expect(parsed.settings).toMatchObject({ subnet: '192.168.8.1/23', dhcpRange: '192.168.8.100-192.168.9.200', leaseTime: 5400, listenAddress: ['127.0.0.1'] });
    expect(parsed.ignored.map((i) => i.option)).toEqual(['dhcp-range']); // the broadcast field; 127.0.0.1 is imported
  });

  it('reports the range forms natd cannot serve and keeps the first usable range', () => {
    const text = [
      'dhcp-range=tag:green,10.1.0.10,10.1.0.20', // 1: conditional
      'dhcp-range=fd00::10,fd00::ff/', // 2: IPv6 (issue 14: carried when it parses, tools-import-v6.test.ts)
      'dhcp-range=10.1.0.0,static', // 3: static mode
      'dhcp-range=10.1.0.50,10.1.0.5', // 4: reversed
      'dhcp-range=set:lan,10.1.0.100,10.1.0.150,infinite', // 5: imported with its infinite lease (issue 16), tag reported
      'dhcp-range=10.1.0.160,10.1.0.170', // 6: second range
    ].join('\n');
    const { settings, problems } = parseDnsmasqConf(text, 'c');
    expect(settings.dhcpRange).toBe('10.1.0.100-10.1.0.150');
    expect(settings.leaseTime).toBe('infinite');
    expect(messagesAt(problems, 1)).toMatch(/conditional ranges .* not supported; range skipped/);
    expect(messagesAt(problems, 2)).toMatch(/with IPv6 addresses; range skipped/);
    expect(messagesAt(problems, 3)).toMatch(/'static' mode is not supported/);
    expect(messagesAt(problems, 4)).toMatch(/start is after end/);
    expect(messagesAt(problems, 5)).toMatch(/'set:lan' ignored .* range imported/);
    expect(messagesAt(problems, 6)).toMatch(/second dhcp-range .* from line 5/);
  });

  it('imports upstreams with ports and IPv6, and reports the server= forms it cannot', () => {
    const text = ['server=9.9.9.9', 'server=9.9.9.9#53', 'server=1.1.1.1#5353', 'server=2620:fe::fe', 'server=8.8.8.8@eth0', 'server=/lan/10.0.0.1', 'server=not-an-ip'].join('\n');
    const { settings, problems } = parseDnsmasqConf(text, 'c');
    expect(settings.upstreams).toEqual(['9.9.9.9', '1.1.1.1#5353', '2620:fe::fe#53', '8.8.8.8']);
    expect(settings.server).toEqual(['/lan/10.0.0.1']);
    expect(messagesAt(problems, 5)).toMatch(/'@eth0' ignored; server imported/);
    expect(messagesAt(problems, 7)).toMatch(/"not-an-ip" is not an IP address.*; not imported/);
    expect(() => resolveConfig({ bridge: 'br5' }, settings)).not.toThrow();
  });

  it('carries split DNS and the DNS knobs over (issue 15)', () => {
    const text = [
      'domain=vm', 'local=/vm/', 'local=/lab/', 'server=/corp.example/sub.corp.example/10.0.0.53#5353', 'server=/0.0.10.in-addr.arpa/10.0.0.53',
      'server=/in.corp.example/#', 'strict-order', 'min-cache-ttl=60', 'no-negcache', 'log-queries=extra', 'local=/x.example/10.0.0.9',
    ].join('\n');
    const parsed = parseDnsmasqConf(text, 'c');
    expect(parsed.settings).toEqual({
      domain: 'vm',
      server: ['/corp.example/sub.corp.example/10.0.0.53#5353', '/0.0.10.in-addr.arpa/10.0.0.53', '/in.corp.example/#', '/x.example/10.0.0.9'],
      local: ['/lab/'],
      strictOrder: true, minCacheTtl: 60, noNegcache: true, logQueries: 'extra',
    });
    expect(parsed.ignored).toEqual([{ line: 2, option: 'local', reason: 'natd answers its own domain vm locally' }]);
    expect(parsed.problems).toEqual([]);
    const config = resolveConfig({ bridge: 'br5' }, parsed.settings);
    expect(config.domainRoutes.map((r) => r.domain)).toEqual(['corp.example', 'sub.corp.example', '0.0.10.in-addr.arpa', 'in.corp.example', 'x.example', 'lab']);
    expect(parseDnsmasqConf('log-queries\nmin-cache-ttl=9000', 'c')).toMatchObject({ settings: { logQueries: true, minCacheTtl: 3600 }, problems: [{ line: 2 }] });
  });

  it('maps port=0, cache-size and resolv-file, and handles comments, quotes and CRLF', () => {
    const text = '# comment\r\n  port=0  \r\ncache-size=500 # trailing comment\r\nresolv-file="/etc/resolv.upstream"\r\nconf-file=\r\n';
    const parsed = parseDnsmasqConf(text, 'c');
    expect(parsed.settings).toEqual({ dns: false, cacheSize: 500, resolvConf: '/etc/resolv.upstream' });
    expect(parsed.ignored).toEqual([{ line: 5, option: 'conf-file', reason: expect.stringMatching(/default config file/) }]);
    expect(parsed.problems).toEqual([]);
  });

  it('reports a second interface, no-resolv without servers and an included conf-file', () => {
    const parsed = parseDnsmasqConf('interface=virbr10\ninterface=virbr11\nno-resolv\nconf-file=/etc/dnsmasq.d/more.conf\n', 'c');
    expect(parsed.settings.bridge).toBe('virbr10');
    expect(messagesAt(parsed.problems, 2)).toMatch(/interface virbr11 not imported/);
    expect(messagesAt(parsed.problems, 3)).toMatch(/natd will use the upstreams in resolv.conf/);
    expect(messagesAt(parsed.problems, 4)).toMatch(/not followed/);
  });

  it('never throws and lists every option it does not know, with its line (property)', () => {
    const unknownName = fc.stringMatching(/^zz[a-z-]{0,12}$/);
    const line = fc.oneof(
      unknownName.map((n) => ({ text: n, unknown: n })),
      fc.tuple(unknownName, fc.string({ maxLength: 30 })).map(([n, v]) => ({ text: `${n}=${v.replace(/[\r\n#]/g, '')}`, unknown: n })),
      fc.string({ maxLength: 60 }).map((s) => ({ text: `# ${s.replace(/[\r\n]/g, '')}`, unknown: undefined })),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), (lines) => {
        const parsed = parseDnsmasqConf(lines.map((l) => l.text).join('\n'), 'c');
        const expected = lines.flatMap((l, i) => (l.unknown ? [{ line: i + 1, option: l.unknown }] : []));
        expect(parsed.unknown).toEqual(expected);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const parsed = parseDnsmasqConf(text, 'c');
        expect(Array.isArray(parsed.problems)).toBe(true);
      }),
    );
  });
});

describe('importDnsmasq', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function recipeCopy(): Promise<{ dir: string; conf: string; outDir: string; configOut: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'natd-import-'));
    dirs.push(dir);
    for (const f of ['dnsmasq.conf', 'hostsfile', 'leases']) await copyFile(join(recipeDir, f), join(dir, f));
    return { dir, conf: join(dir, 'dnsmasq.conf'), outDir: join(dir, 'state'), configOut: join(dir, 'natd.json') };
  }

  it('writes a config, reservations and a lease journal natd loads, and reports what it skipped', async () => {
    const t = await recipeCopy();
    const report = await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW });

    const config = resolveConfig({}, readConfigFile(t.configOut), t.configOut);
    expect(config).toMatchObject({ bridge: 'virbr10', subnetCidr: '10.10.0.1/24', domain: 'vm', leaseTimeSeconds: 43200 });
    expect(config.upstreams).toEqual(['192.0.2.53', '198.51.100.53']);
    expect(config.stateDir).toBe(t.outDir);
    expect(config.hostsfile).toBe(join(t.outDir, RESERVATIONS_FILE));

    const reservations = parseHostsfile(await readFile(report.reservationsFile, 'utf8'), 'r');
    expect(reservations.problems).toEqual([]);
    expect(reservations.reservations.map((r) => r.hostname ?? r.mac)).toEqual(['router-vm', 'web', 'db', '52:54:00:be:0a:f5']);

    const store = await LeaseStore.open(t.outDir, { logger: silentLogger, now: () => NOW });
    try {
      const leases = store.load(NOW).leases.sort((a, b) => a.address - b.address);
      expect(leases.map((l) => [l.mac, l.hostname])).toEqual([
        ['52:54:00:be:0a:f3', 'web'],
        ['52:54:00:11:22:33', 'build-box'],
        ['52:54:00:11:22:44', undefined],
      ]);
      expect(leases[0]!.clientId).toBe('01525400be0af3'); // option 61 as dnsmasq recorded it
    } finally {
      await store.close();
    }

    expect(report.leases).toHaveLength(3);
    expect(report.expiredLeases).toBe(1);
    const skipped = report.skipped.map((s) => `${s.file.split('/').pop()}:${s.line} ${s.message}`).join('\n');
    expect(skipped).toMatch(/hostsfile:5 address 192.168.1.9 is outside the subnet/);
    expect(skipped).toMatch(/leases:5 address 10.99.0.9 is outside the subnet/);
    expect(skipped).not.toMatch(/dnsmasq.conf:37/); // server=/corp.example/ is imported as a route (issue 15)
    expect(report.unknown).toEqual([{ file: t.conf, line: 41, option: 'enable-dbus' }]);
  });

  it('creates the directory of the config file (an /etc/natd that does not exist yet)', async () => {
    const t = await recipeCopy();
    const configOut = join(t.dir, 'etc', 'natd', 'virbr10.json');
    await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut, now: NOW });
    expect(resolveConfig({}, readConfigFile(configOut), configOut).bridge).toBe('virbr10');
  });

  it('refuses to overwrite earlier results unless forced, and a forced run replaces the leases', async () => {
    const t = await recipeCopy();
    await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW });
    await expect(importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW })).rejects.toMatchObject({
      code: ErrorCodes.STATE,
      message: expect.stringMatching(/would overwrite .*natd\.json.*reservations.*leases\.jsonl.*--force/),
    });

    await writeFile(join(t.dir, 'leases'), '1700086400 52:54:00:11:22:77 10.10.0.77 newer *\n');
    const report = await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW, force: true });
    expect(report.leases).toHaveLength(1);
    const store = await LeaseStore.open(t.outDir, { logger: silentLogger, now: () => NOW });
    try {
      expect(store.load(NOW).leases.map((l) => l.hostname)).toEqual(['newer']);
    } finally {
      await store.close();
    }
  });

  it('keeps the first of two reservations for one MAC or address across the conf and the hostsfile', async () => {
    const t = await recipeCopy();
    await writeFile(t.conf, 'interface=virbr10\nlisten-address=10.10.0.1\ndhcp-range=10.10.0.10,10.10.0.99\ndhcp-hostsfile=hostsfile\n' +
      'dhcp-host=52:54:00:be:0a:f3,10.10.0.50,first\ndhcp-host=52:54:00:be:0a:f3,10.10.0.51,again\n');
    const report = await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW });
    expect(report.reservations.map((r) => r.hostname ?? '-')).toEqual(['first', 'db', '-']);
    expect(report.skipped.filter((s) => /clashes with 52:54:00:be:0a:f3 10.10.0.50/.test(s.message))).toHaveLength(2);
  });

  it('issue 14: carries the hostsfile\'s IPv6 lines (dhcp-host syntax) into natd\'s hostsfile', async () => {
    const t = await recipeCopy();
    await writeFile(join(t.dir, 'hostsfile'), 'id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc,[fd00::5],db6\n52:54:00:be:0a:f4,10.10.0.60,[::60],both\n52:54:00:be:0a:f5,[zz]\n');
    const report = await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW });
    expect(report.reservations.map((r) => r.hostname)).toContain('both');
    const written = await readFile(report.reservationsFile, 'utf8');
    expect(written).toContain('id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc,[fd00::5],db6');
    expect(written).toContain('52:54:00:be:0a:f4,[::60],both');
    expect(report.skipped.some((s) => s.line === 3 && /"\[zz\]" is not an IPv6 address/.test(s.message))).toBe(true);
  });

  it('still imports when the hostsfile and leases file are missing, and says so', async () => {
    const t = await recipeCopy();
    await rm(join(t.dir, 'leases'));
    await rm(join(t.dir, 'hostsfile'));
    const report = await importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut, now: NOW });
    expect(report.leases).toEqual([]);
    expect(report.reservations.map((r) => r.hostname)).toEqual(['router-vm']);
    expect(report.skipped.filter((s) => /cannot read the dhcp-(hostsfile|leasefile)/.test(s.message))).toHaveLength(2);
  });

  it('writes nothing when the imported settings are not valid for natd', async () => {
    const t = await recipeCopy();
    await writeFile(t.conf, 'interface=this-name-is-far-too-long\ndhcp-range=10.0.0.5,10.0.0.9\n');
    await expect(importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut })).rejects.toMatchObject({
      code: ErrorCodes.CONFIG,
      message: expect.stringMatching(/bridge/),
    });
    await expect(readFile(t.configOut)).rejects.toThrow();
    await writeFile(t.conf, 'dhcp-range=10.0.0.5,10.0.0.9\n');
    await expect(importDnsmasq({ confFile: t.conf, outDir: t.outDir, configOut: t.configOut })).rejects.toThrow(/no interface= line/);
  });
});

describe('parseDnsmasqConf: dhcp-script', () => {
  it('carries an executable script over and reports one that is not', () => {
    const parsed = parseDnsmasqConf('dhcp-script=/bin/true\ndhcp-script=/nonexistent/hook\ndhcp-script=hook.sh\n', 'dnsmasq.conf');
    expect(parsed.settings.dhcpScript).toBe('/bin/true');
    expect(messagesAt(parsed.problems, 2)).toMatch(/not an executable file/);
    expect(messagesAt(parsed.problems, 3)).toMatch(/absolute path/);
  });
});
