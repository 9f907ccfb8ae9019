import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLASS_IN, parseMessage, TYPE_A } from '../../src/ddns/message.js';
import { FileOwnedNames, MemoryOwnedNames, OWNED_FILE, replayOwned } from '../../src/ddns/owned-names.js';
import { DdnsPublisher, type BackoffPolicy } from '../../src/ddns/publisher.js';
import { reverseZoneOf } from '../../src/ddns/updates.js';
import { silentLogger } from '../../src/log.js';
import { ip } from '../support/addresses.js';
import { FakeClock, FakeDnsServer, flush } from '../support/fake-ddns.js';
import { recordingLogger } from '../support/recording-logger.js';

const BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 8000, authBaseMs: 60_000, authMaxMs: 240_000, nameRetryMs: 300_000 };

function setUp(opts: { owned?: MemoryOwnedNames; server?: FakeDnsServer; logger?: ReturnType<typeof recordingLogger>; maxNames?: number } = {}) {
  const clock = new FakeClock();
  const server = opts.server ?? new FakeDnsServer();
  const owned = opts.owned ?? new MemoryOwnedNames();
  const publisher = new DdnsPublisher({
    exchanger: server, owned, zone: 'lab.example', reverseZone: '0.10.10.in-addr.arpa', owner: 'host/br0', ttlSeconds: 300,
    logger: opts.logger ?? silentLogger, now: clock.now, timers: clock, backoff: BACKOFF, ...(opts.maxNames ? { maxNames: opts.maxNames } : {}),
  });
  return { clock, server, owned, publisher };
}

describe('DdnsPublisher', () => {
  it('publishes A + PTR + owner TXT for a lease, moves them with the address, removes them at the end', async () => {
    const { server, publisher } = setUp();
    publisher.resync([]);
    publisher.start();
    publisher.setAddress(ip('10.10.0.10'), 'Alpha');
    expect(server.messages).toBe(0); // the DHCP path only records: nothing is built or sent in the same turn
    await flush();
    expect(server.a('alpha.lab.example')).toBe('10.10.0.10');
    expect(server.ptr('10.0.10.10.in-addr.arpa')).toBe('alpha.lab.example');
    expect(server.txt('alpha.lab.example')).toEqual(['heritage=natd,owner=host/br0']);

    publisher.setAddress(ip('10.10.0.11'), 'alpha'); // the name moved: the old PTR goes
    await flush();
    expect(server.a('alpha.lab.example')).toBe('10.10.0.11');
    expect(server.ptr('10.0.10.10.in-addr.arpa')).toBeUndefined();
    expect(server.ptr('11.0.10.10.in-addr.arpa')).toBe('alpha.lab.example');

    publisher.setAddress(ip('10.10.0.11'), undefined);
    await flush();
    expect([...server.zone.keys()]).toEqual([]);
    expect(publisher.stats()).toMatchObject({ state: 'ok', pending: 0, owned: 0, failed: 0 });
  });

  it('leaves a name natd does not own alone, and counts the conflict', async () => {
    const server = new FakeDnsServer();
    server.zone.set('web.lab.example', new Map([[TYPE_A, new Set(['c0a80001'])]]));
    const logger = recordingLogger();
    const { publisher } = setUp({ server, logger });
    publisher.resync([]);
    publisher.start();
    publisher.setAddress(ip('10.10.0.20'), 'web');
    await flush();
    expect(server.a('web.lab.example')).toBe('192.168.0.1');
    expect(publisher.stats().conflicts).toBe(1);
    expect(logger.lines.some((l) => /not natd's/.test(l.msg))).toBe(true);
    publisher.setAddress(ip('10.10.0.20'), undefined); // its removal must not delete the other owner's record
    await flush();
    expect(server.a('web.lab.example')).toBe('192.168.0.1');
    expect(publisher.stats()).toMatchObject({ conflicts: 0, owned: 0 });
    void CLASS_IN;
  });

  it('never blocks: while the server is down changes coalesce per name and go out with back-off once it is back', async () => {
    const { clock, server, publisher } = setUp();
    publisher.resync([]);
    publisher.start();
    server.mode = 'down';
    publisher.setAddress(ip('10.10.0.10'), 'alpha');
    await flush();
    expect(publisher.stats()).toMatchObject({ state: 'retrying' });
    expect(publisher.stats().failed).toBeGreaterThan(0);
    const retryDelays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = clock.time;
      await clock.advance(clock.nextAt! - clock.time);
      retryDelays.push(clock.time - before);
    }
    expect(retryDelays).toEqual([1000, 2000, 4000, 8000, 8000]); // doubling, capped
    for (let i = 0; i < 100; i++) publisher.setAddress(ip('10.10.0.10'), i % 2 ? 'alpha' : `name${i}`);
    publisher.setAddress(ip('10.10.0.10'), 'omega');
    const sentWhileDown = server.messages;
    expect(publisher.stats().pending).toBeLessThanOrEqual(4); // old forward names, the new one, the PTR
    server.mode = 'up';
    await clock.advance(8000);
    expect(server.a('omega.lab.example')).toBe('10.10.0.10');
    expect(server.a('alpha.lab.example')).toBeUndefined();
    expect(server.ptr('10.0.10.10.in-addr.arpa')).toBe('omega.lab.example');
    expect(server.messages - sentWhileDown).toBeLessThanOrEqual(8);
    expect(publisher.stats()).toMatchObject({ state: 'ok', pending: 0 });
  });

  it('reports a rejected key and retries it less often; a new key retries at once', async () => {
    const logger = recordingLogger();
    const { clock, server, publisher } = setUp({ logger });
    publisher.resync([{ address: ip('10.10.0.10'), label: 'alpha' }]);
    server.mode = 'bad-key';
    publisher.start();
    await flush();
    expect(publisher.stats()).toMatchObject({ state: 'key-rejected', lastError: { message: 'NOTAUTH/BADSIG' } });
    expect(logger.lines.filter((l) => l.level === 'error' && /rejects natd's TSIG key/.test(l.msg))).toHaveLength(1);
    expect(clock.nextAt! - clock.time).toBe(60_000);
    await clock.advance(60_000);
    expect(clock.nextAt! - clock.time).toBe(120_000);
    expect(logger.lines.filter((l) => l.level === 'error')).toHaveLength(1); // once per state change, not per retry
    server.mode = 'up';
    publisher.retryNow();
    await flush();
    expect(server.a('alpha.lab.example')).toBe('10.10.0.10');
    expect(publisher.stats().state).toBe('ok');
  });

  it('parks a name the server refuses and goes on with the others', async () => {
    const { clock, server, publisher } = setUp();
    server.refuse.add('bad_name.lab.example');
    publisher.resync([{ address: ip('10.10.0.10'), label: 'bad_name' }, { address: ip('10.10.0.11'), label: 'good' }]);
    publisher.start();
    await flush();
    expect(server.a('good.lab.example')).toBe('10.10.0.11');
    expect(publisher.stats()).toMatchObject({ state: 'ok', failed: 1, pending: 1 }); // bad_name's A waits; its PTR went
    server.refuse.clear();
    await clock.advance(300_000);
    expect(server.a('bad_name.lab.example')).toBe('10.10.0.10');
  });

  it('a name too long for DNS (long lease name in a long zone) is counted and parked, never thrown', async () => {
    const { server, publisher } = setUp();
    publisher.resync([]);
    publisher.start();
    const long = 'x'.repeat(63);
    const zoneLong = new DdnsPublisher({
      exchanger: server, owned: new MemoryOwnedNames(), zone: `${'z'.repeat(63)}.${'y'.repeat(63)}.${'w'.repeat(63)}`, reverseZone: undefined,
      owner: 'o', ttlSeconds: 60, logger: silentLogger, timers: new FakeClock(),
    });
    zoneLong.resync([]);
    zoneLong.start();
    zoneLong.setAddress(ip('10.10.0.10'), long);
    publisher.setAddress(ip('10.10.0.11'), 'fine');
    await flush();
    expect(zoneLong.stats()).toMatchObject({ failed: 1, pending: 1 });
    expect(zoneLong.stats().lastError?.message).toMatch(/cannot be sent .*longer than 255/);
    expect(server.a('fine.lab.example')).toBe('10.10.0.11');
    zoneLong.close();
  });

  it('resync replaces the records of every lease and removes owned names without a lease', async () => {
    const owned = new MemoryOwnedNames();
    const first = setUp({ owned });
    first.publisher.resync([{ address: ip('10.10.0.10'), label: 'alpha' }, { address: ip('10.10.0.11'), label: 'beta' }]);
    first.publisher.start();
    await flush();
    expect(owned.size).toBe(4);
    first.publisher.close();
    // natd restarts: beta's lease ended meanwhile, alpha's A was changed on the server by hand
    const server = first.server;
    server.zone.get('alpha.lab.example')!.set(TYPE_A, new Set(['01020304']));
    const second = setUp({ owned, server });
    second.publisher.resync([{ address: ip('10.10.0.10'), label: 'alpha' }]);
    second.publisher.start();
    await flush();
    expect(server.a('alpha.lab.example')).toBe('10.10.0.10');
    expect(server.zone.has('beta.lab.example')).toBe(false);
    expect(server.zone.has('11.0.10.10.in-addr.arpa')).toBe(false);
    expect(owned.list().map((n) => n.name).sort()).toEqual(['10.0.10.10.in-addr.arpa', 'alpha.lab.example']);
  });
});

describe('DdnsPublisher concurrency', () => {
  it('keeps up to 8 updates in flight, never two for one name, and ends with the last value', async () => {
    const zone = new FakeDnsServer();
    const held: (() => void)[] = [];
    const flying = new Map<string, number>();
    let most = 0;
    let twice = false;
    const slow = {
      dropped: 0,
      setKey() {},
      exchange: (m: Buffer) => {
        const name = parseMessage(m).sections[1][0]!.name;
        flying.set(name, (flying.get(name) ?? 0) + 1);
        if (flying.get(name)! > 1) twice = true;
        most = Math.max(most, [...flying.values()].reduce((a, b) => a + b, 0));
        return new Promise<Awaited<ReturnType<FakeDnsServer['exchange']>>>((resolve) => held.push(() => {
          flying.set(name, flying.get(name)! - 1);
          if (!flying.get(name)) flying.delete(name);
          resolve(zone.exchange(m));
        }));
      },
    };
    const clock = new FakeClock();
    const publisher = new DdnsPublisher({ exchanger: slow as never, owned: new MemoryOwnedNames(), zone: 'lab.example', reverseZone: undefined, owner: 'o', ttlSeconds: 60, logger: silentLogger, now: clock.now, timers: clock });
    publisher.resync([]);
    publisher.start();
    for (let i = 0; i < 20; i++) publisher.setAddress(ip('10.10.0.10') + i, `vm${i}`);
    publisher.setAddress(ip('10.10.0.10'), 'vm0'); // unchanged
    for (let round = 0; round < 200 && (held.length || publisher.stats().pending); round++) {
      if (round === 1) publisher.setAddress(ip('10.10.0.100'), 'vm0'); // vm0 moves while its first update is out
      held.splice(0).forEach((release) => release());
      await flush();
    }
    expect(most).toBe(8);
    expect(twice).toBe(false);
    expect(zone.a('vm0.lab.example')).toBe('10.10.0.100');
    for (let i = 1; i < 20; i++) expect(zone.a(`vm${i}.lab.example`)).toBe(`10.10.0.${10 + i}`);
  });
});

describe('DdnsPublisher bound', () => {
  it('tracks at most maxNames names; what it dropped is sent after the queue drains', async () => {
    const { clock, server, publisher } = setUp({ maxNames: 10 });
    publisher.resync([]);
    publisher.start();
    server.mode = 'down';
    for (let i = 0; i < 40; i++) publisher.setAddress(ip('10.10.0.10') + i, `vm${i}`);
    await flush();
    const s = publisher.stats();
    expect(s.pending).toBeLessThanOrEqual(10);
    expect(s.overflowed).toBeGreaterThan(0);
    server.mode = 'up';
    await clock.advance(10_000);
    for (let i = 0; i < 40; i++) expect(server.a(`vm${i}.lab.example`)).toBe(`10.10.0.${10 + i}`);
    for (let i = 0; i < 40; i++) publisher.setAddress(ip('10.10.0.10') + i, undefined);
    await clock.advance(10_000);
    expect([...server.zone.keys()]).toEqual([]);
    expect(publisher.stats()).toMatchObject({ pending: 0, owned: 0 });
  });
});

describe('owned-names journal', () => {
  it('survives a restart and compacts', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-ddns-'));
    const a = new FileOwnedNames(dir, silentLogger);
    for (let i = 0; i < 200; i++) a.add({ kind: 'A', name: `n${i % 3}.lab.example`, zone: 'lab.example' }), a.remove({ kind: 'A', name: `n${i % 3}.lab.example` });
    a.add({ kind: 'PTR', name: '5.0.10.10.in-addr.arpa', zone: '0.10.10.in-addr.arpa' });
    expect(readFileSync(path.join(dir, OWNED_FILE), 'utf8').split('\n').length).toBeLessThan(80);
    const b = new FileOwnedNames(dir, silentLogger);
    expect(b.list()).toEqual([{ kind: 'PTR', name: '5.0.10.10.in-addr.arpa', zone: '0.10.10.in-addr.arpa' }]);
  });

  it('skips lines that do not parse', () => {
    expect(replayOwned('+ A a.lab lab\ngarbage\n+ MX x.lab lab\n+ A b.lab other\n- A\n+ A c.lab lab\n- A c.lab\n')).toEqual([{ kind: 'A', name: 'a.lab', zone: 'lab' }]);
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-ddns-'));
    writeFileSync(path.join(dir, OWNED_FILE), '\u0000\u0001 binary');
    expect(new FileOwnedNames(dir, silentLogger).size).toBe(0);
  });
});

describe('reverseZoneOf', () => {
  it('takes the whole octets of the prefix', () => {
    expect(reverseZoneOf(ip('10.10.0.0'), 24)).toBe('0.10.10.in-addr.arpa');
    expect(reverseZoneOf(ip('10.10.0.0'), 20)).toBe('10.10.in-addr.arpa');
    expect(reverseZoneOf(ip('172.16.0.0'), 12)).toBe('172.in-addr.arpa');
  });
});
