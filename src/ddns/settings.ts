/**
 * The DDNS part of the configuration (--ddns-server, --ddns-zone, --ddns-reverse, --ddns-key-file), checked as
 * resolveConfig checks everything: problems are pushed naming the field; the key file is read and parsed here, so
 * check-config rejects a bad key file before the daemon starts.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { KeyFileError, parseKeyFile, type TsigKey } from './key-file.js';

export interface DdnsConfig {
  /** ADDR[#PORT] as given, for status and logs */
  readonly serverText: string;
  readonly server: { readonly host: string; readonly port: number };
  /** forward zone, lower case: a lease named alpha is alpha.ZONE */
  readonly zone: string;
  /** publish PTRs in the subnet's in-addr.arpa zone */
  readonly reverse: boolean;
  readonly keyFile: string | undefined;
  readonly key: TsigKey | undefined;
}

export interface DdnsRaw {
  ddnsServer?: string | undefined;
  ddnsZone?: string | undefined;
  ddnsReverse?: boolean | undefined;
  ddnsKeyFile?: string | undefined;
}

/** dnsmasq's ADDR#PORT (as in --server): an IPv4 or IPv6 address, port 53 unless given. */
export function parseServerAddress(text: string): { host: string; port: number } | string {
  const [hostPart, portPart, ...rest] = text.trim().split('#');
  const host = hostPart!.replace(/^\[(.*)\]$/, '$1');
  if (rest.length || !(isIPv4(host) || isIPv6(host))) return 'expected ADDR[#PORT] with an IP address, e.g. 192.0.2.53 or 192.0.2.53#5353';
  const port = portPart === undefined ? 53 : Number(portPart);
  if (!/^\d{1,5}$/.test(portPart ?? '53') || port < 1 || port > 65535) return `port "${portPart}" is not in 1-65535`;
  return { host, port };
}

/** Reads the key file; the problem names the file and the line. */
export function loadKeyFile(file: string): TsigKey | string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file}: ${(err as Error).message}`;
  }
  try {
    return parseKeyFile(text, file);
  } catch (err) {
    if (err instanceof KeyFileError) return err.message;
    throw err;
  }
}

export function resolveDdns(raw: DdnsRaw, problems: string[]): DdnsConfig | undefined {
  if (raw.ddnsServer === undefined) {
    for (const field of ['ddnsZone', 'ddnsReverse', 'ddnsKeyFile'] as const) {
      if (raw[field] !== undefined && raw[field] !== false) problems.push(`${field}: needs ddnsServer (--ddns-server ADDR[#PORT]) to publish to`);
    }
    return undefined;
  }
  const before = problems.length;
  const server = parseServerAddress(raw.ddnsServer);
  if (typeof server === 'string') problems.push(`ddnsServer: ${server} (got "${raw.ddnsServer}")`);
  if (raw.ddnsZone === undefined) problems.push('ddnsZone: missing; the forward zone the names go in is needed with ddnsServer (--ddns-zone lab.example)');
  let key: TsigKey | undefined;
  if (raw.ddnsKeyFile !== undefined) {
    const loaded = loadKeyFile(raw.ddnsKeyFile);
    if (typeof loaded === 'string') problems.push(`ddnsKeyFile: ${loaded}`);
    else key = loaded;
  }
  if (problems.length > before || typeof server === 'string') return undefined;
  return Object.freeze({
    serverText: raw.ddnsServer,
    server: Object.freeze(server),
    zone: raw.ddnsZone!.toLowerCase().replace(/\.$/, ''),
    reverse: raw.ddnsReverse ?? false,
    keyFile: raw.ddnsKeyFile,
    key,
  });
}
