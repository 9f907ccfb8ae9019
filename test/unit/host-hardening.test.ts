/**
 * The pure parts of issue 12's host hardening (rows 1, 11, 12): the metrics address policy, the order in which the
 * bridge is guarded and brought up, what is forgotten from a rogue router, and the control socket's peer check.
 * The attacks themselves run in test/integration/83-hostile-guest-host.test.ts.
 */
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { ControlServer, peerAllowed, peerOfUnixSocket, type PeerLookup } from '../../src/control/server.js';
import { NatdError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { ensureBridge } from '../../src/net/bridge.js';
import type { IpRunner } from '../../src/net/ip-command.js';
import { recordingLogger, type RecordingLogger } from '../support/recording-logger.js';

describe('metricsListen: loopback unless opted in (row 11)', () => {
  const config = (metricsListen: string, metricsAllowRemote?: boolean) =>
    resolveConfig({ bridge: 'br0', metricsListen, ...(metricsAllowRemote === undefined ? {} : { metricsAllowRemote }) });
  const problem = (metricsListen: string): string => {
    try {
      config(metricsListen);
    } catch (err) {
      expect(err).toBeInstanceOf(NatdError);
      return (err as Error).message;
    }
    throw new Error(`${metricsListen} was accepted`);
  };

  it('accepts any 127.0.0.0/8 address and [::1], split into host and port', () => {
    expect(config('127.0.0.1:9153').metricsListen).toEqual({ host: '127.0.0.1', port: 9153, text: '127.0.0.1:9153' });
    expect(config('127.3.2.1:80').metricsListen?.host).toBe('127.3.2.1');
    expect(config('[::1]:9153').metricsListen).toEqual({ host: '::1', port: 9153, text: '[::1]:9153' });
    expect(config('127.0.0.1:9153').metricsAllowRemote).toBe(false);
  });

  it('refuses every other address without the opt-in, naming the field and the flag', () => {
    for (const text of ['0.0.0.0:9153', '10.77.0.1:9153', '198.51.100.1:9153', '[::]:9153', '[fe80::1]:9153']) {
      expect(problem(text)).toMatch(/metricsListen: .* is not a loopback address; .*--metrics-allow-remote \(metricsAllowRemote: true\)/);
    }
  });

  it('accepts them with metricsAllowRemote', () => {
    expect(config('0.0.0.0:9153', true).metricsListen?.host).toBe('0.0.0.0');
    expect(config('[::]:9153', true).metricsListen?.host).toBe('::');
  });

  it('refuses what is not ADDRESS:PORT, a port outside 1-65535 and an address that does not parse', () => {
    expect(problem('localhost:9153')).toMatch(/^invalid configuration: metricsListen: expected ADDRESS:PORT/);
    expect(problem('127.0.0.1:70000')).toContain('metricsListen: port 70000 is not in 1-65535');
    expect(problem('127.0.0.1:0')).toContain('metricsListen: port 0 is not in 1-65535');
    expect(problem('300.0.0.1:9153')).toContain('metricsListen: 300.0.0.1 is not an IP address');
    expect(() => resolveConfig({ bridge: 'br0', metricsAllowRemote: 'yes' })).toThrow(/metricsAllowRemote:/);
  });
});

/** A fake `ip` that records every call and answers the show commands from a script. */
function fakeIp(answers: { link?: () => unknown; routes?: unknown[] }, calls: string[]): IpRunner {
  return async (args) => {
    calls.push(args.join(' '));
    if (args.join(' ').startsWith('-j -d addr show')) {
      const link = answers.link?.();
      if (!link) throw new Error('Device does not exist');
      return JSON.stringify([link]);
    }
    if (args.join(' ').startsWith('-6 -j route show')) return JSON.stringify(answers.routes ?? []);
    return '';
  };
}

describe('ensureBridge guards IPv6 before the bridge is up (row 1)', () => {
  const v4 = { family: 'inet', local: '10.77.0.1', prefixlen: 24 };

  it('on a bridge it creates: the guard runs after `link add` and before `link set up`', async () => {
    const calls: string[] = [];
    let exists = false;
    const ip = fakeIp({ link: () => (exists ? { ifname: 'br0', address: '52:54:00:00:00:01', operstate: 'DOWN', addr_info: [] } : undefined) }, calls);
    const wrapped: IpRunner = async (args) => {
      const out = await ip(args);
      if (args[0] === 'link' && args[1] === 'add' && args[2] === 'br0') exists = true;
      return out;
    };
    await ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', logger: silentLogger }, wrapped, async (name) => {
      calls.push(`guard ${name}`);
    });
    const guard = calls.indexOf('guard br0');
    expect(guard).toBeGreaterThan(calls.findIndex((c) => c.startsWith('link add br0 type bridge')));
    expect(guard).toBeLessThan(calls.indexOf('link set br0 up'));
    expect(calls.some((c) => c.startsWith('-6 route del') || c.startsWith('-6 addr del'))).toBe(false);
  });

  it('on an existing bridge: guards, then removes routes and SLAAC addresses learned from RAs, nothing else', async () => {
    const calls: string[] = [];
    const addrs = [
      v4,
      { family: 'inet6', local: '2001:db8:bad:0:5054:ff:fe77:1', prefixlen: 64, scope: 'global', dynamic: true, mngtmpaddr: true },
      { family: 'inet6', local: '2001:db8:77::1', prefixlen: 64, scope: 'global' }, // static: kept
      { family: 'inet6', local: '2001:db8:dhcp::5', prefixlen: 128, scope: 'global', dynamic: true }, // DHCPv6: kept
      { family: 'inet6', local: 'fe80::5054:ff:fe77:1', prefixlen: 64, scope: 'link' },
    ];
    const routes = [
      { dst: '2001:db8:bad::/64', protocol: 'kernel', expires: 86397 },
      { dst: 'fe80::/64', protocol: 'kernel' },
      { dst: '2001:db8:77::/64', protocol: 'kernel' },
      { dst: 'default', gateway: 'fe80::5054:ff:fe77:1001', protocol: 'ra', expires: 1797 },
      { dst: '2001:db8:99::/64', gateway: '2001:db8:77::9', protocol: 'static' },
    ];
    const ip = fakeIp({ link: () => ({ ifname: 'br0', address: '52:54:00:00:00:01', operstate: 'UP', linkinfo: { info_kind: 'bridge' }, addr_info: addrs }), routes }, calls);
    const logger = recordingLogger();
    await ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', logger }, ip, async (name) => {
      calls.push(`guard ${name}`);
    });
    expect(calls.indexOf('guard br0')).toBeLessThan(calls.findIndex((c) => c.startsWith('-6 -j route show')));
    expect(calls.filter((c) => c.startsWith('-6 route del') || c.startsWith('-6 addr del'))).toEqual([
      '-6 route del 2001:db8:bad::/64 dev br0',
      '-6 route del default via fe80::5054:ff:fe77:1001 dev br0',
      '-6 addr del 2001:db8:bad:0:5054:ff:fe77:1/64 dev br0',
    ]);
    expect(logger.messages('warn')).toHaveLength(3);
    expect(calls).not.toContain('link set br0 up');
  });
});

describe('control socket: mode and peer credentials (row 12)', () => {
  let server: ControlServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('allows uid 0 and natd\'s own uid, nobody else, and refuses when the peer is unknown', () => {
    expect(peerAllowed({ pid: 1, uid: 0, gid: 0 }, 1000)).toBe(true);
    expect(peerAllowed({ pid: 1, uid: 1000, gid: 1000 }, 1000)).toBe(true);
    expect(peerAllowed({ pid: 1, uid: 65534, gid: 65534 }, 1000)).toBe(false);
    expect(peerAllowed({ pid: 1, uid: 65534, gid: 65534 }, 0)).toBe(false);
    expect(peerAllowed(undefined, 0)).toBe(false);
  });

  const request = (socketPath: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const conn = net.createConnection(socketPath, () => conn.write('{"command":"ping"}\n'));
      let text = '';
      conn.setEncoding('utf8');
      conn.on('data', (d: string) => (text += d));
      conn.on('close', () => resolve(text));
      conn.on('error', reject);
    });

  async function start(peerOf: PeerLookup): Promise<{ socketPath: string; logger: RecordingLogger }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'natd-control-test-'));
    const socketPath = path.join(dir, 'control.sock');
    const logger = recordingLogger();
    server = new ControlServer(socketPath, { ping: () => 'pong' }, logger, peerOf, 0);
    await server.start();
    return { socketPath, logger };
  }

  it('is 0600 when it appears, with no staging directory left behind', async () => {
    const { socketPath } = await start(() => ({ pid: 1, uid: 0, gid: 0 }));
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(readdirSync(path.dirname(socketPath))).toEqual(['control.sock']);
    expect(JSON.parse(await request(socketPath))).toEqual({ ok: true, result: 'pong' });
  });

  it('refuses a peer that is neither root nor natd: answers with an error, closes, counts and logs it', async () => {
    const { socketPath, logger } = await start(() => ({ pid: 4242, uid: 65534, gid: 65534 }));
    expect(JSON.parse(await request(socketPath))).toMatchObject({ ok: false, code: 'EACCES' });
    await request(socketPath);
    expect(server!.stats()).toMatchObject({ refusedPeers: 2, watchers: 0 });
    expect(logger.messages('limited')[0]).toMatchObject({ msg: 'control socket: refused a peer', uid: 65534, pid: 4242 });
  });

  it('reads real credentials from the kernel (SO_PEERCRED through the addon)', async () => {
    const { socketPath } = await start(peerOfUnixSocket);
    const answer = JSON.parse(await request(socketPath)) as { ok: boolean };
    // the test runs as root or as natd's own uid would: either way the kernel-reported uid is allowed
    expect(answer.ok).toBe(process.getuid?.() === 0);
  });
});
