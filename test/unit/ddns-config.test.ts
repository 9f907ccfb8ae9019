import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { main } from '../../src/cli.js';

const dir = mkdtempSync(path.join(tmpdir(), 'natd-ddns-config-'));
const goodKey = path.join(dir, 'good.key');
writeFileSync(goodKey, 'key "natd-ddns" {\n\talgorithm hmac-sha256;\n\tsecret "MPn6EXCW92dSY7l9DsLUwErnckyB7iWZcWOksSjqR6I=";\n};\n');
const badKey = path.join(dir, 'bad.key');
writeFileSync(badKey, 'key "natd-ddns" {\n\talgorithm hmac-sha256;\n\tsecret "MPn6EXCW92dSY7l9DsLUwErnckyB7iWZcWOksSjqR6I";\n};\n');

describe('DDNS configuration', () => {
  it('is off by default and resolves the four settings', () => {
    expect(resolveConfig({ bridge: 'br0' }).ddns).toBeUndefined();
    const c = resolveConfig({ bridge: 'br0', ddnsServer: '192.0.2.53#5353', ddnsZone: 'Lab.Example', ddnsReverse: true, ddnsKeyFile: goodKey });
    expect(c.ddns).toMatchObject({ server: { host: '192.0.2.53', port: 5353 }, zone: 'lab.example', reverse: true, keyFile: goodKey, key: { name: 'natd-ddns', algorithm: 'hmac-sha256' } });
    expect(resolveConfig({ bridge: 'br0' }, { ddnsServer: '2001:db8::53', ddnsZone: 'lab.example' }).ddns).toMatchObject({ server: { host: '2001:db8::53', port: 53 }, reverse: false, key: undefined });
  });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ddnsServer: 'ns1.example', ddnsZone: 'lab.example' }, /ddnsServer: expected ADDR\[#PORT\] with an IP address.*\(got "ns1.example"\)/],
    [{ ddnsServer: '192.0.2.53#99999', ddnsZone: 'lab.example' }, /ddnsServer: port "99999" is not in 1-65535/],
    [{ ddnsServer: '192.0.2.53' }, /ddnsZone: missing/],
    [{ ddnsZone: 'lab.example' }, /ddnsZone: needs ddnsServer/],
    [{ ddnsReverse: true }, /ddnsReverse: needs ddnsServer/],
    [{ ddnsServer: '192.0.2.53', ddnsZone: 'lab..example' }, /ddnsZone: not a domain name/],
    [{ ddnsServer: '192.0.2.53', ddnsZone: 'lab.example', ddnsKeyFile: badKey }, new RegExp(`ddnsKeyFile: ${badKey} line 3: secret: .*`)],
    [{ ddnsServer: '192.0.2.53', ddnsZone: 'lab.example', ddnsKeyFile: path.join(dir, 'missing.key') }, /ddnsKeyFile: cannot read .*missing\.key/],
  ];
  it.each(bad)('rejects %j naming the field', (settings, message) => {
    expect(() => resolveConfig({ bridge: 'br0', ...settings })).toThrow(message);
  });

  it('check-config rejects a bad key file, naming the file, the line and the field', async () => {
    await expect(main(['check-config', '--bridge', 'br0', '--ddns-server', '192.0.2.53', '--ddns-zone', 'lab.example', '--ddns-key-file', badKey]))
      .rejects.toThrow(/ddnsKeyFile: .*bad\.key line 3: secret: not base64/);
  });
});
