/** issue 14: the DHCPv6 codec and DUIDs. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeDhcp6, decodeDomainNames, Dhcp6Option, encodeDhcp6, encodeDomainNames, type Dhcp6Message } from '../../src/dhcp6/codec.js';
import { duidLl, duidLlt, formatDuid, loadOrCreateServerDuid, macFromDuid, parseDuid, parseDuidText, SERVER_DUID_FILE } from '../../src/dhcp6/duid.js';
import { parseIpv6 } from '../../src/ipv6/address.js';

const addr = (t: string): Uint8Array => parseIpv6(t)!;

const full: Dhcp6Message = {
  type: 7,
  transactionId: 0xabcdef,
  serverId: duidLl('02:00:00:00:00:01'),
  clientId: duidLlt('52:54:00:12:34:56', Date.UTC(2024, 0, 1)),
  iaNa: [
    { iaid: 0x0a0b0c0d, t1: 1800, t2: 2880, addresses: [{ address: addr('fd00::5'), preferredLifetime: 3600, validLifetime: 7200 }] },
    { iaid: 2, t1: 0, t2: 0, addresses: [{ address: addr('fd00::6'), preferredLifetime: 0, validLifetime: 0, status: { code: 3, message: 'gone' } }], status: { code: 2, message: 'no addresses available' } },
  ],
  status: { code: 0, message: 'ok ✓' },
  preference: 255,
  rapidCommit: true,
  oro: [23, 24],
  elapsedTime: 100,
  dnsServers: [addr('fd00::1'), addr('2001:db8::53')],
  domainList: ['vm', 'lab.example'],
  informationRefreshTime: 86400,
  other: [{ code: 39, data: Uint8Array.from([0, 3, 119, 101, 98, 0]) }],
};

describe('DHCPv6 codec', () => {
  it('round-trips a message with every option natd knows, and unknown ones raw', () => {
    const bytes = encodeDhcp6(full);
    const decoded = decodeDhcp6(bytes);
    expect(decoded).toEqual({ ok: true, message: full });
    expect(encodeDhcp6((decoded as { message: Dhcp6Message }).message).equals(bytes)).toBe(true);
  });

  it('reads a Solicit as a real client (dhclient -6) sends it', () => {
    // captured layout: SOLICIT xid 0x5a1b2c, CLIENTID DUID-LLT, ORO 23,24, ELAPSED 0, IA_NA iaid 0x00aabbcc
    const hex = '015a1b2c' + '0001000e' + '000100012d0a3c1e525400123456' + '00060004' + '00170018' + '000800020000' + '0003000c' + '00aabbcc' + '00000e10' + '00001518';
    const d = decodeDhcp6(Buffer.from(hex, 'hex'));
    expect(d.ok).toBe(true);
    const m = (d as { message: Dhcp6Message }).message;
    expect(m).toMatchObject({ type: 1, transactionId: 0x5a1b2c, oro: [23, 24], elapsedTime: 0, iaNa: [{ iaid: 0xaabbcc, t1: 3600, t2: 5400, addresses: [] }] });
    expect(macFromDuid(m.clientId!)).toBe('52:54:00:12:34:56');
  });

  const bad: [string, string][] = [
    ['empty', ''],
    ['short header', '0100'],
    ['type 0', '00000000'],
    ['truncated option header', '01000001000100'],
    ['option past the end', '0100000100010010000300'],
    ['CLIENTID too short', '010000010001000200'],
    ['two CLIENTIDs', '01000001' + '00010004000300aa' + '00010004000300aa'],
    ['IA_NA shorter than 12', '01000001' + '000300040000000a'],
    ['IAADDR shorter than 24', '01000001' + '00030014' + '000000010000000000000000' + '00050004' + '00000000'],
    ['ORO of odd length', '01000001' + '00060003' + '001700'],
    ['RAPID_COMMIT with a value', '01000001' + '000e000100'],
    ['ELAPSED_TIME of 3 bytes', '01000001' + '00080003000000'],
    ['DNS_SERVERS not a multiple of 16', '01000001' + '00170004' + '00000000'],
    ['DOMAIN_LIST with a compression pointer', '01000001' + '00180004' + '02766dc0'],
    ['DOMAIN_LIST without the root label', '01000001' + '00180003' + '02766d'],
    ['STATUS_CODE of 1 byte', '01000001' + '000d000100'],
  ];
  it.each(bad)('refuses %s with a reason, never a throw', (_name, hex) => {
    const d = decodeDhcp6(Buffer.from(hex, 'hex'));
    expect(d.ok).toBe(false);
    expect((d as { reason: string }).reason.length).toBeGreaterThan(3);
  });

  it('bounds the number of options and IA addresses', () => {
    const many = Buffer.concat([Buffer.from('01000001', 'hex'), ...Array.from({ length: 65 }, () => Buffer.from('00630000', 'hex'))]);
    expect(decodeDhcp6(many)).toMatchObject({ ok: false, reason: expect.stringContaining('more than 64') });
    const ia = { iaid: 1, t1: 0, t2: 0, addresses: Array.from({ length: 17 }, (_, i) => ({ address: addr(`fd00::${i + 1}`), preferredLifetime: 0, validLifetime: 0 })) };
    expect(decodeDhcp6(encodeDhcp6({ type: 3, transactionId: 1, iaNa: [ia], other: [] }))).toMatchObject({ ok: false, reason: expect.stringContaining('more than 16') });
  });

  it('recognises relay messages without opening them', () => {
    expect(decodeDhcp6(Buffer.concat([Buffer.from([12, 1]), Buffer.alloc(32)]))).toMatchObject({ ok: false, relay: true });
    expect(decodeDhcp6(Buffer.from([13]))).toMatchObject({ ok: false, relay: true });
  });

  it('encodes and decodes RFC 1035 names uncompressed', () => {
    const wire = encodeDomainNames(['vm', 'Lab.Example.']);
    expect(wire.toString('hex')).toBe('02766d00' + '034c6162074578616d706c6500');
    expect(decodeDomainNames(wire)).toEqual(['vm', 'lab.example']);
    expect(() => encodeDomainNames(['a'.repeat(64)])).toThrow();
    expect(decodeDhcp6(encodeDhcp6({ type: 11, transactionId: 1, iaNa: [], other: [{ code: Dhcp6Option.DOMAIN_LIST, data: Uint8Array.from([1, 0x2e, 0]) }] }))).toMatchObject({ ok: false });
  });
});

describe('DUIDs', () => {
  it('parses every type and finds the MAC only in Ethernet LL/LLT', () => {
    const llt = duidLlt('52:54:00:aa:bb:cc', Date.UTC(2000, 0, 1) + 1000_000);
    expect(parseDuid(llt)).toEqual({ type: 'llt', hwType: 1, time: 1000, linkLayer: Uint8Array.from([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]) });
    expect(macFromDuid(llt)).toBe('52:54:00:aa:bb:cc');
    expect(macFromDuid(duidLl('52:54:00:aa:bb:cd'))).toBe('52:54:00:aa:bb:cd');
    const en = Uint8Array.from([0, 2, 0, 0, 0xab, 0x11, 1, 2, 3]);
    expect(parseDuid(en)).toEqual({ type: 'en', enterprise: 43793, identifier: Uint8Array.from([1, 2, 3]) });
    expect(macFromDuid(en)).toBeUndefined();
    const uuid = Uint8Array.from([0, 4, ...Array.from({ length: 16 }, (_, i) => i)]);
    expect(parseDuid(uuid)).toMatchObject({ type: 'uuid' });
    expect(macFromDuid(uuid)).toBeUndefined();
    // LL of another hardware type (InfiniBand, 32) has no MAC natd can use
    expect(macFromDuid(Uint8Array.from([0, 3, 0, 32, 1, 2, 3, 4, 5, 6]))).toBeUndefined();
    expect(parseDuid(Uint8Array.from([0, 1, 0]))).toBeUndefined();
    expect(parseDuid(Uint8Array.from([0, 9, 1, 2]))).toEqual({ type: 'other', code: 9, value: Uint8Array.from([1, 2]) });
  });

  it('prints and reads dnsmasq\'s text form', () => {
    const d = duidLl('52:54:00:aa:bb:cc');
    expect(formatDuid(d)).toBe('00:03:00:01:52:54:00:aa:bb:cc');
    expect(parseDuidText('00:03:00:01:52:54:00:AA:BB:CC')).toEqual(d);
    expect(parseDuidText('0:3:0:1:52:54:0:aa:bb:cc')).toEqual(d);
    expect(parseDuidText('00030001525400aabbcc')).toEqual(d);
    for (const bad of ['', 'zz:00:11', '00:01', '0003000', 'id:00:01:00:01']) expect(parseDuidText(bad)).toBeUndefined();
  });

  describe('server DUID', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'natd-duid-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('is a DUID-LLT of the bridge MAC, made once and the same after a restart (even with another MAC)', async () => {
      const first = await loadOrCreateServerDuid(dir, '02:00:00:00:00:01', Date.UTC(2025, 0, 1));
      expect(macFromDuid(first)).toBe('02:00:00:00:00:01');
      expect(parseDuid(first)).toMatchObject({ type: 'llt' });
      expect(await readFile(join(dir, SERVER_DUID_FILE), 'utf8')).toBe(`${formatDuid(first)}\n`);
      expect(await loadOrCreateServerDuid(dir, '02:00:00:00:00:99', Date.UTC(2026, 0, 1))).toEqual(first);
    });

    it('replaces a damaged file, saying so', async () => {
      await writeFile(join(dir, SERVER_DUID_FILE), 'garbage\n');
      const why: string[] = [];
      const duid = await loadOrCreateServerDuid(dir, '02:00:00:00:00:01', Date.UTC(2025, 0, 1), (w) => why.push(w));
      expect(why).toHaveLength(1);
      expect(await loadOrCreateServerDuid(dir, '02:00:00:00:00:01', Date.UTC(2027, 0, 1))).toEqual(duid);
    });
  });
});
