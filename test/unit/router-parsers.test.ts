/**
 * The router's head parsers one case at a time: the ClientHello's SNI (from a real Node client's ClientHello and from
 * built ones, whole, cut into records, cut at every byte), ECH, and the HTTP/1.x Host rules; PROXY header encoding.
 */
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from '../../src/router/client-hello.js';
import { parseHttpHead } from '../../src/router/http-head.js';
import { decodeProxyV2, encodeProxyV1, encodeProxyV2, ipv6Bytes } from '../../src/router/proxy-protocol.js';
import { buildClientHelloMessage, toRecords } from '../support/tls-records.js';

/** What node's TLS client sends first for a server name: captured from a plain TCP server. */
async function realClientHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (parseClientHello(all).state !== 'need-more') {
          resolve(all);
          socket.destroy();
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

describe('parseClientHello', () => {
  it("reads the SNI of node's own ClientHello, lower-cased", async () => {
    const hello = await realClientHello('App.Example.COM');
    const result = parseClientHello(hello);
    expect(result).toEqual({ state: 'done', serverName: 'app.example.com', ech: false, length: hello.length });
  });

  it('answers need-more for every strict prefix and the name once whole', () => {
    const hello = toRecords(buildClientHelloMessage({ serverName: 'a.test' }));
    for (let n = 0; n < hello.length; n++) expect(parseClientHello(hello.subarray(0, n)).state).toBe('need-more');
    expect(parseClientHello(hello)).toMatchObject({ state: 'done', serverName: 'a.test' });
  });

  it('reassembles a ClientHello cut into many records, even inside its 4-byte header', () => {
    const message = buildClientHelloMessage({ serverName: 'split.example.net', padding: 3000 });
    for (const cuts of [[1], [2, 1], [3, 5, 7], [100, 100, 100], Array<number>(200).fill(1), [message.length - 1]]) {
      const records = toRecords(message, cuts);
      expect(parseClientHello(records)).toEqual({ state: 'done', serverName: 'split.example.net', ech: false, length: records.length });
      expect(parseClientHello(records.subarray(0, records.length - 1)).state).toBe('need-more');
    }
  });

  it('reports no name without SNI, and the public name with ECH', () => {
    const noSni = toRecords(buildClientHelloMessage({}));
    expect(parseClientHello(noSni)).toEqual({ state: 'done', ech: false, length: noSni.length });
    expect(parseClientHello(toRecords(buildClientHelloMessage({ ech: true, serverName: 'public.example' })))).toMatchObject({
      state: 'done',
      serverName: 'public.example',
      ech: true,
    });
    const echOnly = parseClientHello(toRecords(buildClientHelloMessage({ ech: true })));
    expect(echOnly).toMatchObject({ state: 'done', ech: true });
    expect(echOnly.state === 'done' ? echOnly.serverName : 'x').toBeUndefined();
  });

  it('strips one trailing dot and rejects names that are not host names', () => {
    expect(parseClientHello(toRecords(buildClientHelloMessage({ serverName: 'a.test.' })))).toMatchObject({ serverName: 'a.test' });
    for (const bad of ['a b.test', 'a..test', '.a.test', 'ä.test', 'x'.repeat(254), 'a\x00.test']) {
      expect(parseClientHello(toRecords(buildClientHelloMessage({ serverName: bad }))).state).toBe('invalid');
    }
  });

  it('rejects what is not a ClientHello', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toMatchObject({ state: 'invalid' });
    const serverHello = toRecords(buildClientHelloMessage({ serverName: 'a.test' }));
    serverHello[5] = 2;
    expect(parseClientHello(serverHello)).toMatchObject({ state: 'invalid' });
    const alertBetween = toRecords(buildClientHelloMessage({ serverName: 'a.test' }), [10]);
    expect(alertBetween[15]).toBe(22); // the second record's type
    alertBetween[15] = 21; // an alert record in the middle of the ClientHello
    expect(parseClientHello(alertBetween)).toEqual({ state: 'invalid', reason: 'record interleaved in ClientHello' });
    const zeroRecord = Buffer.from([22, 3, 1, 0, 0]);
    expect(parseClientHello(zeroRecord)).toMatchObject({ state: 'invalid' });
  });
});

describe('parseHttpHead', () => {
  const head = (s: string) => parseHttpHead(Buffer.from(s, 'latin1'));

  it('finds Host case-insensitively, without port or trailing dot', () => {
    expect(head('GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT: App.Test.:8080\r\n\r\n')).toEqual({
      state: 'done',
      host: 'app.test',
      headLength: 55,
      method: 'GET',
      version: '1.1',
    });
    expect(head('GET / HTTP/1.1\nHost: [2001:DB8::1]:80\n\n')).toMatchObject({ state: 'done', host: '[2001:db8::1]' });
  });

  it('leaves the body out of headLength', () => {
    const text = 'POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nbody';
    expect(head(text)).toMatchObject({ state: 'done', headLength: text.length - 4 });
  });

  it('rejects duplicate Host, missing Host on 1.1, folding, space before colon (400), HTTP/2 (505)', () => {
    expect(head('GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n')).toMatchObject({ state: 'invalid', status: 400 });
    expect(head('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n')).toMatchObject({ state: 'invalid', status: 400 });
    expect(head('GET / HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n')).toMatchObject({ state: 'invalid' });
    expect(head('GET / HTTP/1.1\r\nHost : a.test\r\n\r\n')).toMatchObject({ state: 'invalid' });
    expect(head('GET / HTTP/1.1\r\nHost: a.test\rX\r\n\r\n')).toMatchObject({ state: 'invalid' });
    expect(head('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toMatchObject({ state: 'invalid', status: 505 });
    expect(head('GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n')).toMatchObject({ state: 'invalid' });
  });

  it('HTTP/1.0 may go without Host; an absolute-form target names the host', () => {
    expect(head('GET / HTTP/1.0\r\n\r\n')).toEqual({ state: 'done', headLength: 18, method: 'GET', version: '1.0' });
    expect(head('GET http://B.test:81/x HTTP/1.1\r\nHost: b.test\r\n\r\n')).toMatchObject({ state: 'done', host: 'b.test' });
    expect(head('GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n')).toMatchObject({ state: 'invalid' });
  });

  it('one byte at a time: need-more with a resume point until the empty line, then the same answer', () => {
    const text = Buffer.from('GET /path HTTP/1.1\r\nHost: slow.test\r\nX: y\r\n\r\n', 'latin1');
    let resumeAt = 0;
    for (let n = 1; n < text.length; n++) {
      const r = parseHttpHead(text.subarray(0, n), resumeAt);
      expect(r.state).toBe('need-more');
      if (r.state === 'need-more') {
        expect(r.resumeAt).toBeLessThanOrEqual(n);
        resumeAt = r.resumeAt;
      }
    }
    expect(parseHttpHead(text, resumeAt)).toMatchObject({ state: 'done', host: 'slow.test', headLength: text.length });
  });
});

describe('PROXY protocol', () => {
  const v4 = { sourceAddress: '::ffff:192.0.2.7', sourcePort: 40000, destinationAddress: '198.51.100.1', destinationPort: 443 };
  it('v1 text with v4-mapped addresses unmapped, and IPv6', () => {
    expect(encodeProxyV1(v4).toString()).toBe('PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n');
    expect(
      encodeProxyV1({ sourceAddress: '2001:db8::7', sourcePort: 1, destinationAddress: '2001:db8::1', destinationPort: 80 }).toString(),
    ).toBe('PROXY TCP6 2001:db8::7 2001:db8::1 1 80\r\n');
    expect(encodeProxyV1({ ...v4, sourceAddress: 'nonsense' }).toString()).toBe('PROXY UNKNOWN\r\n');
  });

  it('v2 binary: signature, TCP4 block of 12 bytes, round trip', () => {
    const header = encodeProxyV2(v4);
    expect(header.length).toBe(28);
    expect(header.subarray(12, 16)).toEqual(Buffer.from([0x21, 0x11, 0x00, 0x0c]));
    expect(decodeProxyV2(header)).toEqual({
      state: 'done',
      command: 'PROXY',
      family: 'TCP4',
      length: 28,
      endpoints: { sourceAddress: '192.0.2.7', sourcePort: 40000, destinationAddress: '198.51.100.1', destinationPort: 443 },
    });
  });

  it('v2 IPv6, mixed families as v4-mapped IPv6', () => {
    const header = encodeProxyV2({ sourceAddress: '2001:db8::7', sourcePort: 5, destinationAddress: '10.0.0.1', destinationPort: 443 });
    const decoded = decodeProxyV2(header);
    expect(decoded.state).toBe('done');
    if (decoded.state !== 'done') return;
    expect(decoded.family).toBe('TCP6');
    expect(ipv6Bytes(decoded.endpoints!.sourceAddress)).toEqual(ipv6Bytes('2001:db8::7'));
    expect(ipv6Bytes(decoded.endpoints!.destinationAddress)).toEqual(ipv6Bytes('::ffff:10.0.0.1'));
    expect(ipv6Bytes('::ffff:10.0.0.1').subarray(10)).toEqual(Buffer.from([0xff, 0xff, 10, 0, 0, 1]));
  });
});

describe('parseClientHello bounds', () => {
  it('refuses a ClientHello cut into more than 256 records', () => {
    const message = buildClientHelloMessage({ serverName: 'many.test', padding: 400 });
    expect(parseClientHello(toRecords(message, Array<number>(255).fill(1)))).toMatchObject({ state: 'done', serverName: 'many.test' });
    expect(parseClientHello(toRecords(message, Array<number>(300).fill(1)))).toEqual({ state: 'invalid', reason: 'ClientHello in too many records' });
  });
});
