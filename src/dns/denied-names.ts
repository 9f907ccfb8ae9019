/**
 * Names natd never publishes for a guest, an operator's reservation or a hosts file (issue 12, row 6): a guest that
 * could take one of them would redirect its neighbours (`wpad` serves every browser's proxy configuration, `isatap`
 * an IPv6 tunnel router, `localhost` the loopback) or make natd speak for a whole top-level domain (a guest named
 * `com` made natd answer `com DS` authoritatively empty, which fails DNSSEC validation of all of .com).
 */
import { TLD_LABELS } from './data/tlds.js';

/** The gateway's name when none is configured (LocalNames publishes it for the bridge address). */
export const DEFAULT_GATEWAY_NAME = 'gateway';

/**
 * Special names besides the TLDs: RFC 6761 `localhost`, the proxy and tunnel discovery names Windows and browsers
 * look up in the search domain (`wpad`, `isatap`; Windows DNS server blocks the same two by default), and RFC 6762
 * `local`, which mDNS resolvers treat specially.
 */
const SPECIAL_NAMES: readonly string[] = ['localhost', 'wpad', 'isatap', 'local'];

const TOP_LEVEL_DOMAINS: ReadonlySet<string> = new Set(TLD_LABELS.split(/\s+/).filter(Boolean));

/** Whether `label` (lower case, no dots) is a top-level domain in the bundled list. */
export function isTopLevelDomain(label: string): boolean {
  return TOP_LEVEL_DOMAINS.has(label);
}

export interface NamePolicyContext {
  /** the gateway's name (default 'gateway') */
  gatewayName?: string;
  /** natd's local domain, when one is configured */
  domain?: string | undefined;
}

/**
 * Why `name` may not be published as a host name, or undefined when it may. `name` is a table key: lower case,
 * without the local domain (so `wpad.vm` arrives as `wpad`). Only single labels are judged: the deny list is
 * about names that shadow something every guest resolves; an operator's multi-label name is the operator's choice.
 *
 * A TLD label is refused only when there is no local domain. With one, `app` is published as `app.vm` and never
 * answered bare (LocalNames does not answer a bare TLD): the harm row 6 names is natd speaking for `com` itself, and
 * app, dev, cloud, host, data, box and many more common VM names are TLDs today.
 */
export function deniedNameReason(name: string, context: NamePolicyContext = {}): string | undefined {
  const key = name.toLowerCase().replace(/\.$/, '');
  if (key.includes('.')) return undefined;
  if (key === (context.gatewayName ?? DEFAULT_GATEWAY_NAME).toLowerCase()) return "the gateway's own name";
  if (SPECIAL_NAMES.includes(key)) return 'a special-use name (localhost, wpad, isatap, local)';
  if (!context.domain && isTopLevelDomain(key)) return 'a top-level domain (published only under a --domain)';
  return undefined;
}
