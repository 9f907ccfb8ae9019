/**
 * The DDNS client against a hostile "server" on loopback: what it answers is network input. Garbage, answers to
 * other messages, unsigned answers and forged signatures are dropped and counted; only the signed answer counts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { UdpDdnsClient } from '../../src/ddns/client.js';
import type { TsigKey } from '../../src/ddns/key-file.js';
import { encodeUpdate, OPCODE_UPDATE, parseMessage, Rcode } from '../../src/ddns/message.js';
import { findTsig, signResponse, verifyRequest } from '../../src/ddns/tsig.js';

const key: TsigKey = { name: 'natd-ddns', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 3) };
const NOW = 1_800_000_000;
const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A server that answers every request with `replies(request)`, in order. */
async function server(replies: (request: Buffer) => Buffer[]): Promise<{ port: number; requests: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  const requests: Buffer[] = [];
  socket.on('message', (msg, rinfo) => {
    requests.push(msg);
    for (const reply of replies(msg)) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: (socket.address() as AddressInfo).port, requests };
}

function answerTo(request: Buffer, rcode: number, signingKey: TsigKey = key, id?: number): Buffer {
  const tsig = findTsig(request, parseMessage(request))!;
  const body = encodeUpdate(id ?? request.readUInt16BE(0), 'lab.example', [], []);
  body.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11) | rcode, 2);
  return signResponse(body, signingKey, tsig.mac, NOW).message;
}

describe('UdpDdnsClient against a hostile server', () => {
  it('drops garbage, other ids, unsigned and forged answers, and takes the signed one', async () => {
    const srv = await server((req) => {
      const unsigned = encodeUpdate(req.readUInt16BE(0), 'lab.example', [], []);
      unsigned.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11), 2);
      return [
        Buffer.from('not dns at all'),
        answerTo(req, Rcode.NOERROR, key, (req.readUInt16BE(0) + 1) & 0xffff),
        unsigned,
        answerTo(req, Rcode.NOERROR, { ...key, secret: Buffer.alloc(32, 4) }),
        answerTo(req, Rcode.YXDOMAIN),
      ];
    });
    const client = new UdpDdnsClient({ server: { host: '127.0.0.1', port: srv.port }, key, nowSeconds: () => NOW, timeoutMs: 2000 });
    const result = await client.exchange(encodeUpdate(0, 'lab.example', [], []));
    expect(result).toEqual({ ok: true, rcode: Rcode.YXDOMAIN });
    expect(client.dropped).toBe(4);
    expect(verifyRequest(srv.requests[0]!, parseMessage(srv.requests[0]!), key)).toBe(true);
  });

  it('times out when only forgeries come, saying what was dropped', async () => {
    const srv = await server((req) => [answerTo(req, Rcode.NOERROR, { ...key, secret: Buffer.alloc(32, 4) })]);
    // 2 s: the forgery must arrive (and be dropped) before the time-out for the message to name it; 300 ms was within
    // reach of a loaded machine's pause
    const client = new UdpDdnsClient({ server: { host: '127.0.0.1', port: srv.port }, key, nowSeconds: () => NOW, timeoutMs: 2000 });
    const result = await client.exchange(encodeUpdate(0, 'lab.example', [], []));
    expect(result).toMatchObject({ ok: false, kind: 'network' });
    expect(!result.ok && result.message).toMatch(/no answer from 127\.0\.0\.1#\d+ in 2000 ms \(dropped: an answer with a bad TSIG signature\)/);
  });

  it('reports a rejected key (unsigned BADSIG answer) as an auth failure', async () => {
    const srv = await server((req) => {
      const body = encodeUpdate(req.readUInt16BE(0), 'lab.example', [], []);
      body.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11) | Rcode.NOTAUTH, 2);
      return [signResponse(body, key, Buffer.alloc(0), NOW, Rcode.BADSIG).message];
    });
    const client = new UdpDdnsClient({ server: { host: '127.0.0.1', port: srv.port }, key, nowSeconds: () => NOW });
    const result = await client.exchange(encodeUpdate(0, 'lab.example', [], []));
    expect(result).toMatchObject({ ok: false, kind: 'auth' });
    expect(!result.ok && result.message).toMatch(/rejected natd's TSIG key "natd-ddns": NOTAUTH\/BADSIG/);
  });

  it('reports a closed port at once (ICMP unreachable), not after the timeout', async () => {
    const srv = await server(() => []);
    const port = srv.port;
    sockets.splice(0).forEach((s) => s.close());
    const client = new UdpDdnsClient({ server: { host: '127.0.0.1', port }, key, timeoutMs: 5000 });
    const started = Date.now();
    const result = await client.exchange(encodeUpdate(0, 'lab.example', [], []));
    expect(result).toMatchObject({ ok: false, kind: 'network' });
    expect(Date.now() - started).toBeLessThan(4000);
  });
});
