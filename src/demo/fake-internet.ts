/**
 * A tiny stand-in for the internet, run inside the wan namespace by `natd demo`: a DNS server that answers
 * `*.example` with its own address, and an HTTP server that tells each client the address it came from (which,
 * behind natd, is the host's uplink address: the masquerade at work).
 * Usage: node fake-internet.js ADDRESS   (prints "listening" when ready)
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

const address = process.argv[2] ?? '198.51.100.2';

const dns = dgram.createSocket('udp4');
dns.on('message', (msg, rinfo) => {
  let query: dnsPacket.Packet;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return; // junk: ignore
  }
  const question = query.questions?.[0];
  if (!question || query.type !== 'query') return;
  const known = question.name.toLowerCase().endsWith('.example') && question.type === 'A';
  const reply = dnsPacket.encode({
    id: query.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), // rcode 3: NXDOMAIN
    questions: [question],
    answers: known ? [{ type: 'A', name: question.name, ttl: 60, data: address }] : [],
  });
  dns.send(reply, rinfo.port, rinfo.address);
});

const http = net.createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.once('data', () => {
    const body = `hello from the fake internet; you came from ${socket.remoteAddress}:${socket.remotePort}\n`;
    socket.end(`HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  });
});

let ready = 0;
const onReady = () => {
  if (++ready === 2) process.stdout.write('listening\n');
};
dns.bind(53, address, onReady);
http.listen(80, address, onReady);
process.on('SIGTERM', () => process.exit(0));
