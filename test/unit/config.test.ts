import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';

function problemOf(flags: Record<string, unknown>): string {
  try {
    resolveConfig(flags);
  } catch (err) {
    expect(err).toBeInstanceOf(NatdError);
    expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('config validation covers what the daemon would reject later', () => {
  it('a port forward that does not parse is a config error naming the field and the spec', () => {
    expect(problemOf({ bridge: 'virbr10', forwards: ['junk'] })).toMatch(/forwards\.0: port forward "junk"/);
  });

  it('the second bad forward is named by its index, with every problem reported together', () => {
    const message = problemOf({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['tcp:2222=web:22', 'tcp:99999=web:22'], dhcpRange: '10.20.0.10-10.20.0.20' });
    expect(message).toMatch(/forwards\.1: /);
    expect(message).toMatch(/dhcpRange/);
  });

  it('a forward to a guest address outside the given subnet is refused', () => {
    expect(problemOf({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['80=10.20.0.5:80'] })).toMatch(/forwards\.0: .*not inside subnet/);
  });

  it('valid forwards (by address and by reservation name) pass', () => {
    const config = resolveConfig({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['tcp:2222=web:22', 'udp:198.51.100.1:5353=10.10.0.5:53'] });
    expect(config.forwards).toEqual(['tcp:2222=web:22', 'udp:198.51.100.1:5353=10.10.0.5:53']);
  });

  it('guest-to-host entries parse to protocol and port range; junk names the field and index', () => {
    const config = resolveConfig({ bridge: 'virbr10', guestToHost: ['2049', 'udp:5000-5010'] });
    expect(config.guestToHost).toEqual([{ protocol: 'tcp', ports: [2049, 2049] }, { protocol: 'udp', ports: [5000, 5010] }]);
    expect(resolveConfig({ bridge: 'virbr10', guestToHost: ['all'] }).guestToHost).toBe('all');
    expect(problemOf({ bridge: 'virbr10', guestToHost: ['tcp:22', 'sctp:9'] })).toMatch(/guestToHost\.1: .*"sctp:9"/);
    expect(problemOf({ bridge: 'virbr10', guestToHost: ['all', '22'] })).toMatch(/guestToHost: 'all' cannot be combined/);
  });
});

describe('dhcpProbeTimeoutMs (issue 13)', () => {
  it('defaults to 250 ms and takes the flag as a number', () => {
    expect(resolveConfig({ bridge: 'virbr10' }).dhcpProbeTimeoutMs).toBe(250);
    expect(resolveConfig({ bridge: 'virbr10', dhcpProbeTimeoutMs: 100 }).dhcpProbeTimeoutMs).toBe(100);
  });

  it('refuses a wait too short to hear a busy guest or too long for a client, naming the field', () => {
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 5 })).toMatch(/dhcpProbeTimeoutMs/);
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 60_000 })).toMatch(/dhcpProbeTimeoutMs/);
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 'soon' })).toMatch(/dhcpProbeTimeoutMs/);
  });
});
