/** Does an upstream reply answer the query it claims to? The question check of the upstream client's anti-spoofing. */
import { HEADER_LENGTH, plainNameEnd, readU16, responseQuestionKey } from './wire.js';

/** End of the question in a query whose one question is written out in full, else -1. */
export function questionEnd(raw: Uint8Array): number {
  if (readU16(raw, 4) !== 1) return -1;
  const nameEnd = plainNameEnd(raw, HEADER_LENGTH);
  return nameEnd === undefined || nameEnd + 4 > raw.length ? -1 : nameEnd + 4;
}

/**
 * Whether the message at `start` has exactly one question, the query's: the same name (ASCII letter case aside, as
 * DNS compares names) with the same type and class. Byte for byte against the query's own question (`raw` up to
 * `end`, from questionEnd) rather than decoding the reply's name into a key string: cheaper, and the same answer
 * (the key is that name lowered). A query whose question cannot be compared that way (end -1) is matched by key.
 */
export function sameQuestion(buf: Uint8Array, start: number, length: number, raw: Uint8Array, end: number, key: string): boolean {
  if (end < 0) {
    const message = start === 0 && length === buf.length ? buf : buf.subarray(start, start + length);
    return responseQuestionKey(message) === key;
  }
  if (length < end || buf[start + 4] !== 0 || buf[start + 5] !== 1) return false;
  const nameEnd = end - 4;
  for (let i = HEADER_LENGTH; i < nameEnd; i++) {
    const a = buf[start + i]!;
    const b = raw[i]!;
    // label lengths (< 64) never fold, so they must match exactly
    if (a !== b && asciiLower(a) !== asciiLower(b)) return false;
  }
  for (let i = nameEnd; i < end; i++) if (buf[start + i] !== raw[i]) return false;
  return true;
}

/** sameQuestion for a whole message: does `reply` carry the question of `raw`, whose key is `key`? */
export function replyMatchesQuery(reply: Uint8Array, raw: Uint8Array, key: string): boolean {
  return sameQuestion(reply, 0, reply.length, raw, questionEnd(raw), key);
}

function asciiLower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
}
