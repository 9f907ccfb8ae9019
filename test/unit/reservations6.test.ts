/**
 * issue 14: IPv6 reservations in a dnsmasq dhcp-hostsfile (dhcp6/hostsfile6.ts) and at runtime
 * (`natd reservations add`, daemon/reservations.ts + reservations6.ts): the --dhcp-host syntax, persisted in the
 * runtime file, read back at start and on reload, bad ones refused with the field named.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { parseHostsfile } from '../../src/dhcp/hostsfile.js';
import { formatHostsfile6, parseHostsfile6, placeHostReservations6 } from '../../src/dhcp6/hostsfile6.js';
import { dhcp6Reservations } from '../../src/daemon/dhcp6.js';
import { loadReservations, ReservationBook } from '../../src/daemon/reservations.js';
import { checkNewReservation6, loadReservations6, withHostReservations6 } from '../../src/daemon/reservations6.js';
import { reservationAddArgs } from '../../src/control/commands.js';
import { servedIpv6 } from '../../src/ipv6/settings.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { recordingLogger } from '../support/recording-logger.js';

const DUID = '00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc';
const bridge = { name: 'br0', mac: '02:00:00:00:00:01', gateway: parseIpv4('10.14.0.1')!, subnet: makeSubnet(parseIpv4('10.14.0.0')!, 24), created: false };

describe('parseHostsfile6', () => {
  it('reads the --dhcp-host syntax: id:DUID, MAC, [IPv6] full or ::suffix, name; IPv4 lines are left to hostsfile.ts', () => {
    const text = [
      '# comment',
      `id:${DUID},[fd00:14::5],db`,
      '52:54:00:00:00:02,10.14.0.7,[::7],web,set:green',
      'dhcp-host=52:54:00:00:00:03,[::8]',
      '52:54:00:00:00:04,10.14.0.9,plain',
      '[::9],orphan',
      '52:54:00:00:00:05,[zz::1]',
    ].join('\n');
    const { reservations, problems } = parseHostsfile6(text, 'hf');
    expect(reservations).toEqual([
      { duid: DUID, address: { kind: 'full', address: 'fd00:14::5' }, hostname: 'db', field: 'hf:2' },
      { mac: '52:54:00:00:00:02', address: { kind: 'suffix', address: '::7' }, hostname: 'web', field: 'hf:3' },
      { mac: '52:54:00:00:00:03', address: { kind: 'suffix', address: '::8' }, field: 'hf:4' },
    ]);
    expect(problems.map((p) => [p.line, p.message])).toEqual([
      [6, expect.stringContaining('needs id:DUID or a MAC address')],
      [7, expect.stringContaining('"[zz::1]" is not an IPv6 address')],
    ]);
    // the IPv4 side: line 3 keeps its IPv4 reservation, IPv6-only lines are not its problem
    const v4 = parseHostsfile(text, 'hf', bridge.subnet, undefined, bridge.gateway);
    expect(v4.reservations.map((r) => r.mac)).toEqual(['52:54:00:00:00:02', '52:54:00:00:00:04']);
    expect(v4.problems.filter((p) => p.skipped).map((p) => p.line)).toEqual([]);
  });

  it('round-trips through formatHostsfile6; never throws on random lines', () => {
    const specs = parseHostsfile6(`id:${DUID},[fd00:14::5],db\n52:54:00:00:00:02,[::7]\n`, 'x').reservations.map(({ field: _f, ...s }) => s);
    expect(parseHostsfile6(formatHostsfile6(specs), 'x').reservations.map(({ field: _f, ...s }) => s)).toEqual(specs);
    const field = fc.oneof(fc.constantFrom('52:54:00:00:00:01', `id:${DUID}`, 'id:*', '[::5]', '[fd00::1]', '[', '10.0.0.5', 'web', 'set:x', '1h', ''), fc.string({ maxLength: 10 }));
    fc.assert(fc.property(fc.array(fc.array(field, { maxLength: 5 }).map((f) => f.join(',')), { maxLength: 10 }), (lines) => {
      const text = lines.join('\n');
      const { reservations, problems } = parseHostsfile6(text, 'f');
      const v6Lines = text.split('\n').filter((l) => l.replace(/(?:^|\s)#.*$/, '').split(',').some((f) => f.trim().startsWith('['))).length;
      expect(reservations.length + new Set(problems.map((p) => p.line)).size).toBe(v6Lines);
      for (const r of reservations) expect(r.duid !== undefined || r.mac !== undefined).toBe(true);
    }), { numRuns: 500 });
  });

  it('placement in the served /64: the config wins, a clash or an address outside is skipped with its file:line', () => {
    const config = resolveConfig({ bridge: 'br0', subnet6: 'fd00:14::1/64', dhcp6Range: '::100-::1ff', dhcpHost: ['52:54:00:00:00:01,[::5],db'] });
    const served = servedIpv6(config.ipv6!, 'br0', undefined);
    const { reservations } = parseHostsfile6('52:54:00:00:00:01,[::6]\n52:54:00:00:00:02,[fd99::6]\n52:54:00:00:00:03,[::1]\n52:54:00:00:00:04,[::9],app\n', 'hf');
    const skipped: string[] = [];
    const placed = placeHostReservations6(reservations, served, dhcp6Reservations(config, served), (f, why) => skipped.push(`${f} ${why}`));
    expect(placed).toEqual([{ mac: '52:54:00:00:00:04', address: 'fd00:14::9', hostname: 'app' }]);
    expect(skipped).toEqual([
      expect.stringMatching(/^hf:1 MAC 52:54:00:00:00:01 is already reserved/),
      expect.stringMatching(/^hf:2 .*outside the served fd00:14::\/64/),
      expect.stringMatching(/^hf:3 .*gateway's own address/),
    ]);
  });
});

describe('runtime IPv6 reservations (natd reservations add)', () => {
  const setup = (hostsfile?: string) => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'natd-r6-'));
    const file = path.join(stateDir, 'hosts');
    if (hostsfile !== undefined) writeFileSync(file, hostsfile);
    const config = resolveConfig({ bridge: 'br0', subnet: '10.14.0.1/24', subnet6: 'fd00:14::1/64', dhcp6Range: '::100-::1ff', stateDir, ...(hostsfile !== undefined ? { hostsfile: file } : {}), dhcpHost: ['id:00:03:00:01:52:54:00:00:00:99,[::99],cfg'] });
    const served = servedIpv6(config.ipv6!, 'br0', undefined);
    return { config, served, stateDir };
  };
  const book = async (config: ReturnType<typeof resolveConfig>, served: ReturnType<typeof servedIpv6>, leases6: { address: string; duid: string }[] = []) => {
    const logger = recordingLogger();
    const b = new ReservationBook(config, await loadReservations(config, bridge, logger), { bridge, logger, now: () => 0, leaseAt: () => undefined, onChange: () => {} }, await loadReservations6(config, logger));
    const applied: string[][] = [];
    b.ipv6 = {
      check: (spec, others) => checkNewReservation6(spec, dhcp6Reservations(config, served), others, served, (a) => leases6.find((l) => l.address === a)),
      changed: (list) => applied.push(withHostReservations6(dhcp6Reservations(config, served), list, served, logger).map((r) => r.address)),
    };
    return { b, applied, logger };
  };

  it('adds by DUID or MAC (with an IPv4 address too), persists in the hostsfile format, survives a restart, removes', async () => {
    const { config, served, stateDir } = setup();
    const { b, applied } = await book(config, served);
    expect(await b.add(reservationAddArgs([`id:${DUID}`, '[::5]', 'db']))).toMatchObject({ ipv6: 'fd00:14::5', hostname: 'db' });
    expect(await b.add(reservationAddArgs(['52:54:00:00:00:07', '10.14.0.7', '[fd00:14::7]', 'web']))).toMatchObject({ ipv6: 'fd00:14::7', address: '10.14.0.7' });
    expect(applied.at(-1)).toEqual(['fd00:14::99', 'fd00:14::5', 'fd00:14::7']);
    const file = readFileSync(path.join(stateDir, 'runtime-reservations'), 'utf8');
    expect(file).toContain(`id:${DUID},[::5],db`);
    expect(file).toContain('52:54:00:00:00:07,[fd00:14::7],web');
    expect(file).toContain('52:54:00:00:00:07,10.14.0.7,web');
    // a restart reads both families back
    const again = (await book(config, served)).b;
    expect(again.rows()).toEqual(expect.arrayContaining([
      { mac: '52:54:00:00:00:07', address: '10.14.0.7', hostname: 'web', source: 'runtime' },
      { mac: `id:${DUID}`, address: '[::5]', hostname: 'db', source: 'runtime' },
      { mac: '52:54:00:00:00:07', address: '[fd00:14::7]', hostname: 'web', source: 'runtime' },
    ]));
    expect(await again.remove('[::5]', new Set())).toEqual({ mac: `id:${DUID}`, address: '[::5]' });
    await expect(again.remove('[::5]', new Set())).rejects.toThrow('no reservation matches');
    expect(readFileSync(path.join(stateDir, 'runtime-reservations'), 'utf8')).not.toContain(DUID);
    // one `reservations add MAC IPV4 [IPV6] NAME` is one reservation: removing it by MAC takes both families
    expect(await again.remove('52:54:00:00:00:07', new Set())).toEqual({ mac: '52:54:00:00:00:07', address: '10.14.0.7' });
    expect(again.rows().filter((r) => r.source === 'runtime')).toEqual([]);
    expect(readFileSync(path.join(stateDir, 'runtime-reservations'), 'utf8')).not.toContain('52:54:00:00:00:07');
  });

  it('refuses bad ones, naming the field, and changes nothing', async () => {
    const { config, served, stateDir } = setup(`52:54:00:00:00:08,[::8],fromfile\n`);
    const { b, applied } = await book(config, served, [{ address: 'fd00:14::150', duid: '00:03:00:01:52:54:00:00:00:42' }]);
    const before = readFileSync(path.join(stateDir, 'hosts'), 'utf8');
    const cases: [string[], RegExp][] = [
      [['52:54:00:00:00:01', '[fd99::5]'], /ipv6: \[fd99::5\] is outside the served fd00:14::\/64/],
      [['52:54:00:00:00:01', '[::1]'], /ipv6: \[::1\] is the gateway's own address/],
      [['52:54:00:00:00:01', '[::99]'], /ipv6: address fd00:14::99 is already reserved/],
      [['52:54:00:00:00:08', '[::9]'], /ipv6: MAC 52:54:00:00:00:08 is already reserved/],
      [['52:54:00:00:00:01', '[::10]', 'cfg'], /ipv6: name cfg is already reserved/],
      [['52:54:00:00:00:01', '[::150]'], /ipv6: fd00:14::150 is leased to another client/],
      [['id:zz', '[::5]'], /duid: not a DUID/],
      [['52:54:00:00:00:01', '[::5]', 'bad_name'], /hostname: "bad_name" is not a DNS label/],
    ];
    for (const [args, error] of cases) await expect(b.add(reservationAddArgs(args))).rejects.toThrow(error);
    await expect(b.add({ ipv6: '::5' })).rejects.toThrow(/duid: an IPv6 reservation needs a DUID \(id:\.\.\.\) or a MAC address/);
    expect(() => reservationAddArgs(['52:54:00:00:00:01', 'web'])).toThrow(/give an IPv4 and\/or an \[IPv6\] address/);
    await expect(b.remove('fromfile', new Set())).rejects.toThrow(/comes from the hostsfile/);
    expect(applied).toEqual([]);
    expect(readFileSync(path.join(stateDir, 'hosts'), 'utf8')).toBe(before);
    // without DHCPv6: refused
    b.ipv6 = undefined;
    await expect(b.add(reservationAddArgs(['52:54:00:00:00:01', '[::5]']))).rejects.toThrow(/ipv6: natd serves no DHCPv6/);
  });
});

describe('check-config and the hostsfile\'s IPv6 lines (issue 14)', () => {
  it('reports the lines the daemon would skip: unparsable ones, and ones that do not fit the served /64', async () => {
    const { hostsfileProblems } = await import('../../src/config/served-subnet.js');
    const { hostsfile6PlacementProblems } = await import('../../src/dhcp6/hostsfile6.js');
    const { checkDhcp6BeforeStart } = await import('../../src/dhcp6/settings.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-cc6-'));
    const file = path.join(dir, 'hosts');
    const text = '52:54:00:00:00:01,[::5],db\n52:54:00:00:00:02,[zz]\n52:54:00:00:00:03,[fd99::5]\n52:54:00:00:00:04,[::5]\n';
    writeFileSync(file, text);
    expect(await hostsfileProblems(file, { subnet: bridge.subnet, gateway: bridge.gateway }, undefined)).toEqual([expect.stringMatching(/hosts:2: "\[zz\]" is not an IPv6 address/)]);
    const config = resolveConfig({ bridge: 'br0', subnet6: 'fd00:14::1/64', hostsfile: file });
    expect(() => checkDhcp6BeforeStart(config, undefined, (served, fromConfig) => hostsfile6PlacementProblems(text, file, served, fromConfig))).toThrow(
      /hosts:3: \[fd99::5\] is outside the served fd00:14::\/64.*hosts:4: address fd00:14::5 is already reserved/s,
    );
  });
});
