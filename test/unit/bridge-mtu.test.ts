/** Issue 16: --mtu sets the bridge's MTU (only when it differs), as libvirt's <mtu size=…/> does. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { ensureBridge } from '../../src/net/bridge.js';
import type { IpRunner } from '../../src/net/ip-command.js';

function fakeIp(mtu: number, calls: string[]): IpRunner {
  return async (args) => {
    calls.push(args.join(' '));
    if (args.join(' ').startsWith('-j -d addr show dev br0')) {
      return JSON.stringify([{ ifname: 'br0', mtu, address: '52:54:00:00:00:01', operstate: 'UP', linkinfo: { info_kind: 'bridge' },
        addr_info: [{ family: 'inet', local: '10.77.0.1', prefixlen: 24 }] }]);
    }
    return args[0] === '-6' ? '[]' : '';
  };
}

describe('ensureBridge with mtu', () => {
  it('sets the MTU when it differs, and leaves a bridge that has it alone', async () => {
    const calls: string[] = [];
    await ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', mtu: 1400, logger: silentLogger }, fakeIp(1500, calls), async () => undefined);
    expect(calls).toContain('link set br0 mtu 1400');
    const again: string[] = [];
    await ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', mtu: 1400, logger: silentLogger }, fakeIp(1400, again), async () => undefined);
    expect(again.some((c) => c.includes('mtu'))).toBe(false);
    const none: string[] = [];
    await ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', logger: silentLogger }, fakeIp(1500, none), async () => undefined);
    expect(none.some((c) => c.includes('mtu'))).toBe(false);
  });

  it('a refused MTU is a bridge error naming the bridge and the value', async () => {
    const ip: IpRunner = async (args) => {
      if (args.includes('mtu')) throw new Error('RTNETLINK answers: Invalid argument');
      return fakeIp(1500, [])(args);
    };
    await expect(ensureBridge({ name: 'br0', defaultCidr: '10.77.0.1/24', mtu: 65000, logger: silentLogger }, ip, async () => undefined))
      .rejects.toThrow(/cannot set the MTU of br0 to 65000/);
  });
});
