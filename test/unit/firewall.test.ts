/**
 * The firewall component with a fake nft (a small model of natd's table in the kernel) and an in-memory forwards
 * store: what each operation sends to nft, what it persists, and that a failure at any step leaves the kernel,
 * the file and the listing as they were.
 */
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type Config } from '../../src/config.js';
import { ErrorCodes } from '../../src/errors.js';
import type { BridgeInfo } from '../../src/net/bridge.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { parseForwardSpec, resolveForward } from '../../src/nft/forward-spec.js';
import { Firewall, type FirewallOptions } from '../../src/nft/firewall.js';
import type { ForwardsStore } from '../../src/nft/forwards-file.js';
import { buildForwardChange, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';
import { FakeNft } from '../support/fake-nft.js';
import { recordingLogger } from '../support/recording-logger.js';

const BRIDGE: BridgeInfo = { name: 'br0', mac: '52:54:00:00:00:01', gateway: 0x0a4d0001, subnet: makeSubnet(0x0a4d0000, 24), created: false };
const TABLE = 'natd-br0';
const RESERVATIONS: Record<string, string> = { web: '10.77.0.50', db: '10.77.0.60' };

class MemoryStore implements ForwardsStore {
  saves = 0;
  failNextSave = false;
  constructor(public specs: string[] = []) {}
  load(): Promise<string[]> {
    return Promise.resolve([...this.specs]);
  }
  save(specs: readonly string[]): Promise<void> {
    this.saves++;
    if (this.failNextSave) {
      this.failNextSave = false;
      return Promise.reject(new Error('ENOSPC: no space left on device'));
    }
    this.specs = [...specs];
    return Promise.resolve();
  }
}


const names = new Map(Object.entries(RESERVATIONS).map(([name, address]) => [name, parseIpv4(address)!]));
const resolveName = (name: string): number | undefined => names.get(name);
const forwardOf = (spec: string) => resolveForward(parseForwardSpec(spec), resolveName);

function configWith(forwards: string[], extra: Record<string, unknown> = {}): Config {
  return resolveConfig({ bridge: 'br0', subnet: '10.77.0.1/24', stateDir: '/nonexistent/natd-unit', forwards, ...extra });
}
/** natd's TFTP server on (issue 16): the gateway's UDP 69 is natd's */
const TFTP_ON = { enableTftp: true, tftpRoot: tmpdir() };

const open: Firewall[] = [];

async function started(opts: { forwards?: string[]; stored?: string[]; timeoutMs?: number; healIntervalMs?: number; tftp?: boolean } = {}) {
  const nft = new FakeNft();
  const store = new MemoryStore(opts.stored);
  const logger = recordingLogger();
  const options: FirewallOptions = {
    config: configWith(opts.forwards ?? ['tcp:2222=web:22'], opts.tftp ? TFTP_ON : {}),
    bridge: BRIDGE,
    logger,
    resolveName,
    healIntervalMs: opts.healIntervalMs ?? 3_600_000,
    nft: { exec: nft.exec, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) },
    store,
  };
  const firewall = new Firewall(options);
  await firewall.start();
  open.push(firewall);
  nft.calls = [];
  nft.batches = [];
  return { firewall, nft, store, logger };
}

afterEach(async () => {
  for (const f of open.splice(0)) await f.close().catch(() => undefined);
});

describe('start', () => {
  it('applies the whole table from the configured and stored forwards, then reads it back', async () => {
    const nft = new FakeNft();
    const firewall = new Firewall({ config: configWith(['tcp:2222=web:22']), bridge: BRIDGE, logger: recordingLogger(), resolveName, nft: { exec: nft.exec }, store: new MemoryStore(['udp:5353=db:53']) });
    await firewall.start();
    open.push(firewall);
    expect(nft.calls.map((c) => c.slice(0, 3))).toEqual([['nft', '-j', '-f'], ['nft', '-j', 'list']]);
    expect(nft.elements()).toEqual({
      fwd_any_addr: ['[{"concat":["tcp",2222]},"10.77.0.50"]', '[{"concat":["udp",5353]},"10.77.0.60"]'],
      fwd_any_port: ['[{"concat":["tcp",2222]},22]', '[{"concat":["udp",5353]},53]'],
      fwd_bound_addr: [],
      fwd_bound_port: [],
    });
    expect(firewall.listForwards().map((r) => [r.spec, r.source, r.inTable])).toEqual([['tcp:2222=web:22', 'config', true], ['udp:5353=db:53', 'runtime', true]]);
  });

  it('leaves out a stored forward whose reservation is gone, says so, and lists it as not in the table', async () => {
    const { firewall, logger } = await started({ stored: ['tcp:9090=gone:90'] });
    expect(logger.lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'runtime port forward left out of the table', fields: expect.objectContaining({ forward: 'tcp:9090=gone:90' }) }));
    expect(firewall.listForwards()[1]).toEqual({ spec: 'tcp:9090=gone:90', protocol: 'tcp', host: '*:9090', guest: 'gone:90', source: 'runtime', inTable: false, problem: 'no such reservation' });
    expect(firewall.guestNames()).toEqual(new Set(['web', 'gone']));
  });

  it('refuses a configured forward that names a missing reservation before running nft', async () => {
    const nft = new FakeNft();
    const firewall = new Firewall({ config: configWith(['tcp:2222=nosuch:22']), bridge: BRIDGE, logger: recordingLogger(), resolveName, nft: { exec: nft.exec }, store: new MemoryStore() });
    await expect(firewall.start()).rejects.toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringContaining('no reservation named "nosuch"') });
    expect(nft.calls).toEqual([]);
  });
});

describe('addForward / removeForward', () => {
  it('adds with one element batch, persists the canonical spec, and lists it', async () => {
    const { firewall, nft, store } = await started();
    await firewall.addForward('8080=web:80');
    expect(nft.batches).toEqual([buildForwardChange(EXAMPLE_INPUT, [forwardOf('tcp:8080=web:80')], [])]);
    expect(nft.calls).toHaveLength(1); // no full apply, no read-back
    expect(store.specs).toEqual(['tcp:8080=web:80']);
    expect(nft.elements().fwd_any_port).toContain('[{"concat":["tcp",8080]},80]');
    expect(firewall.listForwards().at(-1)).toEqual({ spec: 'tcp:8080=web:80', protocol: 'tcp', host: '*:8080', guest: '10.77.0.50:80', source: 'runtime', inTable: true });
  });

  it('removes with one element batch and persists the rest', async () => {
    const { firewall, nft, store } = await started({ stored: ['tcp:8080=web:80', 'udp:198.51.100.1:5353=db:53'] });
    const before = nft.elements();
    await firewall.removeForward('udp:198.51.100.1:5353=db:53');
    expect(nft.batches).toEqual([buildForwardChange(EXAMPLE_INPUT, [], [forwardOf('udp:198.51.100.1:5353=db:53')])]);
    expect(store.specs).toEqual(['tcp:8080=web:80']);
    expect(nft.elements()).toEqual({ ...before, fwd_bound_addr: [], fwd_bound_port: [] });
  });

  it('removes a forward that is not in the table (its reservation is gone) without running nft', async () => {
    const { firewall, nft, store } = await started({ stored: ['tcp:9090=gone:90'] });
    await firewall.removeForward('tcp:9090=gone:90');
    expect(nft.calls).toEqual([]);
    expect(store.specs).toEqual([]);
  });

  it('refuses a forward naming a missing reservation without changing anything', async () => {
    const { firewall, nft, store } = await started();
    const listed = firewall.listForwards();
    await expect(firewall.addForward('tcp:8081=nosuch:80')).rejects.toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringMatching(/no reservation named "nosuch"/) });
    expect(nft.calls).toEqual([]);
    expect(store.saves).toBe(0);
    expect(firewall.listForwards()).toEqual(listed);
  });

  it('refuses a host side that is already forwarded (configured, or stored but out of the table), and DNS capture', async () => {
    const { firewall, nft, store } = await started({ stored: ['tcp:9090=gone:90'] });
    await expect(firewall.addForward('tcp:2222=db:22')).rejects.toThrow(/forward "tcp:2222=db:22": host side tcp \. 2222 is already forwarded/);
    await expect(firewall.addForward('tcp:9090=web:90')).rejects.toThrow(/already forwarded/);
    await expect(firewall.addForward('udp:53=web:53')).rejects.toThrow(/would capture the guests' DNS\/DHCP/);
    expect(nft.calls).toEqual([]);
    expect(store.saves).toBe(0);
  });

  it('refuses a forward bound to the gateway or the broadcast on DNS/DHCP; the uplink address is fine', async () => {
    const { firewall, nft, store } = await started();
    const listed = firewall.listForwards();
    await expect(firewall.addForward('udp:10.77.0.1:53=web:53')).rejects.toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringMatching(/^forward "udp:10\.77\.0\.1:53=web:53": host address 10\.77\.0\.1 is the bridge's gateway/) });
    await expect(firewall.addForward('tcp:10.77.0.1:53=web:53')).rejects.toThrow(/DNS \(tcp 53\)/);
    await expect(firewall.addForward('udp:10.77.0.255:67=web:67')).rejects.toThrow(/broadcast address the guests' DHCP requests go to/);
    expect(nft.calls).toEqual([]);
    expect(store.saves).toBe(0);
    expect(firewall.listForwards()).toEqual(listed);
    await firewall.addForward('udp:198.51.100.1:53=web:53');
    expect(store.specs).toEqual(['udp:198.51.100.1:53=web:53']);
  });

  it('a stored forward on the gateway\'s DNS is left out with the reason; a configured one stops the start', async () => {
    const { logger } = await started({ stored: ['udp:10.77.0.1:53=web:53'] });
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'runtime port forward left out of the table', fields: expect.objectContaining({ forward: 'udp:10.77.0.1:53=web:53', error: expect.stringMatching(/bridge's gateway/) }) }));
    const nft = new FakeNft();
    const config = { ...configWith([]), forwards: ['tcp:10.77.0.1:53=web:53'] };
    const firewall = new Firewall({ config, bridge: BRIDGE, logger: recordingLogger(), resolveName, nft: { exec: nft.exec }, store: new MemoryStore() });
    await expect(firewall.start()).rejects.toThrow(/forward "tcp:10\.77\.0\.1:53=web:53": host address 10\.77\.0\.1 is the bridge's gateway/);
    expect(nft.calls).toEqual([]);
  });

  it('with TFTP on: the gateway\'s UDP 69 is refused at runtime, left out when stored, and stops a reload', async () => {
    const { firewall, nft, store, logger } = await started({ tftp: true, stored: ['udp:10.77.0.1:69=web:69', 'udp:69=db:69'] });
    for (const text of ['udp:10.77.0.1:69=web:69', 'udp:69=db:69']) {
      expect(logger.lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'runtime port forward left out of the table', fields: expect.objectContaining({ forward: text, error: expect.stringMatching(/guests' TFTP/) }) }));
    }
    const listed = firewall.listForwards();
    await expect(firewall.addForward('udp:10.77.0.1:69=web:69')).rejects.toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringMatching(/^forward "udp:10\.77\.0\.1:69=web:69": host address 10\.77\.0\.1 is the bridge's gateway, where natd serves the guests' TFTP \(udp 69\)/) });
    await expect(firewall.addForward('udp:69=web:69')).rejects.toThrow(/port 69 on every local address would capture the guests' TFTP/);
    const reloaded = { ...configWith(['tcp:2222=web:22'], TFTP_ON), forwards: ['udp:10.77.0.1:69=web:69'] };
    await expect(firewall.reload(reloaded, resolveName)).rejects.toThrow(/guests' TFTP \(udp 69\)/);
    expect(nft.calls).toEqual([]);
    expect(store.saves).toBe(0);
    expect(firewall.listForwards()).toEqual(listed);
    await firewall.addForward('udp:198.51.100.1:69=web:69'); // the uplink's port 69 is not natd's
    await firewall.addForward('tcp:10.77.0.1:69=web:69'); // nor TCP
    expect(store.specs).toEqual(['udp:198.51.100.1:69=web:69', 'tcp:10.77.0.1:69=web:69']);
  });

  it('with TFTP off, the gateway\'s UDP 69 is an ordinary forward; a reload turning TFTP on checks against the new config', async () => {
    const { firewall, store } = await started();
    await firewall.addForward('udp:10.77.0.1:69=web:69');
    expect(store.specs).toEqual(['udp:10.77.0.1:69=web:69']);
    const configured = (tftp: boolean) => ({ ...configWith(['tcp:2222=web:22'], tftp ? TFTP_ON : {}), forwards: ['udp:10.77.0.1:6969=web:69', 'tcp:2222=web:22', 'udp:10.77.0.1:69=db:69'] });
    await expect(firewall.reload(configured(true), resolveName)).rejects.toThrow(/forward "udp:10\.77\.0\.1:69=db:69": .*guests' TFTP/);
  });

  it('refuses to remove a configured forward or one that does not exist', async () => {
    const { firewall, nft } = await started();
    await expect(firewall.removeForward('2222=web:22')).rejects.toThrow(/forward tcp:2222=web:22 comes from the configuration/);
    await expect(firewall.removeForward('tcp:1=web:1')).rejects.toThrow(/no runtime forward tcp:1=web:1/);
    expect(nft.calls).toEqual([]);
  });
});

describe('rollback', () => {
  it('nft refuses an add: kernel, file and listing unchanged; the next full apply has the old forwards', async () => {
    const { firewall, nft, store } = await started({ stored: ['udp:5353=db:53'] });
    const kernel = nft.elements();
    const listed = firewall.listForwards();
    nft.fault('element');
    await expect(firewall.addForward('tcp:8080=web:80')).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY, message: expect.stringContaining('Device or resource busy') });
    expect(nft.elements()).toEqual(kernel);
    expect(store.saves).toBe(0);
    expect(store.specs).toEqual(['udp:5353=db:53']);
    expect(firewall.listForwards()).toEqual(listed);
    await firewall.reload(configWith(['tcp:2222=web:22']), resolveName);
    expect(nft.elements()).toEqual(kernel);
  });

  it('nft refuses a remove: the forward stays in the kernel, the file and the listing', async () => {
    const { firewall, nft, store } = await started({ stored: ['tcp:8080=web:80'] });
    const kernel = nft.elements();
    nft.fault('element');
    await expect(firewall.removeForward('tcp:8080=web:80')).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY });
    expect(nft.elements()).toEqual(kernel);
    expect(store.specs).toEqual(['tcp:8080=web:80']);
    expect(firewall.listForwards().map((r) => r.spec)).toContain('tcp:8080=web:80');
  });

  it('the file cannot be written: the element batch is undone and the error reaches the caller', async () => {
    const { firewall, nft, store } = await started();
    const kernel = nft.elements();
    store.failNextSave = true;
    await expect(firewall.addForward('tcp:8080=web:80')).rejects.toThrow(/ENOSPC/);
    const added = forwardOf('tcp:8080=web:80');
    expect(nft.batches).toEqual([buildForwardChange(EXAMPLE_INPUT, [added], []), buildForwardChange(EXAMPLE_INPUT, [], [added])]);
    expect(nft.elements()).toEqual(kernel);
    expect(store.specs).toEqual([]);
    expect(firewall.listForwards().map((r) => r.spec)).toEqual(['tcp:2222=web:22']);
    await firewall.addForward('tcp:8080=web:80'); // and the same change goes through once the disk is back
    expect(store.specs).toEqual(['tcp:8080=web:80']);
  });

  it('the write and the undo both fail: the healer puts the old table back', async () => {
    const { firewall, nft, store, logger } = await started({ healIntervalMs: 20 });
    const kernel = nft.elements();
    store.failNextSave = true;
    nft.fault('element', 'fail', 1); // the add goes through, its undo fails
    await expect(firewall.addForward('tcp:8080=web:80')).rejects.toThrow(/ENOSPC/);
    expect(logger.lines.some((l) => l.level === 'error' && /undoing a port forward change failed/.test(l.msg))).toBe(true);
    expect(nft.elements()).not.toEqual(kernel);
    const deadline = Date.now() + 2000;
    while (firewall.counters().heals === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(firewall.counters().heals).toBe(1);
    expect(nft.elements()).toEqual(kernel);
    expect(logger.lines.some((l) => l.msg === 'nft table missing or changed by another program, re-applying')).toBe(true);
  });
});

describe('deadline', () => {
  it('an nft that never finishes fails the operation after the timeout; the queue moves on', async () => {
    const { firewall, nft, store } = await started({ timeoutMs: 100 });
    nft.fault('element', 'hang');
    const startedAt = Date.now();
    const hung = firewall.addForward('tcp:8080=web:80');
    const next = firewall.addForward('tcp:8081=web:81'); // queued behind the hung one
    await expect(hung).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY, message: expect.stringMatching(/did not finish within 100 ms; killed it/) });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(95);
    expect(nft.aborted).toBe(1);
    await next;
    expect(store.specs).toEqual(['tcp:8081=web:81']);
    expect(firewall.listForwards().map((r) => r.spec)).toEqual(['tcp:2222=web:22', 'tcp:8081=web:81']);
  });
});

describe('reload', () => {
  it('re-applies the full ruleset from the new config plus the runtime forwards, and reads it back', async () => {
    const { firewall, nft } = await started({ stored: ['udp:5353=db:53'] });
    await firewall.reload(configWith(['tcp:2223=web:22']), resolveName);
    expect(nft.calls.map((c) => c.slice(0, 3))).toEqual([['nft', '-j', '-f'], ['nft', '-j', 'list']]);
    const [batch] = nft.batches;
    expect(batch!.nftables.slice(0, 3)).toEqual([{ add: { table: { family: 'inet', name: TABLE } } }, { delete: { table: { family: 'inet', name: TABLE } } }, { add: { table: { family: 'inet', name: TABLE } } }]);
    expect(nft.elements().fwd_any_port).toEqual(['[{"concat":["tcp",2223]},22]', '[{"concat":["udp",5353]},53]']);
    expect(firewall.listForwards().map((r) => r.spec)).toEqual(['tcp:2223=web:22', 'udp:5353=db:53']);
    expect(firewall.counters().applies).toBe(2);
  });

  it('a refused reload keeps the old config: listing, kernel, and the base of the next change', async () => {
    const { firewall, nft } = await started();
    const kernel = nft.elements();
    await expect(firewall.reload(configWith(['tcp:2222=nosuch:22']), resolveName)).rejects.toMatchObject({ code: ErrorCodes.CONFIG });
    expect(nft.calls).toEqual([]);
    nft.fault('full');
    await expect(firewall.reload(configWith(['tcp:2223=web:22']), resolveName)).rejects.toMatchObject({ code: ErrorCodes.NFT_APPLY });
    expect(nft.elements()).toEqual(kernel);
    expect(firewall.listForwards().map((r) => r.spec)).toEqual(['tcp:2222=web:22']);
    await expect(firewall.addForward('tcp:2222=db:22')).rejects.toThrow(/already forwarded/);
  });
});

describe('close', () => {
  it('deletes the table once', async () => {
    const { firewall, nft } = await started();
    await firewall.close();
    await firewall.close();
    expect(nft.calls).toEqual([['nft', 'delete', 'table', 'inet', TABLE]]);
  });
});
