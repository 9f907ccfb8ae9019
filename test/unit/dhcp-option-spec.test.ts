/**
 * Issue 16: dnsmasq --dhcp-option specs. Every value type of the named-option table, dnsmasq's guesses for numbered
 * options it has no type for, tags, quoting, the "no value" form, and the errors; then property tests: arbitrary
 * text only ever yields OptionSpecError, and generated specs of every type encode to the bytes the RFCs define.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket } from '../../src/dhcp/codec.js';
import { OPTION_NAMES, OptionSpecError, optionByName, parseOptionSpec } from '../../src/dhcp/option-spec.js';
import { BOOTREPLY } from '../../src/dhcp/types.js';

const hex = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : Buffer.from(bytes).toString('hex'));
const bytesOf = (spec: string): string | undefined => hex(parseOptionSpec(spec).value);

describe('parseOptionSpec: named options take their type', () => {
  it('address lists (router, dns-server, ntp-server, netbios-ns, …)', () => {
    expect(parseOptionSpec('option:ntp-server,10.0.0.5,10.0.0.6')).toMatchObject({ code: 42, addressList: true, force: false, when: [] });
    expect(bytesOf('option:ntp-server,10.0.0.5,10.0.0.6')).toBe('0a0000050a000006');
    expect(bytesOf('3,192.168.1.1')).toBe('c0a80101');
    expect(bytesOf('option:netbios-ns,0.0.0.0')).toBe('00000000'); // filled with natd's address by the engine
    expect(() => parseOptionSpec('option:dns-server,10.0.0.300')).toThrow(/option 6 \(dns-server\) takes IPv4 addresses/);
  });

  it('integers of the option size: u8 (booleans as dnsmasq: 0|1), u16 (mtu), u32, signed time-offset', () => {
    expect(bytesOf('26,1400')).toBe('0578');
    expect(bytesOf('option:mtu,1400')).toBe('0578');
    expect(bytesOf('option:ip-forward-enable,1')).toBe('01');
    expect(bytesOf('option:default-ttl,64')).toBe('40');
    expect(bytesOf('option:arp-timeout,60')).toBe('0000003c');
    expect(bytesOf('option:time-offset,-3600')).toBe('fffff1f0');
    expect(bytesOf('option:ipv6-only,1800')).toBe('00000708');
    expect(() => parseOptionSpec('option:mtu,70000')).toThrow(/option 26 \(mtu\) takes one integer from 0 to 65535/);
    expect(() => parseOptionSpec('option:mtu,big')).toThrow(OptionSpecError);
    expect(() => parseOptionSpec('option:ip-forward-enable,256')).toThrow(/0 to 255/);
  });

  it('strings (domain-name, tftp-server, bootfile-name, posix-timezone keeps its commas), quoted text', () => {
    expect(Buffer.from(parseOptionSpec('option:tftp-server,boot.example').value!).toString()).toBe('boot.example');
    expect(Buffer.from(parseOptionSpec('option:bootfile-name,pxelinux.0').value!).toString()).toBe('pxelinux.0');
    expect(Buffer.from(parseOptionSpec('option:posix-timezone,EST5EDT,M3.2.0,M11.1.0').value!).toString()).toBe('EST5EDT,M3.2.0,M11.1.0');
    expect(Buffer.from(parseOptionSpec('252,"http://wpad/wpad.dat"').value!).toString()).toBe('http://wpad/wpad.dat');
    expect(Buffer.from(parseOptionSpec('224,"a, \\"quoted\\" text"').value!).toString()).toBe('a, "quoted" text');
    expect(() => parseOptionSpec('224,"open')).toThrow(/unterminated/);
  });

  it('domain-search as RFC 1035 names with compression, classless-static-route as NET/LEN,ROUTER pairs', () => {
    expect(bytesOf('option:domain-search,a.example,b.example')).toBe('0161076578616d706c65000162c002');
    expect(bytesOf('option:classless-static-route,192.168.50.0/24,10.0.0.2,0.0.0.0/0,10.0.0.1')).toBe('18c0a8320a00000200' + '0a000001');
    expect(() => parseOptionSpec('121,192.168.50.0/24')).toThrow(/NET\/LEN,ROUTER pairs/);
    expect(() => parseOptionSpec('option:domain-search,bad name')).toThrow(/domain names/);
  });

  it('raw hex for any option, and for the byte-typed ones (vendor-encap 43)', () => {
    expect(bytesOf('option:vendor-encap,01:04:0a:00:00:01')).toBe('01040a000001');
    expect(bytesOf('26,05:dc')).toBe('05dc');
    expect(bytesOf('224,de:ad:be:ef')).toBe('deadbeef');
    expect(() => parseOptionSpec('43,hello')).toThrow(/raw hex/);
  });
});

describe('parseOptionSpec: numbered options without a type (dnsmasq guesses from the value)', () => {
  it('a decimal in the smallest of 1, 2, 4 bytes; addresses; else text', () => {
    expect(bytesOf('224,7')).toBe('07');
    expect(bytesOf('224,1400')).toBe('0578');
    expect(bytesOf('224,70000')).toBe('00011170');
    expect(bytesOf('224,10.1.2.3,10.1.2.4')).toBe('0a0102030a010204');
    expect(Buffer.from(parseOptionSpec('224,hello world').value!).toString()).toBe('hello world');
  });
});

describe('parseOptionSpec: tags, empty values, errors', () => {
  it('tag:TAG and tag:!TAG conditions, lower-cased; net: is the old spelling', () => {
    expect(parseOptionSpec('tag:Lab,tag:!slow,option:router,10.0.0.2').when).toEqual([
      { tag: 'lab', negated: false },
      { tag: 'slow', negated: true },
    ]);
    expect(parseOptionSpec('net:lab,3,10.0.0.2').when).toEqual([{ tag: 'lab', negated: false }]);
  });

  it('no value means "do not send"', () => {
    expect(parseOptionSpec('option:router').value).toBeUndefined();
    expect(parseOptionSpec('3,').value).toBeUndefined();
    expect(parseOptionSpec('3', true).force).toBe(true);
  });

  it('refuses what natd decides itself, unknown names, framing codes and encapsulation, with a reason', () => {
    expect(() => parseOptionSpec('option:lease-time,60')).toThrow(/option 51 \(lease-time\) cannot be set: use --lease-time/);
    expect(() => parseOptionSpec('53,1')).toThrow(/cannot be set/);
    expect(() => parseOptionSpec('80')).toThrow(/rapid-commit/);
    expect(() => parseOptionSpec('option:no-such,1')).toThrow(/unknown option name "no-such"/);
    expect(() => parseOptionSpec('router,1.2.3.4')).toThrow(/expected a number 1-254 or option:NAME/);
    expect(() => parseOptionSpec('255,1')).toThrow(/framing/);
    expect(() => parseOptionSpec('0,1')).toThrow(/framing/);
    expect(() => parseOptionSpec('256,1')).toThrow(/not an option/);
    expect(() => parseOptionSpec('encap:175,1,1')).toThrow(/not supported/);
    expect(() => parseOptionSpec('tag:bad tag,3,1.2.3.4')).toThrow(/invalid tag/);
    expect(() => parseOptionSpec('')).toThrow(/no option given/);
    expect(() => parseOptionSpec(`224,${'ab:'.repeat(2000)}ab`)).toThrow(/at most/);
  });

  it('every documented name resolves to its code and parses with a value of its type', () => {
    for (const name of OPTION_NAMES) expect(optionByName(name)?.name).toBe(name);
    expect(OPTION_NAMES).toEqual(expect.arrayContaining(['router', 'dns-server', 'domain-name', 'mtu', 'ntp-server', 'vendor-encap', 'netbios-ns', 'tftp-server', 'bootfile-name', 'domain-search', 'classless-static-route']));
  });
});

describe('parseOptionSpec: properties', () => {
  it('arbitrary text never throws anything but OptionSpecError', () => {
    const specish = fc.array(
      fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('tag:a', 'tag:!b', 'option:mtu', 'option:router', '"', ',', '26', '121', '1.2.3.4', '0a:0b', '10/8', 'infinite', '-1')),
      { maxLength: 8 },
    ).map((parts) => parts.join(','));
    fc.assert(
      fc.property(fc.oneof(specish, fc.string({ unit: 'binary', maxLength: 300 })), (text) => {
        try {
          const spec = parseOptionSpec(text);
          expect(spec.code).toBeGreaterThan(0);
          expect(spec.code).toBeLessThan(255);
        } catch (err) {
          expect(err).toBeInstanceOf(OptionSpecError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  const address = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/);

  it('generated values of every type encode to their RFC bytes, and survive a DHCP packet round trip', () => {
    const typed = fc.oneof(
      fc.array(address, { minLength: 1, maxLength: 8 }).map((as) => ({
        spec: `option:ntp-server,${as.map((a) => a.join('.')).join(',')}`,
        bytes: Buffer.from(as.flat()).toString('hex'),
      })),
      fc.integer({ min: 0, max: 0xffff }).map((n) => ({ spec: `option:mtu,${n}`, bytes: n.toString(16).padStart(4, '0') })),
      fc.integer({ min: 0, max: 0xff }).map((n) => ({ spec: `option:netbios-nodetype,${n}`, bytes: n.toString(16).padStart(2, '0') })),
      fc.integer({ min: 0, max: 0xffffffff }).map((n) => ({ spec: `option:tcp-keepalive,${n}`, bytes: n.toString(16).padStart(8, '0') })),
      fc.stringMatching(/^[A-Za-z0-9._/-]{1,60}$/).filter((t) => !/^[0-9a-f]{1,2}(:[0-9a-f]{1,2})+$/i.test(t)).map((t) => ({
        spec: `option:bootfile-name,${t}`,
        bytes: Buffer.from(t).toString('hex'),
      })),
      fc.uint8Array({ minLength: 2, maxLength: 200 }).map((b) => ({
        spec: `option:vendor-encap,${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`,
        bytes: Buffer.from(b).toString('hex'),
      })),
      fc.array(fc.tuple(address, fc.integer({ min: 0, max: 32 }), address), { minLength: 1, maxLength: 6 }).map((routes) => ({
        spec: `121,${routes.map(([n, p, r]) => `${n.join('.')}/${p},${r.join('.')}`).join(',')}`,
        bytes: routes.map(([n, p, r]) => {
          const network = ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) >>> 0;
          const masked = p === 0 ? 0 : (network & (0xffffffff << (32 - p))) >>> 0;
          const significant = [masked >>> 24, (masked >>> 16) & 255, (masked >>> 8) & 255, masked & 255].slice(0, Math.ceil(p / 8));
          return Buffer.from([p, ...significant, ...r]).toString('hex');
        }).join(''),
      })),
      fc.uniqueArray(fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => ls.join('.')), { minLength: 1, maxLength: 4 }).map((names) => ({
        spec: `option:domain-search,${names.join(',')}`,
        bytes: undefined as string | undefined, // compression makes the bytes shorter; checked by decoding below
        names,
      })),
    );
    fc.assert(
      fc.property(typed, (t) => {
        const spec = parseOptionSpec(t.spec);
        if (t.bytes !== undefined) expect(hex(spec.value)).toBe(t.bytes);
        if ('names' in t && t.names) expect(decodeNames(spec.value!)).toEqual(t.names);
        // the value survives the codec (RFC 3396 splitting included)
        const packet = emptyPacket(BOOTREPLY);
        packet.options.set(53, Uint8Array.of(5));
        packet.options.set(spec.code, spec.value!);
        expect(hex(decodeDhcpPacket(encodeDhcpPacket(packet, 1500)).options.get(spec.code))).toBe(hex(spec.value));
      }),
      { numRuns: 500 },
    );
  });
});

/** RFC 1035 names with compression pointers, as a client decodes option 119. */
function decodeNames(bytes: Uint8Array): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    const labels: string[] = [];
    let p = i;
    let jumped = false;
    for (;;) {
      const len = bytes[p]!;
      if (len === 0) {
        if (!jumped) i = p + 1;
        break;
      }
      if (len >= 0xc0) {
        if (!jumped) i = p + 2;
        jumped = true;
        p = ((len & 0x3f) << 8) | bytes[p + 1]!;
        continue;
      }
      labels.push(Buffer.from(bytes.subarray(p + 1, p + 1 + len)).toString());
      p += 1 + len;
    }
    names.push(labels.join('.'));
  }
  return names;
}
