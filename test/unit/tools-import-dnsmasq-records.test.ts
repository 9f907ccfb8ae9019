import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importDnsmasq, parseDnsmasqConf } from '../../src/tools/import-dnsmasq.js';
import { resolveConfig } from '../../src/config.js';

const CONF = `interface=virbr10
listen-address=10.10.0.1
dhcp-range=10.10.0.10,10.10.0.200,255.255.255.0,12h
domain=ocp.lab
host-record=api.ocp.lab,api-int.ocp.lab,10.10.0.5
host-record=etcd-0.ocp.lab,10.10.0.11
cname=console.ocp.lab,api.ocp.lab
srv-host=_etcd-server-ssl._tcp.ocp.lab,etcd-0.ocp.lab,2380,0,10
txt-record=ocp.lab,"v=spf1 -all","second, with comma"
mx-host=ocp.lab,mail.ocp.lab,10
ptr-record=_http._tcp.ocp.lab,web._http._tcp.ocp.lab
address=/apps.ocp.lab/10.10.0.50
address=/ads.example.com/
addn-hosts=extra-hosts
local-ttl=60
host-record=broken.ocp.lab
`;

describe('import-dnsmasq: custom DNS records (issue 15)', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('carries host-record, cname, srv-host, txt-record, mx-host, ptr-record, address, addn-hosts and local-ttl over', () => {
    const parsed = parseDnsmasqConf(CONF, 'dnsmasq.conf');
    expect(parsed.settings).toMatchObject({
      hostRecord: ['api.ocp.lab,api-int.ocp.lab,10.10.0.5', 'etcd-0.ocp.lab,10.10.0.11'],
      cname: ['console.ocp.lab,api.ocp.lab'],
      srvHost: ['_etcd-server-ssl._tcp.ocp.lab,etcd-0.ocp.lab,2380,0,10'],
      txtRecord: ['ocp.lab,"v=spf1 -all","second, with comma"'],
      mxHost: ['ocp.lab,mail.ocp.lab,10'],
      ptrRecord: ['_http._tcp.ocp.lab,web._http._tcp.ocp.lab'],
      address: ['/apps.ocp.lab/10.10.0.50', '/ads.example.com/'],
      addnHosts: ['extra-hosts'],
      localTtl: 60,
    });
    expect(parsed.problems).toEqual([{ line: 16, message: expect.stringMatching(/^host-record=broken\.ocp\.lab: .*no address; not imported/) }]);
    expect(parsed.unknown).toEqual([]);
    const config = resolveConfig({}, parsed.settings);
    expect(config.records).toHaveLength(9);
  });

  it('writes a config natd loads, with addn-hosts made absolute', async () => {
    dir = await mkdtemp(join(tmpdir(), 'natd-import-records-'));
    await writeFile(join(dir, 'dnsmasq.conf'), CONF);
    const report = await importDnsmasq({ confFile: join(dir, 'dnsmasq.conf'), outDir: join(dir, 'state'), configOut: join(dir, 'natd.json') });
    expect(report.settings.addnHosts).toEqual([join(dir, 'extra-hosts')]);
    expect(report.settings.hostRecord).toHaveLength(2);
  });
});
