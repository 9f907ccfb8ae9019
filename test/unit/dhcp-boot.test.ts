/**
 * issue 16: PXE boot fields. The flag syntax (dnsmasq's), the tags a client earns from its options and its
 * reservation, the entry chosen (dnsmasq's find_boot), and the reply on the wire: a DISCOVER encoded as a PXE ROM
 * sends it, through decodeAndParse and the core, and the OFFER decoded back.
 */
import { describe, expect, it } from 'vitest';
import { clientTags, parseClassRule, parseDhcpBoot, parseDhcpMatch, selectBoot, type BootPolicy } from '../../src/dhcp/boot.js';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket } from '../../src/dhcp/codec.js';
import { decodeAndParse } from '../../src/dhcp/request.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { DhcpOption, type Reservation } from '../../src/dhcp/types.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { resolveConfig } from '../../src/config.js';
import { parseOptionSpec } from '../../src/dhcp/option-spec.js';
import { ip } from '../support/addresses.js';

const SERVER = ip('10.10.0.1');

function policy(p: { boot?: string[]; match?: string[]; userclass?: string[]; vendorclass?: string[] }): BootPolicy {
  return {
    entries: (p.boot ?? []).map(parseDhcpBoot),
    matches: (p.match ?? []).map(parseDhcpMatch),
    userClasses: (p.userclass ?? []).map(parseClassRule),
    vendorClasses: (p.vendorclass ?? []).map(parseClassRule),
  };
}

describe('flag syntax (dnsmasq)', () => {
  it('--dhcp-boot: tags, file, server name, server address', () => {
    expect(parseDhcpBoot('pxelinux.0')).toEqual({ conditions: [], file: 'pxelinux.0' });
    expect(parseDhcpBoot('tag:efi-x86_64,tag:!ipxe,ipxe.efi,boothost,10.10.0.2')).toEqual({
      conditions: [{ tag: 'efi-x86_64', negate: false }, { tag: 'ipxe', negate: true }], file: 'ipxe.efi', serverName: 'boothost', serverAddress: ip('10.10.0.2'),
    });
    expect(parseDhcpBoot('net:old,file,,10.10.0.3')).toEqual({ conditions: [{ tag: 'old', negate: false }], file: 'file', serverAddress: ip('10.10.0.3') });
    expect(() => parseDhcpBoot('tag:x')).toThrow(/expected/);
    expect(() => parseDhcpBoot('f,s,not-an-ip')).toThrow(/not an IPv4 address/);
    expect(() => parseDhcpBoot('tag:bad tag,f')).toThrow(/not a tag/);
    expect(() => parseDhcpBoot(`${'x'.repeat(256)}`)).toThrow(/longer than 255/);
    expect(() => parseDhcpBoot('f,s,10.0.0.1,extra')).toThrow(/too many/);
  });
  it('--dhcp-match: option number or name, value as number (option width), hex or text', () => {
    expect(parseDhcpMatch('set:efi-x86_64,option:client-arch,7')).toEqual({ setTag: 'efi-x86_64', option: 93, value: { bytes: [0, 7], step: 2 } });
    expect(parseDhcpMatch('set:ipxe,175')).toEqual({ setTag: 'ipxe', option: 175 });
    expect(parseDhcpMatch('set:x,60,PXEClient').value).toEqual({ bytes: [...Buffer.from('PXEClient')], step: 1 });
    expect(parseDhcpMatch('set:x,97,00:*:ff').value).toEqual({ bytes: [0, undefined, 255], step: 1 });
    expect(() => parseDhcpMatch('set:x,option:nope')).toThrow(/not a number or one of/);
    expect(() => parseDhcpMatch('set:x,vi-encap:4491')).toThrow(/vi-encap/);
    expect(() => parseDhcpMatch('tag:x,93')).toThrow(/expected set:TAG/);
    expect(() => parseDhcpMatch('set:x,option:client-arch,70000')).toThrow(/2-byte/);
    expect(() => parseDhcpMatch('set:x,255')).toThrow(/1-254/);
  });
  it('--dhcp-userclass / --dhcp-vendorclass: set:TAG,TEXT (the text may hold commas)', () => {
    expect(parseClassRule('set:ipxe,iPXE')).toEqual({ setTag: 'ipxe', text: 'iPXE' });
    expect(parseClassRule('set:v,a,b')).toEqual({ setTag: 'v', text: 'a,b' });
    expect(() => parseClassRule('set:ipxe')).toThrow(/expected/);
    expect(() => parseClassRule('ipxe,iPXE')).toThrow(/expected/);
  });
  it('config errors name the field and the value; check-config rejects what the daemon would', () => {
    expect(() => resolveConfig({ bridge: 'br0', dhcpBoot: ['tag:x'], dhcpMatch: ['set:y,option:nope'] })).toThrow(/dhcpBoot\.0: expected .*\n.*dhcpMatch\.0: option "option:nope"/s);
    expect(() => resolveConfig({ bridge: 'br0', enableTftp: true })).toThrow(/enableTftp: needs tftpRoot/);
    expect(() => resolveConfig({ bridge: 'br0', enableTftp: true, tftpRoot: '/nonexistent-natd' })).toThrow(/tftpRoot: \/nonexistent-natd is not a directory natd can use \(ENOENT\)/);
    expect(() => resolveConfig({ bridge: 'br0', tftpRoot: '/tmp' })).toThrow(/tftpRoot: given without enableTftp/);
    expect(() => resolveConfig({ bridge: 'br0', enableTftp: true, tftpRoot: '/tmp', tftpMax: 0 })).toThrow(/tftpMax/);
    expect(() => resolveConfig({ bridge: 'br0', reservations: [{ mac: '52:54:00:00:00:01', address: '10.10.0.5', tags: ['bad tag'] }] })).toThrow(/reservations\.0\.tags\.0: a tag of letters/);
    const c = resolveConfig({ bridge: 'br0', enableTftp: true, tftpRoot: '/tmp', dhcpBoot: ['tag:ipxe,boot.ipxe', 'undionly.kpxe'], dhcpUserclass: ['set:ipxe,iPXE'] });
    expect(c.tftp).toEqual({ root: '/tmp', maxTransfers: 50 });
    expect(c.boot.entries.map((e) => e.file)).toEqual(['boot.ipxe', 'undionly.kpxe']);
  });
});

describe('tags and selection (dnsmasq find_boot)', () => {
  const p = policy({
    boot: ['undionly.kpxe', 'tag:efi-x86_64,ipxe.efi', 'tag:ipxe,boot.ipxe', 'tag:known,tag:!ipxe,host.efi'],
    match: ['set:efi-x86_64,option:client-arch,7', 'set:efi-x86_64,option:client-arch,9', 'set:ipxe-encap,175'],
    userclass: ['set:ipxe,iPXE'],
    vendorclass: ['set:pxe,PXEClient'],
  });
  const opts = (o: Record<number, number[] | string>) => new Map(Object.entries(o).map(([k, v]) => [Number(k), typeof v === 'string' ? Buffer.from(v) : Uint8Array.from(v)]));
  it('client-arch from option 93 (a list of 16-bit numbers)', () => {
    expect(clientTags(p, opts({ 93: [0, 7] }), undefined)).toEqual(new Set(['efi-x86_64']));
    expect(clientTags(p, opts({ 93: [0, 0, 0, 9] }), undefined)).toEqual(new Set(['efi-x86_64']));
    expect(clientTags(p, opts({ 93: [7, 0] }), undefined)).toEqual(new Set()); // 0x0700 is not 7
    expect(clientTags(p, opts({ 93: [0, 0] }), undefined)).toEqual(new Set());
  });
  it('iPXE: user class "iPXE" raw or RFC 3004-encoded, option 175 present; vendor class substring', () => {
    expect(clientTags(p, opts({ 77: 'iPXE' }), undefined)).toEqual(new Set(['ipxe']));
    expect(clientTags(p, opts({ 77: [4, ...Buffer.from('iPXE')] }), undefined)).toEqual(new Set(['ipxe']));
    expect(clientTags(p, opts({ 175: [0xb1, 1, 1] }), undefined)).toEqual(new Set(['ipxe-encap']));
    expect(clientTags(p, opts({ 60: 'PXEClient:Arch:00000:UNDI:002001' }), undefined)).toEqual(new Set(['pxe']));
    expect(clientTags(p, opts({ 77: 'ipxe' }), undefined)).toEqual(new Set()); // case matters, as in dnsmasq
  });
  it('the first tagged entry whose tags all hold, else the untagged one', () => {
    const pick = (tags: string[]) => selectBoot(p, new Set(tags))?.file;
    expect(pick([])).toBe('undionly.kpxe');
    expect(pick(['efi-x86_64'])).toBe('ipxe.efi');
    expect(pick(['ipxe'])).toBe('boot.ipxe');
    expect(pick(['efi-x86_64', 'ipxe'])).toBe('ipxe.efi'); // order of the flags decides
    expect(pick(['known'])).toBe('host.efi');
    expect(pick(['known', 'ipxe'])).toBe('boot.ipxe');
    expect(selectBoot(policy({ boot: ['tag:x,only'] }), new Set())).toBeUndefined();
  });
});

describe('the reply on the wire', () => {
  const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
  function discover(options: Record<number, number[] | string>): Buffer {
    const p = emptyPacket();
    p.chaddr.set(MAC);
    p.options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(1));
    for (const [k, v] of Object.entries(options)) p.options.set(Number(k), typeof v === 'string' ? Buffer.from(v) : Uint8Array.from(v));
    return encodeDhcpPacket(p);
  }
  function offer(core: DhcpServerCore, wire: Buffer) {
    const parsed = decodeAndParse(wire);
    if (!parsed.ok) throw new Error(parsed.reason);
    const result = core.handle(parsed.request, 1_700_000_000_000);
    return decodeDhcpPacket(encodeDhcpPacket(result.reply!.packet, 1500));
  }
  function core(p: BootPolicy, reservations: Reservation[] = []): DhcpServerCore {
    return new DhcpServerCore({ serverAddress: SERVER, subnet: makeSubnet(SERVER, 24), router: SERVER, dnsServers: [SERVER], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199'), boot: p }, reservations);
  }
  // what SeaBIOS's iPXE ROM sends (QEMU): arch 0, user class iPXE, PRL with 66 and 67
  const ipxeBios = { 93: [0, 0], 77: 'iPXE', 60: 'PXEClient:Arch:00000:UNDI:002001', 55: [1, 3, 6, 12, 15, 17, 26, 28, 43, 60, 66, 67, 119, 128, 175, 203] };

  it('file, siaddr (natd by default), and options 66/67 because the client asked', () => {
    const reply = offer(core(policy({ boot: ['tag:ipxe,boot.ipxe', 'undionly.kpxe'], userclass: ['set:ipxe,iPXE'] })), discover(ipxeBios));
    expect({ file: reply.file, sname: reply.sname, siaddr: reply.siaddr }).toEqual({ file: 'boot.ipxe', sname: '', siaddr: SERVER });
    expect(Buffer.from(reply.options.get(67)!).toString()).toBe('boot.ipxe');
    expect(Buffer.from(reply.options.get(66)!).toString()).toBe('10.10.0.1');
  });
  it('a firmware PXE ROM (no iPXE user class) gets the untagged entry; 66/67 only when asked', () => {
    const reply = offer(core(policy({ boot: ['tag:ipxe,boot.ipxe', 'undionly.kpxe,tftphost,10.10.0.7'], userclass: ['set:ipxe,iPXE'] })), discover({ 93: [0, 0], 55: [1, 3] }));
    expect({ file: reply.file, sname: reply.sname, siaddr: reply.siaddr }).toEqual({ file: 'undionly.kpxe', sname: 'tftphost', siaddr: ip('10.10.0.7') });
    expect(reply.options.has(66)).toBe(false);
    expect(reply.options.has(67)).toBe(false);
  });
  it('UEFI x64 by client-arch 7', () => {
    const reply = offer(core(policy({ boot: ['tag:efi-x86_64,ipxe.efi', 'undionly.kpxe'], match: ['set:efi-x86_64,option:client-arch,7'] })), discover({ 93: [0, 7] }));
    expect(reply.file).toBe('ipxe.efi');
  });
  it('per host: a reservation\'s set:TAG (and known)', () => {
    const mac = MAC.map((b) => b.toString(16).padStart(2, '0')).join(':');
    const c = core(policy({ boot: ['tag:special,special.efi', 'undionly.kpxe'] }), [{ mac, address: ip('10.10.0.50'), tags: ['special'] }]);
    expect(offer(c, discover({})).file).toBe('special.efi');
    expect(offer(core(policy({ boot: ['tag:known,k.efi', 'undionly.kpxe'] }), [{ mac, address: ip('10.10.0.50') }]), discover({})).file).toBe('k.efi');
  });
  it('tags the request earns select --dhcp-option specs too, for reserved hosts with their own options as well', () => {
    const mac = MAC.map((b) => b.toString(16).padStart(2, '0')).join(':');
    const make = (reservations: Reservation[]) => new DhcpServerCore({
      serverAddress: SERVER, subnet: makeSubnet(SERVER, 24), router: SERVER, dnsServers: [SERVER], leaseTimeSeconds: 3600,
      rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199'), boot: policy({ match: ['set:efi,option:client-arch,7'] }),
      options: [parseOptionSpec('tag:efi,option:ntp-server,10.10.0.9', false)],
    }, reservations);
    const ntp = (reply: ReturnType<typeof offer>) => reply.options.get(42) && [...reply.options.get(42)!].join('.');
    const efi = discover({ 93: [0, 7], 55: [1, 3, 42] });
    const bios = discover({ 93: [0, 0], 55: [1, 3, 42] });
    expect(ntp(offer(make([]), efi))).toBe('10.10.0.9');
    expect(ntp(offer(make([]), bios))).toBeUndefined();
    // a reserved host with an option of its own keeps it and still gets what its request earned, every time
    const own = make([{ mac, address: ip('10.10.0.50'), options: [parseOptionSpec('224,"host"', false)] }]);
    for (let i = 0; i < 3; i++) {
      const reply = offer(own, discover({ 93: [0, 7], 55: [1, 3, 42, 224] }));
      expect(ntp(reply)).toBe('10.10.0.9');
      expect(Buffer.from(reply.options.get(224)!).toString()).toBe('host');
    }
  });
  it('a name longer than the 128-byte file field goes in option 67 only', () => {
    const url = `http://10.10.0.1/${'x'.repeat(150)}.ipxe`;
    const reply = offer(core(policy({ boot: [url] })), discover({ 55: [1, 3] }));
    expect(reply.file).toBe('');
    expect(Buffer.from(reply.options.get(67)!).toString()).toBe(url);
  });
  it('without --dhcp-boot nothing changes: no file, siaddr 0, no 66/67', () => {
    const reply = offer(core(policy({})), discover(ipxeBios));
    expect({ file: reply.file, siaddr: reply.siaddr, has66: reply.options.has(66), has67: reply.options.has(67) }).toEqual({ file: '', siaddr: 0, has66: false, has67: false });
  });
});
