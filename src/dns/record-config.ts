/**
 * The custom records of a configuration (issue 15): the config file's arrays (hostRecord, cname, srvHost,
 * txtRecord, mxHost, ptrRecord, address) parsed and checked as one set, together with what they may clash with.
 * Used by config.ts (so check-config rejects what the daemon would) and by the runtime record book (`natd records
 * add`). Every problem names its field: `hostRecord.2: …`, `reservations.0.hostname: …`.
 */
import { DEFAULT_GATEWAY_NAME } from './denied-names.js';
import { OPTION_OF, parseRecordSpec, RECORD_KINDS, type RecordKind } from './record-specs.js';
import { buildRecordZone, type RecordZone, type SourcedSpec } from './record-zone.js';

/** The config file's record arrays, as given (validated to arrays of strings by the schema). */
export type RecordSettings = Partial<Record<RecordKind, readonly string[]>>;

/** The default TTL of natd's own answers: 0, as dnsmasq's local-ttl, so lease changes are seen at once. */
export const DEFAULT_LOCAL_TTL = 0;

export interface RecordCheckContext {
  domain?: string | undefined;
  /** reservation host names, by their config field (e.g. `reservations.0.hostname`) */
  reservedNames?: readonly { name: string; field: string }[];
}

/** Parses every spec of the settings, in kind order; problems name the field and quote the value. */
export function parseRecordSettings(settings: RecordSettings, context: RecordCheckContext = {}): { specs: SourcedSpec[]; problems: string[] } {
  const specs: SourcedSpec[] = [];
  const problems: string[] = [];
  for (const kind of RECORD_KINDS) {
    (settings[kind] ?? []).forEach((text, i) => {
      const field = `${kind}.${i}`;
      const parsed = parseRecordSpec(kind, text, { domain: context.domain });
      if (parsed.ok) specs.push({ spec: parsed.spec, field });
      else problems.push(`${field}: ${parsed.error} (got ${JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text)}; ${OPTION_OF[kind]} syntax)`);
    });
  }
  return { specs, problems };
}

/**
 * Builds the zone of `specs` and lists what makes it unusable: clashes among the records (a CNAME beside other
 * data, loops, an address rule both NXDOMAIN and answered), a record on natd's own name, and a reservation name
 * that is also a record name (records win over reservations; a config saying both is a mistake to report).
 */
export function checkRecordSet(specs: readonly SourcedSpec[], context: RecordCheckContext & { ttl: number }): { zone: RecordZone; problems: string[] } {
  const domain = context.domain?.toLowerCase();
  const serverName = domain ? `${DEFAULT_GATEWAY_NAME}.${domain}` : DEFAULT_GATEWAY_NAME;
  const { zone, errors } = buildRecordZone(specs, { domain, ttl: context.ttl, serverName });
  const problems = [...errors];
  const holderOf = (name: string) => {
    const node = zone.node(name);
    return node && (node.field !== undefined || node.cname) ? node : undefined;
  };
  for (const gatewayName of new Set([DEFAULT_GATEWAY_NAME, serverName])) {
    const node = holderOf(gatewayName);
    if (node) problems.push(`${node.field ?? node.cname!.field}: "${gatewayName}" is natd's own name (the gateway); pick another name`);
  }
  for (const { name, field } of context.reservedNames ?? []) {
    const key = name.toLowerCase();
    const node = holderOf(key) ?? (domain ? holderOf(`${key}.${domain}`) : undefined);
    if (node) problems.push(`${field}: "${name}" is also a DNS record name (${node.field ?? node.cname!.field}); records win over reservations, so drop one of them`);
  }
  return { zone, problems };
}
