/** issue 14: the RA server's timers (RFC 4861 6.2.4-6.2.6), its rate limits and the final advertisement. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';
import { parseRouterAdvertisement } from '../../src/ipv6/ra.js';
import { MAX_SEND_RETRIES, RaServer } from '../../src/ipv6/ra-server.js';
import { advertisementFor } from '../../src/ipv6/service.js';
import { servedIpv6 } from '../../src/ipv6/settings.js';
import { recordingLogger } from '../support/recording-logger.js';

const served = servedIpv6({ mode: 'subnet', cidr: 'fd00:10:10::1/64' }, 'br0', undefined);
const guest = parseIpv6('fe80::5054:ff:fe00:1')!;
const rs = Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]);

function harness(random = 0.5, failSend: boolean | (() => boolean) = false) {
  const sent: { to: string; at: number; lifetime: number }[] = [];
  let deliver: (data: Buffer, source: Buffer, hop: number) => void = () => {};
  let closed = false;
  const logger = recordingLogger();
  const server = new RaServer({
    open: (cb) => {
      deliver = cb;
      return {
        send: (to, msg) => {
          if (failSend === true || (typeof failSend === 'function' && failSend())) throw new Error('EINVAL');
          sent.push({ to: formatIpv6(to), at: Date.now(), lifetime: parseRouterAdvertisement(msg)!.routerLifetime });
        },
        close: () => void (closed = true),
      };
    },
    advertisement: (final) => advertisementFor(served, { mac: '52:54:00:aa:bb:cc', mtu: 1500, domains: [] }, final),
    logger,
    random: () => random,
  });
  return { server, sent, logger, rs: (source: Uint8Array, hop = 255, data = rs) => deliver(data, Buffer.from(source), hop), isClosed: () => closed };
}

describe('RaServer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('sends the first three unsolicited RAs at most 16 s apart, then every 200-600 s', () => {
    const h = harness(0.5);
    h.server.start();
    vi.advanceTimersByTime(16_000 * 2 + 400_000 + 1);
    expect(h.sent.map((s) => s.at - 1_000_000)).toEqual([0, 16_000, 32_000, 432_000]);
    expect(h.sent.every((s) => s.to === 'ff02::1' && s.lifetime === 1800)).toBe(true);
    h.server.close();
  });

  it('answers a solicitation within 0.5 s, unicast, at most once per 3 s per guest', () => {
    const h = harness(0.99);
    h.server.start();
    h.sent.length = 0;
    h.rs(guest);
    h.rs(guest);
    vi.advanceTimersByTime(500);
    expect(h.sent).toEqual([{ to: 'fe80::5054:ff:fe00:1', at: 1_000_495, lifetime: 1800 }]);
    vi.advanceTimersByTime(3_000);
    h.rs(guest);
    vi.advanceTimersByTime(500);
    expect(h.sent).toHaveLength(2);
    expect(h.server.stats()).toMatchObject({ solicitationsReceived: 3, solicitationsRateLimited: 1, solicitationsInvalid: 0 });
    h.server.close();
  });

  it('answers solicitations from :: with one shared multicast RA, no sooner than 3 s after the last', () => {
    const h = harness(0);
    h.server.start(); // multicast at t=0
    for (let i = 0; i < 50; i++) h.rs(new Uint8Array(16));
    vi.advanceTimersByTime(2_999);
    expect(h.sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(h.sent.map((s) => s.to)).toEqual(['ff02::1', 'ff02::1']);
    h.server.close();
  });

  it('counts and drops invalid solicitations, bounds a flood, and never throws', () => {
    const h = harness(0.5);
    h.server.start();
    h.rs(guest, 64);
    h.rs(guest, 255, Buffer.from([133, 0, 0]));
    for (let i = 0; i < 500; i++) h.rs(Uint8Array.from([0xfe, 0x80, ...new Array<number>(12).fill(0), i >> 8, i & 0xff]));
    vi.advanceTimersByTime(600);
    const stats = h.server.stats();
    expect(stats.solicitationsInvalid).toBe(2);
    expect(stats.advertisementsSent).toBe(1 + 64); // the unsolicited one + the pending-answer bound
    expect(stats.solicitationsRateLimited).toBe(500 - 64);
    h.server.close();
  });

  it('sends router lifetime 0 on close, stops its timers, closes the socket; send failures are counted', () => {
    const h = harness(0.5);
    h.server.start();
    h.server.close();
    h.server.close();
    expect(h.sent.map((s) => s.lifetime)).toEqual([1800, 0]);
    expect(h.isClosed()).toBe(true);
    vi.advanceTimersByTime(1_000_000);
    expect(h.sent).toHaveLength(2);

    const failing = harness(0.5, true);
    failing.server.start();
    expect(failing.server.stats()).toMatchObject({ advertisementsSent: 0, sendFailures: 1 });
    failing.server.close();
  });
});

describe('RaServer: failed sends (the bridge\'s link-local address still tentative)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('a failed send is followed by a multicast RA 3 s later, and so on until one goes out', () => {
    let failing = true;
    const h = harness(0.5, () => failing);
    h.server.start(); // the first unsolicited RA fails
    h.rs(guest); // and so does the answer to a guest's solicitation
    vi.advanceTimersByTime(500);
    expect(h.server.stats()).toMatchObject({ advertisementsSent: 0, sendFailures: 2 });
    vi.advanceTimersByTime(2_500); // DAD still running: the retry 3 s after the first failure fails too
    expect(h.server.stats()).toMatchObject({ advertisementsSent: 0, sendFailures: 3 });
    failing = false; // the link-local address is ready
    vi.advanceTimersByTime(3_000);
    expect(h.sent).toEqual([{ to: 'ff02::1', at: 1_006_000, lifetime: 1800 }]);
    // then only the regular schedule (the second initial RA, 16 s after the first)
    vi.advanceTimersByTime(16_000 - 6_000);
    expect(h.sent.map((x) => x.at - 1_000_000)).toEqual([6_000, 16_000]);
    expect(h.logger.messages('limited').map((m) => m.msg)).toContain('cannot send a router advertisement');
    h.server.close();
  });

  it('retries at most MAX_SEND_RETRIES times in a row (a bridge that never gets a link-local address), then keeps the regular schedule', () => {
    const h = harness(0.5, true);
    h.server.start();
    vi.advanceTimersByTime(15_999);
    expect(h.server.stats().sendFailures).toBe(1 + 5); // every 3 s
    vi.advanceTimersByTime(10 * 60_000);
    const failures = h.server.stats().sendFailures;
    expect(failures).toBeLessThanOrEqual(1 + MAX_SEND_RETRIES + 3); // the retries, and the two unsolicited RAs due
    vi.advanceTimersByTime(10 * 60_000);
    expect(h.server.stats().sendFailures - failures).toBeLessThanOrEqual(3); // no retries left: 200-600 s apart
    h.server.close();
  });
});

describe('advertisementFor', () => {
  it('says: the /64 for SLAAC, M=O=0, the MTU and MAC; RDNSS/DNSSL only with a DNS server on IPv6', () => {
    const ra = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:aa:bb:cc', mtu: 1450, domains: ['vm'] }, false))!;
    expect(ra).toMatchObject({ managed: false, other: false, routerLifetime: 1800, mtu: 1450, curHopLimit: 64 });
    expect(ra.prefixes).toEqual([{ network: served.network, length: 64, validLifetime: 86400, preferredLifetime: 14400, onLink: true, autonomous: true }]);
    expect(ra.rdnss).toBeUndefined();
    const withDns = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:aa:bb:cc', mtu: 1450, domains: ['vm'], dnsServer: served.gateway }, true))!;
    expect(withDns).toMatchObject({ routerLifetime: 0, rdnss: { servers: [served.gateway], lifetime: 0 }, dnssl: { domains: ['vm'], lifetime: 0 } });
  });
  it('issue 14: the flags follow DHCPv6 as dnsmasq\'s do: stateless O=1 with SLAAC, stateful M=O=1 without SLAAC', () => {
    const flags = (dhcp6?: 'stateful' | 'stateless') => {
      const ra = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:aa:bb:cc', mtu: 1500, domains: [], ...(dhcp6 ? { dhcp6 } : {}) }, false))!;
      return { managed: ra.managed, other: ra.other, autonomous: ra.prefixes[0]!.autonomous, onLink: ra.prefixes[0]!.onLink };
    };
    expect(flags()).toEqual({ managed: false, other: false, autonomous: true, onLink: true });
    expect(flags('stateless')).toEqual({ managed: false, other: true, autonomous: true, onLink: true });
    expect(flags('stateful')).toEqual({ managed: true, other: true, autonomous: false, onLink: true });
  });
});

describe('startIpv6 (the daemon step)', () => {
  it('is off without ipv6/subnet6; with them: host step first, then RAs; close sends router lifetime 0', async () => {
    const { resolveConfig } = await import('../../src/config.js');
    const { startIpv6 } = await import('../../src/ipv6/service.js');
    const events: string[] = [];
    const deps = {
      logger: recordingLogger(),
      ipv6Host: async (bridge: string, s: { gatewayCidr: string }) => void events.push(`host ${bridge} ${s.gatewayCidr}`),
      machineId: () => 'machine-a',
      openRaSocket: () => ({
        send: (to: Uint8Array, msg: Buffer) => void events.push(`ra to ${formatIpv6(to)} lifetime ${parseRouterAdvertisement(msg)!.routerLifetime} mtu ${parseRouterAdvertisement(msg)!.mtu}`),
        close: () => void events.push('socket closed'),
      }),
      linkMtu: () => 9000,
      bridgeMac: '52:54:00:77:00:01',
    };
    expect(await startIpv6(resolveConfig({ bridge: 'br0' }), deps)).toBeUndefined();
    expect(events).toEqual([]);
    const service = (await startIpv6(resolveConfig({ bridge: 'br0', subnet6: 'fd00:10:10::1/64' }), deps))!;
    expect(service.status()).toMatchObject({ gateway: 'fd00:10:10::1/64', prefix: 'fd00:10:10::/64', source: 'subnet6' });
    await service.close();
    expect(events).toEqual(['host br0 fd00:10:10::1/64', 'ra to ff02::1 lifetime 1800 mtu 9000', 'ra to ff02::1 lifetime 0 mtu 9000', 'socket closed']);
  });
});

describe('RA guard', () => {
  it('drops RAs and DHCPv6 server messages bridged between ports of this bridge only', async () => {
    const { buildRaGuard } = await import('../../src/ipv6/ra-guard.js');
    const text = JSON.stringify(buildRaGuard('virbr7'));
    expect(text).toContain('"name":"natd-virbr7-raguard"');
    expect(text).toContain('"hook":"forward"');
    expect(text.match(/\{"meta":\{"key":"ibrname"\}\},"right":"virbr7"/g)).toHaveLength(2);
    expect(text).toContain('"right":"nd-router-advert"}},{"drop":null}');
    expect(text).toContain('"right":547');
  });

  it('is best effort: a kernel without bridge meta support gets a warning, natd still serves', async () => {
    const { resolveConfig } = await import('../../src/config.js');
    const { startIpv6 } = await import('../../src/ipv6/service.js');
    const logger = recordingLogger();
    let removed = false;
    const service = (await startIpv6(resolveConfig({ bridge: 'br0', ipv6: 'auto' }), {
      logger, ipv6Host: async () => undefined, machineId: () => undefined, linkMtu: () => undefined, bridgeMac: '52:54:00:77:00:01',
      openRaSocket: () => ({ send: () => undefined, close: () => undefined }),
      raGuard: { apply: () => Promise.reject(new Error('Operation not supported')), remove: async () => void (removed = true) },
    }))!;
    expect(service.status()).toMatchObject({ raGuard: false, source: 'auto' });
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.startsWith('no RA guard'))).toBe(true);
    await service.close();
    expect(removed).toBe(false);
  });
});
