/** issue 16: `natd import-dnsmasq` carries PXE boot and TFTP options over with their syntax, host tags included. */
import { describe, expect, it } from 'vitest';
import { parseDnsmasqConf } from '../../src/tools/import-dnsmasq.js';

describe('import-dnsmasq: PXE boot and TFTP', () => {
  it('imports dhcp-boot, dhcp-match, dhcp-userclass, dhcp-vendorclass, enable-tftp, tftp-root, tftp-max and set:TAG of hosts', () => {
    const conf = [
      'interface=virbr10',
      'dhcp-range=10.10.0.10,10.10.0.200',
      'enable-tftp',
      'tftp-root=/srv/tftp,virbr10',
      'tftp-max=20',
      'dhcp-match=set:efi-x86_64,option:client-arch,7',
      'dhcp-userclass=set:ipxe,iPXE',
      'dhcp-vendorclass=set:pxe,PXEClient',
      'dhcp-boot=tag:ipxe,boot.ipxe',
      'dhcp-boot=tag:efi-x86_64,ipxe.efi',
      'dhcp-boot=undionly.kpxe,,10.10.0.1',
      'dhcp-boot=tag:x',
      'dhcp-host=52:54:00:00:00:01,10.10.0.5,set:special,web',
    ].join('\n');
    const parsed = parseDnsmasqConf(conf, 'dnsmasq.conf');
    expect(parsed.settings).toMatchObject({
      enableTftp: true,
      tftpRoot: '/srv/tftp',
      tftpMax: 20,
      dhcpMatch: ['set:efi-x86_64,option:client-arch,7'],
      dhcpUserclass: ['set:ipxe,iPXE'],
      dhcpVendorclass: ['set:pxe,PXEClient'],
      dhcpBoot: ['tag:ipxe,boot.ipxe', 'tag:efi-x86_64,ipxe.efi', 'undionly.kpxe,,10.10.0.1'],
    });
    expect(parsed.hosts).toEqual([expect.objectContaining({ mac: '52:54:00:00:00:01', hostname: 'web', tags: ['special'] })]);
    expect(parsed.problems).toEqual([{ line: 12, message: expect.stringMatching(/^dhcp-boot: expected .*; not imported$/) }]);
    expect(parsed.ignored.map((i) => i.option)).toContain('tftp-root');
  });
});
