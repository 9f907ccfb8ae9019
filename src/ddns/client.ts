/**
 * Sends one UPDATE to the DNS server over UDP and waits for its answer: signs it with the TSIG key, takes only an
 * answer with the request's id whose signature checks (RFC 8945 §5.3: anything else is dropped and the wait goes
 * on), and reports what came back. Each exchange has its own socket, connected to the server: a fresh source port
 * per update, and the kernel drops datagrams from anywhere else.
 *
 * The server's answers are network input: a malformed one is counted and dropped, never thrown.
 * TCP is not used: an UPDATE of a few records and its answer fit a datagram (a TC answer is reported as a failure).
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { DnsWireError } from '../dns/wire.js';
import type { TsigKey } from './key-file.js';
import { OPCODE_UPDATE, parseMessage, rcodeName } from './message.js';
import { signRequest, verifyResponse } from './tsig.js';

export interface ServerAddress {
  host: string;
  port: number;
}

export type ExchangeResult =
  | { ok: true; rcode: number }
  /** the server rejected natd's signature (BADSIG, BADKEY, BADTIME) or signs with a skewed clock */
  | { ok: false; kind: 'auth'; message: string }
  /** no usable answer: timeout, ICMP unreachable, only answers that failed the checks */
  | { ok: false; kind: 'network'; message: string };

/** Sends an unsigned UPDATE (the client signs it when it has a key); resolves, never rejects. */
export interface Exchanger {
  exchange(message: Buffer): Promise<ExchangeResult>;
  /** replaces the key (a reload with a fixed key file) */
  setKey(key: TsigKey | undefined): void;
  /** answers dropped since start: malformed, another id, bad or missing signature */
  readonly dropped: number;
}

export interface UdpClientOptions {
  server: ServerAddress;
  key: TsigKey | undefined;
  timeoutMs?: number;
  nowSeconds?: () => number;
}

export class UdpDdnsClient implements Exchanger {
  dropped = 0;
  private key: TsigKey | undefined;
  private readonly timeoutMs: number;
  private readonly nowSeconds: () => number;

  constructor(private readonly opts: UdpClientOptions) {
    this.key = opts.key;
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.nowSeconds = opts.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  setKey(key: TsigKey | undefined): void {
    this.key = key;
  }

  exchange(unsigned: Buffer): Promise<ExchangeResult> {
    const id = randomInt(0, 0x10000);
    const body = Buffer.from(unsigned);
    body.writeUInt16BE(id, 0);
    const key = this.key;
    const signed = key ? signRequest(body, key, this.nowSeconds()) : { message: body, mac: Buffer.alloc(0) };
    const { host, port } = this.opts.server;
    return new Promise((resolve) => {
      const socket = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      let ignored: string | undefined;
      let settled = false;
      const finish = (result: ExchangeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.close();
        resolve(result);
      };
      const timer = setTimeout(
        () => finish({ ok: false, kind: 'network', message: `no answer from ${host}#${port} in ${this.timeoutMs} ms${ignored ? ` (dropped: ${ignored})` : ''}` }),
        this.timeoutMs,
      );
      socket.on('error', (err) => finish({ ok: false, kind: 'network', message: `${host}#${port}: ${err.message}` }));
      socket.on('message', (reply) => {
        const verdict = judgeAnswer(reply, id, key, signed.mac, this.nowSeconds());
        if (verdict.result) finish(verdict.result);
        else {
          this.dropped++;
          ignored = verdict.dropped;
        }
      });
      socket.connect(port, host, () => socket.send(signed.message, (err) => err && finish({ ok: false, kind: 'network', message: `${host}#${port}: ${err.message}` })));
    });
  }
}

/**
 * What a datagram from the server means for the update with `id` signed with `requestMac`: a result, or why it is
 * dropped. Pure, and total over any bytes (the fuzz test holds it to that).
 */
export function judgeAnswer(reply: Buffer, id: number, key: TsigKey | undefined, requestMac: Buffer, nowSeconds: number): { result?: ExchangeResult; dropped?: string } {
  let parsed;
  try {
    parsed = parseMessage(reply);
  } catch (err) {
    if (err instanceof DnsWireError) return { dropped: `malformed answer (${err.message})` };
    throw err;
  }
  if (parsed.id !== id || !parsed.qr || parsed.opcode !== OPCODE_UPDATE) return { dropped: 'an answer to another message' };
  if ((reply[2]! & 0x02) !== 0) return { result: { ok: false, kind: 'network', message: 'answer truncated (TC): natd sends updates over UDP only' } };
  if (!key) return { result: { ok: true, rcode: parsed.rcode } };
  let check;
  try {
    check = verifyResponse(reply, parsed, key, requestMac, nowSeconds);
  } catch (err) {
    if (err instanceof DnsWireError) return { dropped: `malformed TSIG (${err.message})` };
    throw err;
  }
  if (check.ok) return { result: { ok: true, rcode: parsed.rcode } };
  switch (check.problem) {
    case 'server-error':
      return {
        result: {
          ok: false,
          kind: 'auth',
          message: `the server rejected natd's TSIG key "${key.name}": ${rcodeName(parsed.rcode)}/${rcodeName(check.error)} ` +
            `(${check.error === 18 ? 'clocks differ by more than the fudge' : 'the key name, algorithm or secret differs from the server\'s'})`,
        },
      };
    case 'bad-time':
      return { result: { ok: false, kind: 'auth', message: `the server's answer is signed ${check.skewSeconds} s away from natd's clock (BADTIME)` } };
    case 'unsigned':
      return { dropped: 'an unsigned answer (is the key configured on the server?)' };
    default:
      return { dropped: `an answer with a ${check.problem === 'wrong-key' ? 'TSIG of another key' : 'bad TSIG signature'}` };
  }
}
