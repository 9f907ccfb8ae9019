/**
 * Issue 13 item 6: every structured value is validated before anything on the system changes, by one check that
 * the config loader, `natd check-config` and the daemon share (config/served-subnet.ts). Each rejection names its
 * field.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig, type RawSettings } from '../../src/config.js';
import { checkBeforeStart } from '../../src/config/served-subnet.js';
import { DEFAULT_SUBNET } from '../../src/defaults.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';

function configError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(NatdError);
    expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

async function asyncConfigError(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(NatdError);
    expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

const base: RawSettings = { bridge: 'br7', subnet: '10.10.0.1/24' };
const rejected = (settings: RawSettings) => configError(() => resolveConfig({ ...base, ...settings }));

describe('with --subnet, the loader refuses what the daemon would', () => {
  it('a reservation on the network, broadcast or gateway address, naming the field and index', () => {
    const good = { mac: '52:54:00:00:00:01', address: '10.10.0.50' };
    const on = (address: string) => rejected({ reservations: [good, { mac: '52:54:00:00:00:02', address }] });
    expect(on('10.10.0.0')).toMatch(/reservations\.1\.address: 10\.10\.0\.0 is the subnet's network address/);
    expect(on('10.10.0.255')).toMatch(/reservations\.1\.address: 10\.10\.0\.255 is the subnet's broadcast address/);
    expect(on('10.10.0.1')).toMatch(/reservations\.1\.address: 10\.10\.0\.1 is the gateway's address/);
    expect(on('10.20.0.5')).toMatch(/reservations\.1\.address: 10\.20\.0\.5 is outside the subnet 10\.10\.0\.0\/24/);
    expect(resolveConfig({ ...base, reservations: [good] }).reservations).toHaveLength(1);
  });

  it('a DHCP range outside the subnet', () => {
    expect(rejected({ dhcpRange: '10.10.0.10-10.10.1.20' })).toMatch(/dhcpRange: 10\.10\.0\.10-10\.10\.1\.20 is not inside subnet 10\.10\.0\.1\/24/);
    expect(rejected({ dhcpRange: '10.10.0.30-10.10.0.20' })).toMatch(/dhcpRange: start is after end/);
  });

  it('a route whose router is outside the subnet, or with host bits set', () => {
    expect(rejected({ routes: ['192.168.50.0/24=10.10.0.2', '192.168.60.0/24=10.99.0.2'] })).toMatch(/routes\.1: router 10\.99\.0\.2 is not inside subnet/);
    expect(rejected({ routes: ['192.168.50.1/24=10.10.0.2'] })).toMatch(/routes\.0: 192\.168\.50\.1\/24 has host bits set/);
  });

  it('a forward to a guest address outside the subnet', () => {
    expect(rejected({ forwards: ['2222=10.10.0.5:22', '80=10.20.0.5:80'] })).toMatch(/forwards\.1: "80=10\.20\.0\.5:80": guest 10\.20\.0\.5 is not inside subnet/);
  });

  it('every problem together, each on its own line', () => {
    const message = rejected({ dhcpRange: '10.20.0.10-10.20.0.20', routes: ['192.168.50.0/24=10.99.0.2'], reservations: [{ mac: '52:54:00:00:00:02', address: '10.10.0.1' }] });
    expect(message).toMatch(/^invalid configuration: 3 problems:/);
    for (const field of ['dhcpRange:', 'routes.0:', 'reservations.0.address:']) expect(message).toContain(`\n  ${field}`);
  });
});

describe('values only the DHCP option encoders used to refuse (at start, after the bridge was set up)', () => {
  const longName = Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.'); // 304 bytes: every label is valid

  it('a search domain longer than a DNS name may be', () => {
    expect(rejected({ searchDomains: ['vm', longName] })).toMatch(/searchDomains\.1: domain name too long/);
  });

  it('a domain longer than a DNS name may be (it is the search list when none is given)', () => {
    expect(rejected({ domain: longName })).toMatch(/^invalid configuration: domain: domain name too long/);
  });

  it('other structured values keep naming their field', () => {
    expect(rejected({ searchDomains: ['bad_domain!'] })).toMatch(/searchDomains\.0: not a domain name/);
    expect(rejected({ metricsListen: 'localhost:9153' })).toMatch(/metricsListen: expected ADDRESS:PORT/);
    expect(rejected({ metricsListen: '1.2.3:9153' })).toMatch(/metricsListen: 1\.2\.3 is not an IP address/);
    expect(rejected({ metricsListen: '127.0.0.1:70000' })).toMatch(/metricsListen: port 70000/);
    expect(rejected({ guestToHost: ['all', '22'] })).toMatch(/guestToHost: 'all' cannot be combined/);
  });
});

describe('without --subnet: check-config and the daemon check against the subnet the bridge step will pick', () => {
  const bridgeAt = (cidr: string | undefined) => async () => cidr;

  it("the bridge's current address: a reservation on its gateway is refused", async () => {
    const config = resolveConfig({ bridge: 'br7', reservations: [{ mac: '52:54:00:00:00:02', address: '10.30.0.1' }] });
    expect(await asyncConfigError(() => checkBeforeStart(config, bridgeAt('10.30.0.1/24')))).toMatch(/reservations\.0\.address: 10\.30\.0\.1 is the gateway's address/);
    expect(await checkBeforeStart(config, bridgeAt('10.30.0.254/24'))).toBe('10.30.0.254/24');
  });

  it('no bridge yet: the default subnet natd will create it with', async () => {
    const config = resolveConfig({ bridge: 'br7', dhcpRange: '10.30.0.10-10.30.0.20' });
    expect(await asyncConfigError(() => checkBeforeStart(config, bridgeAt(undefined)))).toMatch(new RegExp(`dhcpRange: 10\\.30\\.0\\.10-10\\.30\\.0\\.20 is not inside subnet ${DEFAULT_SUBNET.replace(/\./g, '\\.')}`));
    expect(await checkBeforeStart(resolveConfig({ bridge: 'br7' }), bridgeAt(undefined))).toBe(DEFAULT_SUBNET);
  });

  it('hostsfile lines the daemon would skip are reported with file:line, notes are not', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-check-'));
    const file = path.join(dir, 'hosts');
    writeFileSync(file, [
      '52:54:00:00:00:01,10.10.0.50,web',
      '52:54:00:00:00:02,10.10.0.1,gw',
      '52:54:00:00:00:03,10.10.0.255',
      '52:54:00:00:00:04,10.10.0.60,infinite',
      'junk',
    ].join('\n'));
    const message = await asyncConfigError(() => checkBeforeStart(resolveConfig({ ...base, hostsfile: file }), bridgeAt(undefined)));
    expect(message).toContain(`hostsfile: ${file}:2: address 10.10.0.1 is the gateway's address; line skipped`);
    expect(message).toContain(`hostsfile: ${file}:3: address 10.10.0.255 is the subnet's broadcast address; line skipped`);
    expect(message).toContain(`hostsfile: ${file}:5:`);
    expect(message).not.toContain(`${file}:1:`);
    expect(message).not.toContain(`${file}:4:`); // a lease time is a note: the line loads
  });

  it('an unreadable hostsfile', async () => {
    const missing = path.join(tmpdir(), 'natd-no-such-hostsfile');
    expect(await asyncConfigError(() => checkBeforeStart(resolveConfig({ ...base, hostsfile: missing }), bridgeAt(undefined)))).toMatch(/hostsfile: cannot read .*natd-no-such-hostsfile/);
  });
});
