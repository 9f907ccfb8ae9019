/** The one set of reservation rules every source uses (src/dhcp/reservation-rules.ts). */
import { describe, expect, it } from 'vitest';
import { describeAddressProblem, reservationClash, reservedAddressProblem, reservedNameProblem } from '../../src/dhcp/reservation-rules.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';

const ip = (text: string): number => parseIpv4(text)!;
const subnet = makeSubnet(ip('10.77.0.1'), 24);

describe('reservation rules', () => {
  it('a guest address is inside the subnet and not its network, broadcast or gateway address', () => {
    expect(reservedAddressProblem(ip('10.77.0.50'), subnet, ip('10.77.0.1'))).toBeUndefined();
    expect(reservedAddressProblem(ip('10.78.0.50'), subnet, ip('10.77.0.1'))).toBe('outside');
    expect(reservedAddressProblem(ip('10.77.0.0'), subnet)).toBe('network');
    expect(reservedAddressProblem(ip('10.77.0.255'), subnet)).toBe('broadcast');
    expect(reservedAddressProblem(ip('10.77.0.1'), subnet, ip('10.77.0.1'))).toBe('gateway');
    expect(reservedAddressProblem(ip('10.77.0.1'), subnet)).toBeUndefined(); // gateway unknown (config time)
    expect(describeAddressProblem('outside', ip('10.78.0.50'), subnet)).toBe('10.78.0.50 is outside the subnet 10.77.0.0/24');
  });

  it('names on the deny list are refused', () => {
    expect(reservedNameProblem('web', 'vm')).toBeUndefined();
    expect(reservedNameProblem('wpad', 'vm')).toBeDefined();
  });

  it('the first definition wins: same MAC or address always clashes, the same name only when asked', () => {
    const earlier = [{ mac: '52:54:00:00:00:01', address: ip('10.77.0.10'), hostname: 'web' }];
    expect(reservationClash(earlier, { mac: '52:54:00:00:00:01', address: ip('10.77.0.11') })).toBe(earlier[0]);
    expect(reservationClash(earlier, { mac: '52:54:00:00:00:02', address: ip('10.77.0.10') })).toBe(earlier[0]);
    const sameName = { mac: '52:54:00:00:00:02', address: ip('10.77.0.11'), hostname: 'web' };
    expect(reservationClash(earlier, sameName)).toBeUndefined();
    expect(reservationClash(earlier, sameName, { byName: true })).toBe(earlier[0]);
  });
});
