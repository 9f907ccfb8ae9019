import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { recordArgs } from '../../src/control/commands.js';
import { RecordBook, RUNTIME_RECORDS_FILE } from '../../src/daemon/record-book.js';
import { silentLogger } from '../../src/log.js';
import { parseCidr } from '../../src/net/ipv4.js';

const { subnet } = parseCidr('10.10.0.1/24')!;

describe('RecordBook: runtime records (natd records add|remove)', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function book(extra: Record<string, unknown> = {}, reserved: { name: string; field: string }[] = []) {
    dir ??= await mkdtemp(join(tmpdir(), 'natd-records-'));
    const config = resolveConfig({ bridge: 'br0', domain: 'vm', stateDir: dir, hostRecord: ['api.lab,10.10.0.5'], ...extra });
    return { config, records: await RecordBook.load(config, { subnet, logger: silentLogger, reservedNames: () => reserved }) };
  }

  it('adds in dnsmasq syntax, persists canonically, answers from the new zone, and reloads it after a restart', async () => {
    const { config, records } = await book();
    const before = records.zone;
    expect(await records.add({ kind: 'host-record', spec: 'DB.lab,10.10.0.7' })).toEqual({ kind: 'host-record', spec: 'db.lab,10.10.0.7', source: 'runtime' });
    expect(records.zone).not.toBe(before);
    expect(records.zone.node('db.lab')?.rrsets.get(1)?.[0]?.data).toBe('10.10.0.7');
    expect(JSON.parse(await readFile(join(dir!, RUNTIME_RECORDS_FILE), 'utf8'))).toEqual([{ kind: 'hostRecord', spec: 'db.lab,10.10.0.7' }]);
    const again = await RecordBook.load(config, { subnet, logger: silentLogger, reservedNames: () => [] });
    expect(again.rows()).toEqual([
      { kind: 'host-record', spec: 'api.lab,10.10.0.5', source: 'config' },
      { kind: 'host-record', spec: 'db.lab,10.10.0.7', source: 'runtime' },
    ]);
    expect(again.countsByKind()).toMatchObject({ 'host-record': 2, cname: 0 });
  });

  it('refuses bad values, duplicates, clashes, reservation names, and removing config records; nothing changes', async () => {
    const { records } = await book({}, [{ name: 'web', field: 'the config reservation 52:54:00:00:00:01' }]);
    const zone = records.zone;
    await expect(records.add({ kind: 'mx', spec: 'x' })).rejects.toThrow(/kind: expected one of host-record/);
    await expect(records.add({ kind: 'host-record', spec: 'nope' })).rejects.toThrow(/host-record: .*no address/);
    await expect(records.add({ kind: 'host-record', spec: 'api.lab,10.10.0.5' })).rejects.toThrow(/already there/);
    await expect(records.add({ kind: 'cname', spec: 'api.lab,other.lab' })).rejects.toThrow(/a CNAME name holds nothing else/);
    await expect(records.add({ kind: 'host-record', spec: 'web.vm,10.10.0.9' })).rejects.toThrow(/"web" is also a DNS record name/);
    await expect(records.remove({ kind: 'host-record', spec: 'api.lab,10.10.0.5' })).rejects.toThrow(/comes from the config/);
    await expect(records.remove({ kind: 'host-record', spec: 'zz.lab,10.10.0.5' })).rejects.toThrow(/no record/);
    expect(records.zone).toBe(zone);
    expect(records.holdsName('API.lab')).toBe(true);
    expect(records.owns('anything.lab')).toBe(false);
  });

  it('removes a runtime record at once; a runtime record that clashes with a reloaded config is skipped', async () => {
    const { records } = await book();
    await records.add({ kind: 'address', spec: '/apps.lab/10.10.0.50' });
    expect(records.owns('x.apps.lab')).toBe(true);
    await records.remove({ kind: 'address', spec: '/apps.lab/10.10.0.50' });
    expect(records.owns('x.apps.lab')).toBe(false);
    await records.add({ kind: 'cname', spec: 'www.lab,api.lab' });
    const clashing = resolveConfig({ bridge: 'br0', domain: 'vm', stateDir: dir, hostRecord: ['api.lab,10.10.0.5', 'www.lab,10.10.0.6'] });
    await records.reload(clashing);
    expect(records.rows().map((r) => r.spec)).toEqual(['api.lab,10.10.0.5', 'www.lab,10.10.0.6']);
    await writeFile(join(dir!, RUNTIME_RECORDS_FILE), 'not json');
    await records.reload(clashing);
    expect(records.rows()).toHaveLength(2);
  });

  it('reads the CLI forms KIND=VALUE and KIND VALUE', () => {
    expect(recordArgs('add', ['address=/apps.lab/10.10.0.50'])).toEqual({ kind: 'address', spec: '/apps.lab/10.10.0.50' });
    expect(recordArgs('add', ['--txt-record', 'lab,"a=b"'])).toEqual({ kind: 'txt-record', spec: 'lab,"a=b"' });
    expect(() => recordArgs('remove', ['nothing'])).toThrow(/usage: natd records remove KIND=VALUE/);
  });
});
