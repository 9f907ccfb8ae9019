import { describe, expect, it } from 'vitest';
import { KeyFileError, parseKeyFile, type TsigKey } from '../../src/ddns/key-file.js';
import {
  addRecord, aRdata, CLASS_ANY, CLASS_IN, CLASS_NONE, deleteRRset, encodeUpdate, OPCODE_UPDATE, parseMessage, requireNameFree, TYPE_A, TYPE_ANY, TYPE_SOA,
} from '../../src/ddns/message.js';
import { findTsig, signRequest, signResponse, verifyRequest, verifyResponse } from '../../src/ddns/tsig.js';
import { ip } from '../support/addresses.js';

// The key and the UPDATE below come from BIND's own tools: `tsig-keygen -a hmac-sha256 natd-test`, then
// `nsupdate -k test.key` with "server 127.0.0.1 53053 / zone lab.example / update add alpha.lab.example 300 A
// 10.10.0.10 / send", its datagram captured as sent. nsupdate compresses the owner name (c00c), natd does not, so
// the known answer is the TSIG: natd verifies nsupdate's MAC, and signs nsupdate's message to the same bytes.
const KEY_FILE = `key "natd-test" {
\talgorithm hmac-sha256;
\tsecret "MPn6EXCW92dSY7l9DsLUwErnckyB7iWZcWOksSjqR6I=";
};
`;
const NSUPDATE_HEX =
  '86e228000001000000010001036c6162076578616d706c65000006000105616c706861c00c000100010000012c00040a0a000a' +
  '096e6174642d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b1119eb012c0020e15acefbe85e56' +
  '97158002b08fc7bd81c674dd4c164e4ca30c616a17a4bbc3eb86e200000000';

const key: TsigKey = parseKeyFile(KEY_FILE, 'test.key');

describe('parseKeyFile', () => {
  it('reads what tsig-keygen writes', () => {
    expect(key.name).toBe('natd-test');
    expect(key.algorithm).toBe('hmac-sha256');
    expect(key.secret.toString('base64')).toBe('MPn6EXCW92dSY7l9DsLUwErnckyB7iWZcWOksSjqR6I=');
  });

  it('takes comments, other spacing, an unquoted name and upper-case algorithm', () => {
    const k = parseKeyFile('# made by hand\nkey Ddns.Key. { /* c */ algorithm HMAC-SHA512; // x\n secret "AAAA"; } ;', 'k');
    expect(k).toEqual({ name: 'ddns.key', algorithm: 'hmac-sha512', secret: Buffer.from([0, 0, 0]) });
  });

  const bad: [string, RegExp][] = [
    ['', /k line 1: the file ends where key "NAME" \{ was expected/],
    ['zone "x" {};', /k line 1: expected key "NAME"/],
    ['key "a b" { algorithm hmac-sha256; secret "AAAA"; };', /key name: "a b" is not a DNS name/],
    ['key "k" {\n algorithm hmac-md5; secret "AAAA"; };', /k line 2: algorithm: "hmac-md5" is not one of hmac-sha1, /],
    ['key "k" { algorithm hmac-sha256;\n\n secret "not base64!"; };', /k line 3: secret: not base64/],
    ['key "k" { algorithm hmac-sha256; };', /secret: missing/],
    ['key "k" { secret "AAAA"; };', /algorithm: missing/],
    ['key "k" { algorithm hmac-sha256 secret "AAAA"; };', /expected ";" after algorithm, found "secret"/],
    ['key "k" { algorithm hmac-sha256; secret "AAAA"; }', /the file ends where ";"/],
    ['key "k" { algorithm hmac-sha256; secret "AAAA"; colour blue; };', /unknown field "colour"/],
    ['key "k" { algorithm hmac-sha256; secret "AAAA"; };\nkey "j" { };', /k line 2: only one key/],
    ['key "k" { algorithm hmac-sha256; secret "AAAA; };', /quoted string is not closed/],
    ['key "k" { secret "AAAA"; secret "AAAA"; };', /secret: given twice/],
  ];
  it.each(bad)('rejects %j naming the line and field', (text, message) => {
    expect(() => parseKeyFile(text, 'k')).toThrow(KeyFileError);
    expect(() => parseKeyFile(text, 'k')).toThrow(message);
  });
});

describe('TSIG (RFC 8945) against nsupdate', () => {
  const captured = Buffer.from(NSUPDATE_HEX, 'hex');

  it("verifies nsupdate's request MAC", () => {
    expect(verifyRequest(captured, parseMessage(captured), key)).toBe(true);
    const tampered = Buffer.from(captured);
    tampered[40]! ^= 1; // the A record's address
    expect(verifyRequest(tampered, parseMessage(tampered), key)).toBe(false);
    const otherKey = { ...key, secret: Buffer.alloc(32, 7) };
    expect(verifyRequest(captured, parseMessage(captured), otherKey)).toBe(false);
  });

  it("signs nsupdate's message to nsupdate's bytes", () => {
    const tsig = findTsig(captured, parseMessage(captured))!;
    const body = Buffer.from(captured.subarray(0, tsig.record.offset));
    body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
    const signed = signRequest(body, key, tsig.timeSigned, tsig.fudge);
    expect(signed.message.toString('hex')).toBe(NSUPDATE_HEX);
    expect(signed.mac).toEqual(tsig.mac);
  });
});

describe('UPDATE messages', () => {
  it('encode the zone, prerequisite and update sections with RFC 2136 classes', () => {
    const msg = encodeUpdate(0x1234, 'lab.example', [requireNameFree('alpha.lab.example')], [deleteRRset('alpha.lab.example', TYPE_A), addRecord('alpha.lab.example', TYPE_A, 300, aRdata(ip('10.10.0.10')))]);
    const p = parseMessage(msg);
    expect(p).toMatchObject({ id: 0x1234, qr: false, opcode: OPCODE_UPDATE, rcode: 0, questions: [{ name: 'lab.example', type: TYPE_SOA, class: CLASS_IN }] });
    expect(p.sections[0].map((r) => [r.name, r.type, r.class, r.rdata.length])).toEqual([['alpha.lab.example', TYPE_ANY, CLASS_NONE, 0]]);
    expect(p.sections[1].map((r) => [r.type, r.class, r.ttl, [...r.rdata]])).toEqual([[TYPE_A, CLASS_ANY, 0, []], [TYPE_A, CLASS_IN, 300, [10, 10, 0, 10]]]);
  });

  /** A response as a server builds it: the request's header with QR and an rcode, signed over the request MAC. */
  function serverResponse(requestMac: Buffer, rcode: number, time: number, signingKey: TsigKey = key): Buffer {
    const body = encodeUpdate(0x4242, 'lab.example', [], []);
    body.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11) | rcode, 2);
    return signResponse(body, signingKey, requestMac, time).message;
  }

  it('verify a response signed over the request MAC, and reject tampering, other keys and skewed clocks', () => {
    const req = signRequest(encodeUpdate(0x4242, 'lab.example', [], []), key, 1_000_000);
    const good = serverResponse(req.mac, 0, 1_000_010);
    expect(verifyResponse(good, parseMessage(good), key, req.mac, 1_000_020)).toEqual({ ok: true });
    expect(verifyResponse(good, parseMessage(good), key, req.mac, 1_000_020 + 400)).toMatchObject({ ok: false, problem: 'bad-time' });
    const tampered = Buffer.from(good);
    tampered[3] = (tampered[3]! & 0xf0) | 5; // REFUSED instead of NOERROR
    expect(verifyResponse(tampered, parseMessage(tampered), key, req.mac, 1_000_020)).toMatchObject({ ok: false, problem: 'bad-signature' });
    const otherMac = Buffer.alloc(32, 1);
    expect(verifyResponse(good, parseMessage(good), key, otherMac, 1_000_020)).toMatchObject({ ok: false, problem: 'bad-signature' });
    const badsig = signResponse(encodeUpdate(0x4242, 'lab.example', [], []), key, req.mac, 1_000_010, 16).message;
    expect(verifyResponse(badsig, parseMessage(badsig), key, req.mac, 1_000_020)).toEqual({ ok: false, problem: 'server-error', error: 16 });
    const byOther = serverResponse(req.mac, 0, 1_000_010, { ...key, name: 'other' });
    expect(verifyResponse(byOther, parseMessage(byOther), key, req.mac, 1_000_020)).toEqual({ ok: false, problem: 'wrong-key' });
    const unsigned = encodeUpdate(0x4242, 'lab.example', [], []);
    expect(verifyResponse(unsigned, parseMessage(unsigned), key, req.mac, 1_000_020)).toEqual({ ok: false, problem: 'unsigned' });
  });
});
