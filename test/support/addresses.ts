/** Test values written as people write them. One copy for every test file (issue 13: it was copied into 16). */
import { parseIpv4 } from '../../src/net/ipv4.js';

/** An IPv4 address as natd's number; a typo in a test fails loudly instead of becoming `undefined`. */
export function ip(text: string): number {
  const value = parseIpv4(text);
  if (value === undefined) throw new Error(`bad test address ${text}`);
  return value;
}
