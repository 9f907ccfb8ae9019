/**
 * issue 16, property tests (fast-check): the --dhcp-boot/--dhcp-match/--dhcp-userclass spec parsers on any string
 * (a value or an Error, nothing else), and PXE boot replies for DISCOVERs with arbitrary options from guests: the
 * tag rules never throw, and the reply always encodes within the client's size limit.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseClassRule, parseDhcpBoot, parseDhcpMatch, type BootPolicy } from '../../src/dhcp/boot.js';
import { emptyPacket, encodeDhcpPacket, decodeDhcpPacket } from '../../src/dhcp/codec.js';
import { decodeAndParse } from '../../src/dhcp/request.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const SEED = Number(process.env.NATD_FUZZ_SEED ?? 0xb007);
const specLike = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.array(fc.oneof(fc.constantFrom('tag:x', 'tag:!y', 'set:z', 'net:n', 'option:client-arch', '93', '175', '7', 'iPXE', '10.0.0.1', '', 'aa:*:01', 'file.efi'), fc.string({ maxLength: 12 })), { maxLength: 6 }).map((f) => f.join(',')),
);

function outcome(parse: (s: string) => unknown, text: string): 'ok' | 'error' {
  try {
    parse(text);
    return 'ok';
  } catch (err) {
    if (!(err instanceof Error) || err.constructor !== Error) throw err; // only plain Errors with a message
    expect(err.message.length).toBeGreaterThan(0);
    return 'error';
  }
}

describe('PXE boot (fuzz)', () => {
  it('the spec parsers return a value or throw an Error with a message, for any string', () => {
    fc.assert(
      fc.property(specLike, (text) => {
        outcome(parseDhcpBoot, text);
        outcome(parseDhcpMatch, text);
        outcome(parseClassRule, text);
      }),
      { numRuns: 20_000, seed: SEED },
    );
  });

  it('DISCOVERs with arbitrary options: tags never throw, the OFFER always encodes within the client limit', () => {
    const policy: BootPolicy = {
      entries: ['tag:efi,tag:!ipxe,ipxe.efi,bootsrv,10.10.0.9', 'tag:ipxe,boot.ipxe', `tag:long,http://10.10.0.1/${'x'.repeat(200)}`, 'undionly.kpxe'].map(parseDhcpBoot),
      matches: ['set:efi,option:client-arch,7', 'set:long,175', 'set:ipxe,77,iPXE', 'set:efi,97,00:*'].map(parseDhcpMatch),
      userClasses: [parseClassRule('set:ipxe,iPXE')],
      vendorClasses: [parseClassRule('set:pxe,PXEClient')],
    };
    const core = new DhcpServerCore({ serverAddress: ip('10.10.0.1'), subnet: makeSubnet(ip('10.10.0.1'), 24), router: ip('10.10.0.1'), dnsServers: [ip('10.10.0.1')], leaseTimeSeconds: 600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.200'), boot: policy }, []);
    const option = fc.tuple(fc.constantFrom(55, 57, 60, 77, 93, 97, 175, 66, 67, 12, 61), fc.uint8Array({ maxLength: 255 }));
    let offers = 0;
    fc.assert(
      fc.property(fc.array(option, { maxLength: 8 }), fc.uint8Array({ minLength: 6, maxLength: 6 }), (options, mac) => {
        const p = emptyPacket();
        p.chaddr.set(mac);
        p.options.set(53, Uint8Array.of(1));
        for (const [code, value] of options) p.options.set(code, value);
        const parsed = decodeAndParse(encodeDhcpPacket(p, 1500));
        if (!parsed.ok) return;
        const result = core.handle(parsed.request, 1_700_000_000_000);
        if (!result.reply) return;
        offers++;
        const wire = encodeDhcpPacket(result.reply.packet, parsed.request.maxMessageSize);
        expect(wire.length).toBeLessThanOrEqual(parsed.request.maxMessageSize - 28);
        const back = decodeDhcpPacket(wire);
        expect(['ipxe.efi', 'boot.ipxe', 'undionly.kpxe', '']).toContain(back.file);
      }),
      { numRuns: 5_000, seed: SEED },
    );
    expect(offers).toBeGreaterThan(1000);
  });
});
