/** issue 14: DHCPv6 client messages for tests (built with natd's codec, which has its own round-trip tests). */
import { decodeDhcp6, Dhcp6MessageType, encodeDhcp6, type Dhcp6IaNa, type Dhcp6Message } from '../../src/dhcp6/codec.js';
import { duidLl } from '../../src/dhcp6/duid.js';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';

export const T = Dhcp6MessageType;

/** A guest: its DUID (DUID-LL of its MAC unless given) and what it holds. */
export class TestClient6 {
  readonly duid: Uint8Array;
  serverId: Uint8Array | undefined;
  private xid = 0x100;

  constructor(readonly mac: string, duid?: Uint8Array) {
    this.duid = duid ?? duidLl(mac);
  }

  /** A message of `type` from this client, with one IA_NA per iaid (holding `addresses` when given). */
  message(type: number, opts: { iaids?: number[]; addresses?: string[]; serverId?: Uint8Array | null; rapidCommit?: boolean; oro?: number[]; noClientId?: boolean } = {}): Dhcp6Message {
    const iaNa: Dhcp6IaNa[] = (opts.iaids ?? [1]).map((iaid) => ({
      iaid,
      t1: 0,
      t2: 0,
      addresses: (opts.addresses ?? []).map((a) => ({ address: parseIpv6(a)!, preferredLifetime: 0, validLifetime: 0 })),
    }));
    const m: Dhcp6Message = { type, transactionId: this.xid++ & 0xffffff, iaNa, other: [], elapsedTime: 0 };
    if (!opts.noClientId) m.clientId = this.duid;
    const serverId = opts.serverId === null ? undefined : (opts.serverId ?? this.serverId);
    if (serverId) m.serverId = serverId;
    if (opts.rapidCommit) m.rapidCommit = true;
    if (opts.oro) m.oro = opts.oro;
    return m;
  }

  bytes(type: number, opts: Parameters<TestClient6['message']>[1] = {}): Buffer {
    return encodeDhcp6(this.message(type, opts));
  }
}

/** The reply decoded (throws when it does not decode: a test failure). */
export function replyOf(bytes: Buffer | undefined): Dhcp6Message {
  if (!bytes) throw new Error('no reply');
  const d = decodeDhcp6(bytes);
  if (!d.ok) throw new Error(`reply does not decode: ${d.reason}`);
  return d.message;
}

/** The addresses with a non-zero valid lifetime in the reply's IA `iaid`. */
export function liveAddresses(reply: Dhcp6Message, iaid = 1): string[] {
  const ia = reply.iaNa.find((i) => i.iaid === iaid);
  return (ia?.addresses ?? []).filter((a) => a.validLifetime > 0).map((a) => formatIpv6(a.address));
}

export function iaStatus(reply: Dhcp6Message, iaid = 1): number | undefined {
  return reply.iaNa.find((i) => i.iaid === iaid)?.status?.code;
}
