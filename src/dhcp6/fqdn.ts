/**
 * issue 14: the server's Client FQDN option (RFC 4704) in Advertise and Reply. Pure.
 *
 * RFC 4704 §6: the server includes the option only when the client sent one AND asked for it in its Option Request
 * option. Flags (§4.1): S = the server takes responsibility for the AAAA (forward) record; O = the server overrode
 * the client's S; N = the server performs no DNS updates (then S is 0). natd "updates" DNS by answering the name in
 * its own DNS (AAAA + ip6.arpa PTR), so:
 *
 *   natd publishes the name (DNS on, name accepted or a reservation's)   S=1, N=0, O=1 when the client's S was 0
 *   natd publishes nothing for this client (DNS off, name refused)       S=0, N=1, O=1 when the client's S was 1
 *
 * The name sent back is the one natd uses: `name.domain.` (fully qualified, with --domain), else the single label as
 * a partial name (§4.2: no terminating root label). A refused name is sent back as the client gave it (its first
 * label), with N=1, so the client learns that natd will not publish it. This is what dnsmasq does too (it always
 * sets S and O when the client's S is 0), except that dnsmasq leaves the option out when it refuses a name.
 */
export const OPTION_CLIENT_FQDN = 39;

export const FQDN_FLAG_S = 0x01;
export const FQDN_FLAG_O = 0x02;
export const FQDN_FLAG_N = 0x04;

/** The client's flags byte (0 when the option is too short to have one). */
export function clientFqdnFlags(data: Uint8Array): number {
  return data.length >= 1 ? data[0]! & 0x07 : 0;
}

/** A name in DNS wire format: `name.domain` fully qualified (root label), or a single label as a partial name. */
function encodeName(label: string, domain: string | undefined): Uint8Array {
  const labels = [label, ...(domain ? domain.replace(/\.$/, '').split('.') : [])].map((l) => Buffer.from(l, 'latin1'));
  if (labels.some((l) => l.length === 0 || l.length > 63)) return Uint8Array.from([]);
  const parts = labels.flatMap((l) => [Uint8Array.from([l.length]), l]);
  if (domain) parts.push(Uint8Array.from([0]));
  return Buffer.concat(parts);
}

/**
 * The option data for the reply. `published`: the name natd answers for this client (undefined: none); `clientName`:
 * the client's first label (sent back with N=1 when natd publishes nothing).
 */
export function fqdnReplyData(clientData: Uint8Array, published: string | undefined, clientName: string | undefined, domain: string | undefined): Uint8Array {
  const clientS = (clientFqdnFlags(clientData) & FQDN_FLAG_S) !== 0;
  if (published !== undefined) {
    const flags = FQDN_FLAG_S | (clientS ? 0 : FQDN_FLAG_O);
    return Buffer.concat([Uint8Array.from([flags]), encodeName(published, domain)]);
  }
  const flags = FQDN_FLAG_N | (clientS ? FQDN_FLAG_O : 0);
  return Buffer.concat([Uint8Array.from([flags]), clientName ? encodeName(clientName, undefined) : new Uint8Array(0)]);
}

/** Whether the server may include the option (§6): the client sent it and asked for it in its ORO. */
export function fqdnWanted(oro: readonly number[] | undefined, clientSent: boolean): boolean {
  return clientSent && (oro?.includes(OPTION_CLIENT_FQDN) ?? false);
}
