import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { dhcp6Plan, dhcp6Reservations, startDhcp6 } from '../../src/daemon/dhcp6.js';
import { servedIpv6 } from '../../src/ipv6/settings.js';
import type { Lease6Change } from '../../src/dhcp6/types.js';
import { formatPrometheus } from '../../src/daemon/metrics.js';
import { TestClient6, T, replyOf, liveAddresses } from '../support/dhcp6-client.js';
import { recordingLogger } from '../support/recording-logger.js';

function fakeSocket() {
  const emitter = new EventEmitter();
  const sent: { data: Buffer; address: string; port: number }[] = [];
  const socket = Object.assign(emitter, {
    send: (data: Buffer, port: number, address: string, cb: (e: Error | null) => void) => (sent.push({ data, address, port }), cb(null)),
    close: (cb: () => void) => cb(),
  }) as unknown as dgram.Socket;
  return { socket, sent, emit: (msg: Buffer, address: string) => emitter.emit('message', msg, { address, port: 546 }) };
}

const flush = () => new Promise((r) => setTimeout(r, 5));

describe('daemon DHCPv6 step (issue 14)', () => {
  const base = { bridge: 'br0', subnet6: 'fd00:14::1/64', stateDir: mkdtempSync(path.join(tmpdir(), 'natd-d6-')) };

  it('mode follows the range: stateless without, stateful with; off without IPv6', () => {
    expect(dhcp6Plan(resolveConfig({ bridge: 'br0' }))).toBeUndefined();
    expect(dhcp6Plan(resolveConfig(base))?.mode).toBe('stateless');
    expect(dhcp6Plan(resolveConfig({ ...base, dhcp6Range: 'fd00:14::100-fd00:14::1ff' }))?.mode).toBe('stateful');
  });

  it('serves a Solicit/Request through the journal, lists the lease (DUID, IAID), and reload swaps reservations', async () => {
    const config = resolveConfig({ ...base, dhcp6Range: 'fd00:14::100-fd00:14::1ff', dns: true });
    const served = servedIpv6(config.ipv6!, 'br0', undefined);
    const journal: Lease6Change[] = [];
    const changes: Lease6Change[] = [];
    const { socket, sent, emit } = fakeSocket();
    const service = await startDhcp6(config, dhcp6Plan(config)!, served, {
      logger: recordingLogger(), now: () => 1_000_000, bridgeMac: '52:54:00:00:00:01', openSocket: async () => socket,
      store: { commit: async (c) => void journal.push(...c), load6: () => ({ leases: [], declined: [] }) },
      onChanges: (c) => changes.push(...c),
    });
    const client = new TestClient6('52:54:00:aa:bb:cc');
    emit(client.bytes(T.SOLICIT), 'fe80::5054:ff:feaa:bbcc%br0');
    await flush();
    const advertise = replyOf(sent[0]!.data);
    client.serverId = advertise.serverId;
    expect(sent[0]!.address).toBe('fe80::5054:ff:feaa:bbcc%br0');
    emit(client.bytes(T.REQUEST, { addresses: liveAddresses(advertise) }), 'fe80::5054:ff:feaa:bbcc%br0');
    await flush();
    const [address] = liveAddresses(replyOf(sent[1]!.data));
    expect(journal).toMatchObject([{ kind: 'bind6', lease: { address, iaid: 1 } }]);
    expect(changes).toEqual(journal);
    expect(service.rows(1_000_000)).toEqual([{ address, mac: '52:54:00:aa:bb:cc', hostname: undefined, expiresAt: expect.any(Number), clientId: '00:03:00:01:52:54:00:aa:bb:cc', iaid: 1 }]);
    const status = service.status();
    expect(status).toMatchObject({ mode: 'stateful', leases: 1, receivedByType: { solicit: 1, request: 1 }, sent: { advertise: 1, reply: 1 } });
    const text = formatPrometheus({ bridge: 'br0', dhcp: { received: {}, sent: {}, leasesActive: 0, freeAddresses: 0 },
      dhcp6: { received: status.receivedByType, sent: status.sent, dropped: status.dropped, outcomes: status.outcomes, leasesActive: status.leases, declined: status.declined, sendFailures: status.sendFailures } });
    expect(text).toContain('natd_dhcp6_received_total{bridge="br0",type="solicit"} 1');
    expect(text).toContain('natd_dhcp6_leases_active{bridge="br0"} 1');

    // reload: a reservation for this client takes effect (its next Solicit is offered the reserved address)
    const reloaded = resolveConfig({ ...base, dhcp6Range: 'fd00:14::100-fd00:14::1ff', dhcpHost: ['id:00:03:00:01:52:54:00:aa:bb:cc,[fd00:14::50]'] });
    service.setReservations(dhcp6Reservations(reloaded, served));
    expect(service.status().reservations).toBe(1);
    emit(client.bytes(T.SOLICIT, { serverId: null }), 'fe80::5054:ff:feaa:bbcc%br0');
    await flush();
    expect(liveAddresses(replyOf(sent[2]!.data))).toContain('fd00:14::50');
    await service.close();
  });

  it('a reservation outside the served /64 is a config error naming the field, before anything changes', () => {
    const config = resolveConfig({ bridge: 'br0', ipv6: 'auto', dhcpHost: ['id:00:03:00:01:52:54:00:aa:bb:cc,[fd99::50]'] });
    const served = servedIpv6(config.ipv6!, 'br0', 'machine-a');
    expect(() => dhcp6Reservations(config, served)).toThrow(/dhcpHost/);
  });
});
