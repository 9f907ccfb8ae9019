import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importLibvirt, leaseSeconds, parseLibvirtNetwork, statusToDnsmasqLeases } from '../../src/tools/import-libvirt.js';
import { importLibvirtCommand } from '../../src/tools/commands.js';
import { natNetworkXml } from '../../src/tools/libvirt-xml.js';
import { readConfigFile, resolveConfig } from '../../src/config.js';
import { parseHostsfile } from '../../src/dhcp/hostsfile.js';
import { LeaseStore } from '../../src/dhcp/lease-store.js';
import { silentLogger } from '../../src/log.js';
import { ErrorCodes } from '../../src/errors.js';
import type { Exec } from '../../src/exec.js';
import { ip } from '../support/addresses.js';

const fixtures = fileURLToPath(new URL('../fixtures/libvirt/', import.meta.url));
const fixture = (name: string): Promise<string> => readFile(join(fixtures, name), 'utf8');
/** 2023-11-14T22:13:20Z: the status fixture's leases run until 2100, one expired in 1970. */
const NOW = 1_700_000_000_000;

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'natd-import-libvirt-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const problemAt = (problems: { element: string; message: string }[], element: string): string =>
  problems.filter((p) => p.element === element).map((p) => p.message).join(' | ');

describe('parseLibvirtNetwork', () => {
  it("reads libvirt's default network", async () => {
    const parsed = parseLibvirtNetwork(await fixture('default.xml'));
    expect(parsed.name).toBe('default');
    expect(parsed.settings).toEqual({
      bridge: 'virbr0',
      bridgeMac: '52:54:00:0a:cd:21',
      subnet: '192.168.122.1/24',
      dhcpRange: '192.168.122.2-192.168.122.254',
      masqueradePorts: [1024, 65535],
    });
    expect(parsed.reservations).toEqual([]);
    expect(parsed.problems).toEqual([]);
  });

  it('reads every element natd has an equivalent for, and lists the rest', async () => {
    const parsed = parseLibvirtNetwork(await fixture('full.xml'));
    expect(parsed.settings).toEqual({
      bridge: 'virbr7',
      bridgeMac: '52:54:00:aa:bb:07',
      mtu: 9000,
      domain: 'lab.example',
      masqueradePorts: [20000, 40000],
      upstreams: ['192.0.2.53'],
      server: ['/corp.example/10.0.0.53'],
      local: ['/internal.lab/'],
      txtRecord: ['info,"natd \\"lab\\" network"'],
      srvHost: ['_ldap._tcp.lab.example,ldap.lab.example,389,10,50', '_kerberos._udp'],
      hostRecord: ['nas,backup,10.77.0.5'],
      subnet: '10.77.0.1/24',
      enableTftp: true,
      tftpRoot: '/srv/tftp',
      dhcpRange: '10.77.0.100-10.77.0.199',
      leaseTime: 7200,
      dhcpBoot: ['pxelinux.0,,10.77.0.1'],
      routes: ['192.168.50.0/24=10.77.0.2'],
      subnet6: 'fd00:77::1/64', // issue 14
      dhcp6Range: 'fd00:77::100-fd00:77::1ff',
    });
    expect(parsed.reservations).toEqual([
      { mac: '52:54:00:00:07:0a', address: ip('10.77.0.10'), hostname: 'web' },
      { mac: '52:54:00:00:07:0b', address: ip('10.77.0.11'), hostname: 'db' },
      { mac: '52:54:00:00:07:0c', address: ip('10.78.0.12'), hostname: 'stray' },
    ]);
    expect(parsed.hostLeaseTimes).toEqual([{ mac: '52:54:00:00:07:0a', seconds: 1800 }]);
    expect(problemAt(parsed.problems, 'forward')).toMatch(/dev='eth0'/);
    expect(problemAt(parsed.problems, 'forward/nat')).toBe(''); // issue 14: ipv6='yes' is natd's NAT66
    expect(problemAt(parsed.problems, 'ip[1]/dhcp/range[2]')).toMatch(/second range 10\.77\.0\.210-10\.77\.0\.220 skipped/);
    expect(problemAt(parsed.problems, 'ip[1]/dhcp/host[4]')).toMatch(/client id\/DUID/);
    expect(problemAt(parsed.problems, 'ip[2]')).toBe('');
    expect(problemAt(parsed.problems, 'ip[2]/dhcp/range[1]')).toBe(''); // issue 14: carried as dhcp6Range
    expect(problemAt(parsed.problems, 'bandwidth')).toMatch(/no natd equivalent/);
  });

  it('reports what is not a libvirt network instead of throwing', () => {
    expect(parseLibvirtNetwork('<domain><name>vm</name></domain>').problems[0]!.message).toMatch(/no <network> element/);
    expect(parseLibvirtNetwork('<network><name>x</name><forward mode="open"/></network>').problems.map((p) => p.message).join()).toMatch(
      /mode 'open' has no natd equivalent.*no bridge name/,
    );
    expect(parseLibvirtNetwork('<network><name>iso</name><bridge name="virbr9"/></network>').problems[0]!.message).toMatch(/isolated network/);
  });

  it('never throws, whatever the document (property)', () => {
    const attr = fc.oneof(fc.string(), fc.constantFrom('192.168.1.1', '255.255.255.0', 'nat', 'route', '0', '99999', 'hours', 'x:y'));
    const element = fc.tuple(
      fc.constantFrom('network', 'ip', 'dhcp', 'range', 'host', 'dns', 'forwarder', 'srv', 'txt', 'bridge', 'mac', 'mtu', 'lease', 'route', 'forward', 'nat', 'port', 'tftp', 'bootp', 'domain', 'hostname'),
      fc.dictionary(fc.constantFrom('name', 'address', 'netmask', 'prefix', 'start', 'end', 'mac', 'ip', 'mode', 'expiry', 'unit', 'addr', 'domain', 'family', 'size', 'file', 'root', 'gateway', 'service', 'protocol'), attr, { maxKeys: 4 }),
    );
    const escape = (v: string): string => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');
    const doc = fc.array(element, { maxLength: 12 }).map((els) => {
      // nest each element in the previous one: random shapes of libvirt's tree
      const open = els.map(([name, attrs]) => `<${name}${Object.entries(attrs).map(([k, v]) => ` ${k}='${escape(v)}'`).join('')}>`);
      const close = els.map(([name]) => `</${name}>`).reverse();
      return `<network>${open.join('')}${close.join('')}</network>`;
    });
    fc.assert(
      fc.property(fc.oneof(doc, fc.string()), (xml) => {
        const parsed = parseLibvirtNetwork(xml);
        expect(Array.isArray(parsed.problems)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('reads lease times the way libvirt defines them (minutes by default, 0 = infinite)', () => {
    expect(leaseSeconds({ expiry: '30' })).toBe(1800);
    expect(leaseSeconds({ expiry: '2', unit: 'hours' })).toBe(7200);
    expect(leaseSeconds({ expiry: '90', unit: 'seconds' })).toBe(90);
    expect(leaseSeconds({ expiry: '0' })).toBe(0);
    expect(leaseSeconds({ expiry: '1', unit: 'days' })).toBeUndefined();
    expect(leaseSeconds({ expiry: '-1' })).toBeUndefined();
  });
});

describe('statusToDnsmasqLeases', () => {
  it('turns the IPv4 entries into dnsmasq lease lines and lists the rest', async () => {
    const { text, skipped } = statusToDnsmasqLeases(await fixture('default.status'));
    expect(text.trim().split('\n')).toEqual([
      '4102444800 52:54:00:3b:8e:01 192.168.122.47 fedora 01:52:54:00:3b:8e:01',
      '4102444800 52:54:00:3b:8e:02 192.168.122.88 * *',
      '1000 52:54:00:3b:8e:03 192.168.122.99 gone *',
    ]);
    expect(skipped).toEqual(['entry 4: not an IPv4 lease with mac, ip and expiry-time; skipped']);
    expect(statusToDnsmasqLeases('{').skipped[0]).toMatch(/not JSON/);
    expect(statusToDnsmasqLeases('{}').skipped[0]).toMatch(/not a JSON array/);
  });
});

describe('importLibvirt', () => {
  it("moves libvirt's default network with its leases in one step", async () => {
    const dir = await tempDir();
    const report = await importLibvirt({
      xml: await fixture('default.xml'),
      source: 'default.xml',
      outDir: (bridge) => join(dir, 'state', bridge),
      configOut: (bridge) => join(dir, `${bridge}.json`),
      statusFile: join(fixtures, 'default.status'),
      now: NOW,
    });
    expect(report.network).toBe('default');
    expect(report.configFile).toBe(join(dir, 'virbr0.json'));
    expect(report.leases.map((l) => [l.mac, l.address, l.hostname])).toEqual([
      ['52:54:00:3b:8e:01', ip('192.168.122.47'), 'fedora'],
      ['52:54:00:3b:8e:02', ip('192.168.122.88'), undefined],
    ]);
    expect(report.expiredLeases).toBe(1);

    // the config natd will run with: valid, pointing at the written state
    const config = resolveConfig({}, readConfigFile(report.configFile));
    expect(config.bridge).toBe('virbr0');
    expect(config.stateDir).toBe(join(dir, 'state', 'virbr0'));
    const store = await LeaseStore.open(config.stateDir, { logger: silentLogger, now: () => NOW });
    try {
      expect(store.load(NOW).leases.map((l) => l.address).sort()).toEqual([ip('192.168.122.47'), ip('192.168.122.88')]);
    } finally {
      await store.close();
    }
    // a second import does not overwrite what the first wrote
    await expect(
      importLibvirt({ xml: await fixture('default.xml'), source: 'default.xml', outDir: () => config.stateDir, configOut: () => report.configFile, statusFile: join(fixtures, 'default.status'), now: NOW }),
    ).rejects.toMatchObject({ code: ErrorCodes.STATE });
  });

  it('turns the full-featured network into a config natd accepts as a whole (records, routes, PXE, MTU, IPv6)', async () => {
    const dir = await tempDir();
    const tftpRoot = await mkdtemp(join(tmpdir(), 'natd-import-tftp-'));
    dirs.push(tftpRoot);
    const xml = (await fixture('full.xml')).replace("<tftp root='/srv/tftp'/>", `<tftp root='${tftpRoot}'/>`);
    const report = await importLibvirt({ xml, source: 'full.xml', outDir: () => join(dir, 'state'), configOut: () => join(dir, 'lab.json'), statusFile: join(dir, 'none.status'), now: NOW });
    const config = resolveConfig({}, readConfigFile(report.configFile));
    expect(config).toMatchObject({ bridge: 'virbr7', mtu: 9000, domain: 'lab.example', leaseTimeSeconds: 7200, masqueradePorts: [20000, 40000] });
    expect(config.records.map((r) => r.spec.kind).sort()).toEqual(['hostRecord', 'srvHost', 'srvHost', 'txtRecord']);
    expect(config.domainRoutes.map((r) => `${r.kind} ${r.domain}`).sort()).toEqual(['forward corp.example', 'local internal.lab']);
    expect(config.tftp).toEqual({ root: tftpRoot, maxTransfers: 50 });
    expect(config.boot.entries.map((e) => e.file)).toEqual(['pxelinux.0']);
    expect(config.ipv6).toBeDefined();
  });

  it('writes reservations the daemon reads, and leaves out those it would refuse', async () => {
    const dir = await tempDir();
    const xml = (await fixture('full.xml'))
      // the parts a natd without DNS records, PXE and MTU support would refuse are covered above; here: DHCP hosts
      .replace(/<dns>[\s\S]*<\/dns>/, '')
      .replace(/<tftp[^>]*\/>/, '')
      .replace(/<bootp[^>]*\/>/, '')
      .replace(/<mtu[^>]*\/>/, '');
    const report = await importLibvirt({ xml, source: 'full.xml', outDir: () => join(dir, 'state'), configOut: () => join(dir, 'lab.json'), statusFile: join(dir, 'none.status'), now: NOW });
    const hosts = parseHostsfile(await readFile(report.reservationsFile, 'utf8'), report.reservationsFile);
    expect(hosts.reservations.map((r) => [r.hostname, r.leaseSeconds])).toEqual([['web', 1800], ['db', undefined]]);
    expect(report.problems.map((p) => p.message).join('\n')).toMatch(/10\.78\.0\.12 is outside the subnet/);
    expect(report.problems.map((p) => p.message).join('\n')).toMatch(/cannot read the libvirt lease status file/);
  });

  it('writes nothing when the result is not a valid natd config', async () => {
    const dir = await tempDir();
    const xml = "<network><name>bad</name><forward/><bridge name='virbr5'/><ip address='10.9.0.1' prefix='24'><dhcp><range start='10.8.0.2' end='10.8.0.9'/></dhcp></ip></network>";
    await expect(importLibvirt({ xml, source: 'bad.xml', outDir: () => join(dir, 'state'), configOut: () => join(dir, 'bad.json'), statusFile: join(dir, 'x'), now: NOW })).rejects.toMatchObject({
      code: ErrorCodes.CONFIG,
    });
    await expect(readFile(join(dir, 'bad.json'))).rejects.toThrow();
  });

  it('reads the network from virsh net-dumpxml with --from-virsh', async () => {
    const dir = await tempDir();
    const xml = await fixture('default.xml');
    const calls: string[][] = [];
    const exec: Exec = async (command, args) => {
      calls.push([command, ...args]);
      return args[1] === 'default' ? { code: 0, stdout: xml, stderr: '' } : { code: 1, stdout: '', stderr: `error: Network not found: no network with matching name '${args[1]}'` };
    };
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      const args = ['--state-dir', join(dir, 'state'), '--config-out', join(dir, 'default.json'), '--status-file', join(fixtures, 'default.status')];
      expect(await importLibvirtCommand(['--from-virsh', 'default', ...args], exec)).toBe(0);
      await expect(importLibvirtCommand(['--from-virsh', 'nope', ...args], exec)).rejects.toThrow(/Network not found/);
      await expect(importLibvirtCommand(['a.xml', '--from-virsh', 'default'], exec)).rejects.toMatchObject({ code: ErrorCodes.COMMAND });
    } finally {
      process.stdout.write = write;
    }
    expect(calls[0]).toEqual(['virsh', 'net-dumpxml', 'default']);
    expect(out.join('')).toMatch(/virsh net-destroy default && virsh net-autostart --disable default/);
    expect(readConfigFile(join(dir, 'default.json'))).toMatchObject({ bridge: 'virbr0' });
  });
});

describe('libvirt-xml --nat: the import emitted back', () => {
  const octet = fc.integer({ min: 2, max: 250 });
  const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
  const domain = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
  const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
  const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 5, maxLength: 5 }).map((b) => ['52', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':'));
  const settings = fc.record(
    {
      bridgeMac: mac,
      mtu: fc.integer({ min: 576, max: 9000 }),
      domain,
      masqueradePorts: fc.tuple(fc.integer({ min: 1, max: 30000 }), fc.integer({ min: 30001, max: 65535 })),
      leaseTime: fc.oneof(fc.integer({ min: 60, max: 86400 }), fc.constant('infinite' as const)),
      upstreams: fc.array(v4, { minLength: 1, maxLength: 3 }),
      server: fc.array(fc.tuple(domain, v4).map(([d, a]) => `/${d}/${a}`), { minLength: 1, maxLength: 3 }),
      local: fc.array(domain.map((d) => `/${d}/`), { minLength: 1, maxLength: 2 }),
      hostRecord: fc.array(fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), v4).map(([n, a]) => [...n, a].join(',')), { minLength: 1, maxLength: 3 }),
      srvHost: fc.array(
        fc.tuple(label, fc.constantFrom('tcp', 'udp'), domain, domain, fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 })).map(
          ([svc, proto, d, target, port, prio, weight]) => `_${svc}._${proto}.${d},${target},${port},${prio},${weight}`,
        ),
        { minLength: 1, maxLength: 2 },
      ),
      txtRecord: fc.array(fc.tuple(domain, fc.stringMatching(/^[a-zA-Z0-9 =.]{1,20}$/)).map(([n, v]) => `${n},"${v}"`), { minLength: 1, maxLength: 2 }),
      dhcpBoot: fc.oneof(label.map((f) => `${f}.efi`), fc.tuple(label, v4).map(([f, a]) => `${f}.0,,${a}`)).map((b) => [b]),
      routes: fc.array(fc.tuple(octet, octet, v4).map(([a, b, gw]) => `${a}.${b}.0.0/16=${gw}`), { minLength: 1, maxLength: 2 }),
      subnet6: fc.constantFrom('fd00:77::1/64', '2001:db8:1:2::1/64', 'fd12:3456:789a::abcd/64'), // issue 14
    },
    { requiredKeys: [] },
  );
  it('import-libvirt reads back every field libvirt-xml --nat writes (property)', () => {
    fc.assert(
      fc.property(settings, fc.boolean(), (s, tftp) => {
        const full = { bridge: 'virbr3', subnet: '10.3.0.1/24', dhcpRange: '10.3.0.10-10.3.0.99', ...s, ...(tftp ? { enableTftp: true, tftpRoot: '/srv/tftp' } : {}) };
        const parsed = parseLibvirtNetwork(natNetworkXml(full));
        expect(parsed.problems).toEqual([]);
        const expected = { masqueradePorts: [1024, 65535], ...full };
        expect(parsed.settings).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('carries reservations both ways', () => {
    const xml = natNetworkXml({ bridge: 'virbr3', subnet: '10.3.0.1/24', reservations: [{ mac: '52:54:00:00:00:01', address: '10.3.0.5', hostname: 'web' }] });
    expect(parseLibvirtNetwork(xml).reservations).toEqual([{ mac: '52:54:00:00:00:01', address: ip('10.3.0.5'), hostname: 'web' }]);
  });
});
