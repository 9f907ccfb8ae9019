/**
 * issue 16: the PXE boot and TFTP settings, from the validated raw values to what the daemon uses. Kept out of
 * config.ts so the shared file only names the fields; each problem is pushed naming its field and value, as every
 * other config error.
 */
import { statSync, realpathSync } from 'node:fs';
import { parseClassRule, parseDhcpBoot, parseDhcpMatch, type BootPolicy, type ClassRule } from '../dhcp/boot.js';

export interface TftpSettings {
  /** the root's real path */
  readonly root: string;
  /** transfers at once (dnsmasq's --tftp-max) */
  readonly maxTransfers: number;
}

export interface BootSettings {
  readonly boot: BootPolicy;
  /** undefined: no TFTP server */
  readonly tftp: TftpSettings | undefined;
}

interface Raw {
  dhcpBoot: readonly string[];
  dhcpMatch: readonly string[];
  dhcpUserclass: readonly string[];
  dhcpVendorclass: readonly string[];
  enableTftp: boolean;
  tftpRoot?: string | undefined;
  tftpMax: number;
}

function each<T>(field: string, values: readonly string[], parse: (text: string) => T, problems: string[]): T[] {
  const out: T[] = [];
  values.forEach((text, i) => {
    try {
      out.push(parse(text));
    } catch (err) {
      problems.push(`${field}.${i}: ${(err as Error).message}`);
    }
  });
  return out;
}

export function parseBootSettings(raw: Raw, problems: string[]): BootSettings {
  const boot: BootPolicy = Object.freeze({
    entries: Object.freeze(each('dhcpBoot', raw.dhcpBoot, parseDhcpBoot, problems)),
    matches: Object.freeze(each('dhcpMatch', raw.dhcpMatch, parseDhcpMatch, problems)),
    userClasses: Object.freeze(each<ClassRule>('dhcpUserclass', raw.dhcpUserclass, parseClassRule, problems)),
    vendorClasses: Object.freeze(each<ClassRule>('dhcpVendorclass', raw.dhcpVendorclass, parseClassRule, problems)),
  });
  return { boot, tftp: tftpSettings(raw, problems) };
}

function tftpSettings(raw: Raw, problems: string[]): TftpSettings | undefined {
  if (!raw.enableTftp) {
    if (raw.tftpRoot !== undefined) problems.push(`tftpRoot: given without enableTftp (--enable-tftp) (got "${raw.tftpRoot}")`);
    return undefined;
  }
  if (raw.tftpRoot === undefined) {
    problems.push('enableTftp: needs tftpRoot (--tftp-root DIR), the directory natd serves read-only');
    return undefined;
  }
  // dnsmasq's --tftp-root=DIR,INTERFACE: natd serves its one bridge, so a second field is refused, not ignored
  if (raw.tftpRoot.includes(',')) {
    problems.push(`tftpRoot: expected one directory; natd serves its bridge only (got "${raw.tftpRoot}")`);
    return undefined;
  }
  try {
    if (!statSync(raw.tftpRoot).isDirectory()) throw new Error('not a directory');
    return Object.freeze({ root: realpathSync(raw.tftpRoot), maxTransfers: raw.tftpMax });
  } catch (err) {
    problems.push(`tftpRoot: ${raw.tftpRoot} is not a directory natd can use (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return undefined;
  }
}
