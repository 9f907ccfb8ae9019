/**
 * A small TFTP read client for the unit tests (RFC 1350 + OACK + windowsize), with hooks to lose ACKs on purpose.
 * The integration tests use the real tftp-hpa client instead.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { decodeTftpPacket, encodeTftpPacket, type TftpPacket } from '../../src/tftp/codec.js';

export interface FetchOptions {
  host: string;
  port: number;
  file: string;
  mode?: 'octet' | 'netascii';
  options?: Record<string, string>;
  /** return false to not send this ACK (block number as sent) */
  sendAck?: (block: number, index: number) => boolean;
  timeoutMs?: number;
}

export interface FetchResult {
  data?: Buffer;
  oack?: Map<string, string>;
  error?: { code: number; message: string };
  /** the port the server answered from */
  serverPort?: number;
  /** DATA packets received, duplicates included */
  dataPackets: number;
}

export async function tftpFetch(o: FetchOptions): Promise<FetchResult> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const chunks: Buffer[] = [];
  let expected = 1;
  let ackIndex = 0;
  let windowSize = 1;
  let actualBlock = 512;
  const result: FetchResult = { dataPackets: 0 };
  const ack = (block: number, port: number) => {
    if (o.sendAck && !o.sendAck(block, ackIndex++)) return;
    socket.send(encodeTftpPacket({ op: 'ack', block }), port, o.host);
  };
  socket.send(encodeTftpPacket({ op: 'rrq', filename: o.file, mode: o.mode ?? 'octet', options: new Map(Object.entries(o.options ?? {})) }), o.port, o.host);
  const done = new Promise<void>((resolve) => {
    let inWindow = 0;
    socket.on('message', (msg, rinfo) => {
      result.serverPort ??= rinfo.port;
      const p: TftpPacket = decodeTftpPacket(msg);
      if (p.op === 'error') {
        result.error = { code: p.code, message: p.message };
        return resolve();
      }
      if (p.op === 'oack') {
        result.oack = p.options;
        actualBlock = Number(p.options.get('blksize') ?? 512);
        windowSize = Number(p.options.get('windowsize') ?? 1);
        return ack(0, rinfo.port);
      }
      if (p.op !== 'data') return;
      result.dataPackets++;
      if (p.block !== (expected & 0xffff)) {
        // out of order (a block was lost): ACK the last in-order block, RFC 7440 §4
        ack((expected - 1) & 0xffff, rinfo.port);
        inWindow = 0;
        return;
      }
      chunks.push(Buffer.from(p.data));
      expected++;
      inWindow++;
      const last = p.data.length < actualBlock;
      if (last || inWindow >= windowSize) {
        inWindow = 0;
        ack(p.block, rinfo.port);
      }
      if (last) {
        result.data = Buffer.concat(chunks);
        resolve();
      }
    });
  });
  const timer = new Promise<void>((resolve) => setTimeout(resolve, o.timeoutMs ?? 20_000).unref());
  await Promise.race([done, timer]);
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the final ACK leave
  socket.close();
  await once(socket, 'close').catch(() => undefined);
  return result;
}
