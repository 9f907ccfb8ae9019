import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { escapeXml, interfaceXml, networkXml } from '../../src/tools/libvirt-xml.js';
import { ErrorCodes } from '../../src/errors.js';

const unescapeXml = (s: string): string =>
  s.replace(/&(amp|lt|gt|quot|apos);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);

/** Python's XML parser as an independent judge of well-formedness (skipped where python3 is missing). */
function pythonParses(xml: string): { root: string; text: string } | undefined {
  try {
    const out = execFileSync('python3', ['-c', [
      'import sys, json, xml.etree.ElementTree as ET',
      'r = ET.fromstring(sys.stdin.read())',
      'print(json.dumps({"root": r.tag, "text": json.dumps([[e.tag, e.attrib, e.text] for e in r.iter()])}))',
    ].join('\n')], { input: xml, encoding: 'utf8' });
    return JSON.parse(out) as { root: string; text: string };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

describe('networkXml', () => {
  it('defines a bridge-mode network on the named bridge, without libvirt DHCP, DNS or NAT', () => {
    const xml = networkXml({ bridge: 'virbr10' });
    expect(xml).toBe("<network>\n  <name>virbr10</name>\n  <forward mode='bridge'/>\n  <bridge name='virbr10'/>\n</network>\n");
    expect(xml).not.toMatch(/<ip|<dns|<dhcp|mode='nat'/);
  });

  it('uses the given network name', () => {
    expect(networkXml({ bridge: 'virbr10', name: 'natd-lab' })).toMatch(/<name>natd-lab<\/name>[\s\S]*<bridge name='virbr10'\/>/);
  });

  it('escapes markup in names and rejects characters XML cannot hold', () => {
    const xml = networkXml({ bridge: "br'0", name: 'a<b&c' });
    expect(xml).toContain('<name>a&lt;b&amp;c</name>');
    expect(xml).toContain("<bridge name='br&apos;0'/>");
    const parsed = pythonParses(xml);
    if (parsed) expect(JSON.parse(parsed.text)).toEqual([['network', {}, '\n  '], ['name', {}, 'a<b&c'], ['forward', { mode: 'bridge' }, null], ['bridge', { name: "br'0" }, null]]);
    expect(() => networkXml({ bridge: 'br\u0001' })).toThrow(expect.objectContaining({ code: ErrorCodes.COMMAND }));
    expect(() => networkXml({ bridge: '' })).toThrow(/bridge/);
  });
});

describe('interfaceXml', () => {
  it('gives the bridge interface snippet with a virtio model and the normalised MAC', () => {
    const xml = interfaceXml({ bridge: 'virbr10', mac: '52:54:00:4F:47:F2' });
    expect(xml).toBe(
      "<interface type='bridge'>\n  <source bridge='virbr10'/>\n  <mac address='52:54:00:4f:47:f2'/>\n  <model type='virtio'/>\n</interface>\n",
    );
    const parsed = pythonParses(xml);
    if (parsed) expect(parsed.root).toBe('interface');
  });

  it('leaves the MAC to libvirt when none is given and rejects a malformed one', () => {
    expect(interfaceXml({ bridge: 'virbr10' })).not.toContain('<mac');
    expect(() => interfaceXml({ bridge: 'virbr10', mac: "52:54:00:4f:47:f2'/><x" })).toThrow(/not a MAC address/);
  });
});

describe('escapeXml', () => {
  it('round-trips any text and leaves no markup characters (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const escaped = escapeXml(s);
        expect(escaped).not.toMatch(/[<>"']/);
        expect(escaped).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
        expect(unescapeXml(escaped)).toBe(s);
      }),
    );
  });
});
