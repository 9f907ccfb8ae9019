/**
 * TSIG key files in BIND's format, as `tsig-keygen NAME` writes them and named.conf includes them:
 *
 *   key "natd-ddns" {
 *           algorithm hmac-sha256;
 *           secret "base64...";
 *   };
 *
 * Comments (`#`, `//`, C-style) and any whitespace are allowed; the file holds exactly one key. Every problem is a
 * KeyFileError naming the file, the line and the field, so the configuration error points at what to fix.
 */

/** The HMAC algorithms natd signs with (RFC 8945 §6; hmac-md5 is deprecated there and not offered). */
export const TSIG_ALGORITHMS = {
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
} as const;
export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

export interface TsigKey {
  /** the key's name, lower case, no trailing dot (it is a DNS name on the wire) */
  readonly name: string;
  readonly algorithm: TsigAlgorithm;
  readonly secret: Buffer;
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

interface Token {
  kind: 'word' | 'string' | 'punct';
  text: string;
  line: number;
}

/** Splits the text into words, quoted strings and the punctuation { } ; — comments dropped. */
function tokenize(text: string, fail: (line: number, message: string) => never): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) fail(line, 'a /* comment is not closed');
      for (let j = i; j < end; j++) if (text[j] === '\n') line++;
      i = end + 2;
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) fail(line, 'a quoted string is not closed');
      const value = text.slice(i + 1, end);
      if (value.includes('\n')) fail(line, 'a quoted string runs over the end of the line');
      tokens.push({ kind: 'string', text: value, line });
      i = end + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};"#]/.test(text[j]!) && !(text[j] === '/' && (text[j + 1] === '/' || text[j + 1] === '*'))) j++;
      tokens.push({ kind: 'word', text: text.slice(i, j), line });
      i = j;
    }
  }
  return tokens;
}

const KEY_NAME = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses the text of a key file; `file` names it in errors. Throws KeyFileError. */
export function parseKeyFile(text: string, file: string): TsigKey {
  const fail = (line: number, message: string): never => {
    throw new KeyFileError(`${file} line ${line}: ${message}`);
  };
  const tokens = tokenize(text, fail);
  let pos = 0;
  const lastLine = () => tokens[tokens.length - 1]?.line ?? 1;
  const next = (what: string): Token => tokens[pos++] ?? fail(lastLine(), `the file ends where ${what} was expected`);
  const expect = (punct: string, what: string): void => {
    const t = next(`"${punct}" (${what})`);
    if (t.kind !== 'punct' || t.text !== punct) fail(t.line, `expected "${punct}" ${what}, found "${t.text}"`);
  };

  const keyword = next('key "NAME" {');
  if (keyword.kind !== 'word' || keyword.text.toLowerCase() !== 'key') fail(keyword.line, `expected key "NAME" { ... }; found "${keyword.text}"`);
  const nameToken = next('the key name');
  if (nameToken.kind === 'punct' || !KEY_NAME.test(nameToken.text) || nameToken.text.length > 254) {
    fail(nameToken.line, `key name: "${nameToken.text}" is not a DNS name`);
  }
  expect('{', 'after the key name');

  let algorithm: TsigAlgorithm | undefined;
  let secret: Buffer | undefined;
  for (;;) {
    const t = next('algorithm, secret or "}"');
    if (t.kind === 'punct' && t.text === '}') break;
    if (t.kind !== 'word') fail(t.line, `expected algorithm, secret or "}", found "${t.text}"`);
    const field = t.text.toLowerCase();
    const value = next(`the value of ${field}`);
    if (value.kind === 'punct') fail(value.line, `${field}: a value is missing before "${value.text}"`);
    if (field === 'algorithm') {
      if (algorithm !== undefined) fail(t.line, 'algorithm: given twice');
      const name = value.text.toLowerCase().replace(/\.$/, '');
      if (!(name in TSIG_ALGORITHMS)) fail(value.line, `algorithm: "${value.text}" is not one of ${Object.keys(TSIG_ALGORITHMS).join(', ')}`);
      algorithm = name as TsigAlgorithm;
    } else if (field === 'secret') {
      if (secret !== undefined) fail(t.line, 'secret: given twice');
      const compact = value.text.replace(/\s+/g, '');
      if (compact.length % 4 !== 0 || !BASE64.test(compact)) fail(value.line, 'secret: not base64 (as tsig-keygen writes it)');
      secret = Buffer.from(compact, 'base64');
      if (secret.length === 0) fail(value.line, 'secret: empty');
    } else {
      fail(t.line, `unknown field "${t.text}" (a key has algorithm and secret)`);
    }
    expect(';', `after ${field}`);
  }
  expect(';', 'after the closing "}"');
  if (pos < tokens.length) fail(tokens[pos]!.line, 'only one key is allowed in the file; remove what follows the first');
  if (algorithm === undefined) fail(keyword.line, 'algorithm: missing (e.g. algorithm hmac-sha256;)');
  if (secret === undefined) fail(keyword.line, 'secret: missing (e.g. secret "base64";)');
  return Object.freeze({ name: nameToken.text.toLowerCase().replace(/\.$/, ''), algorithm: algorithm!, secret: secret! });
}
