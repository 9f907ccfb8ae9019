/** Types of dhcp-clients.mjs (plain JS so namespaces run it without a build step). */
import type { Socket } from 'node:dgram';
import type { DhcpPacket } from '../../src/dhcp/types.js';

export const OPT: { HOSTNAME: 12; REQUESTED: 50; TYPE: 53; SERVER_ID: 54; PRL: 55 };
export const TYPE: { DISCOVER: 1; OFFER: 2; REQUEST: 3; DECLINE: 4; ACK: 5; NAK: 6; INFORM: 8 };
export const BROADCAST_FLAG: number;
export const DEFAULT_PRL: Uint8Array;

export function ipText(n: number): string;
export function ipNumber(text: string): number;
export function macText(chaddr: Uint8Array): string;

export interface ClientPacketSpec {
  xid: number;
  chaddr: Uint8Array;
  fields?: Partial<DhcpPacket>;
  options?: [number, Uint8Array][];
  prl?: Uint8Array;
}
export function clientPacket(type: number, spec: ClientPacketSpec): DhcpPacket;
export function encodeClientPacket(type: number, spec: ClientPacketSpec): Buffer;
export function decodeReply(msg: Buffer): { packet: DhcpPacket; type: number | undefined; serverId: Uint8Array | undefined } | undefined;
export function openClientSocket(port?: number): Promise<Socket>;

export type ClientState = 'idle' | 'selecting' | 'requesting' | 'bound' | 'rebooting';

export interface SimulatedClient {
  index: number;
  chaddr: Uint8Array;
  /** aa:bb:cc:dd:ee:ff */
  mac: string;
  xid: number;
  state: ClientState;
  offered: number;
  serverId: Uint8Array | undefined;
  address: number;
  lastSent: Buffer | undefined;
}

export interface DhcpClientHooks {
  /** an OFFER to a selecting client; return false to not REQUEST it */
  offer?(client: SimulatedClient, packet: DhcpPacket): boolean | void;
  ack?(client: SimulatedClient, packet: DhcpPacket): void;
  nak?(client: SimulatedClient, packet: DhcpPacket): void;
}

export interface DhcpClientsOptions {
  serverPort?: number;
  prl?: Uint8Array;
  /** option 12 in every message, when it returns a name */
  hostname?: (client: SimulatedClient) => string | undefined;
  hooks?: DhcpClientHooks;
}

export class DhcpClients {
  constructor(socket: Socket, options?: DhcpClientsOptions);
  sendErrors: number;
  add(index: number, chaddr: Uint8Array): SimulatedClient;
  discover(client: SimulatedClient): void;
  request(client: SimulatedClient): void;
  reboot(client: SimulatedClient): void;
  resend(client: SimulatedClient): void;
  forget(client: SimulatedClient): void;
}
