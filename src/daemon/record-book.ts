/**
 * The daemon's custom DNS records (issue 15): the config's, plus those added at runtime by `natd records add`,
 * persisted in the state dir (runtime-records.json) so they survive a restart. Every change builds a new zone and
 * swaps it in whole; the DNS server reads `zone` on every query, so a change is answered at once. SIGHUP (reload)
 * rebuilds from the new config and the runtime records.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { checkRecordSet } from '../dns/record-config.js';
import { formatRecordSpec, kindOfOption, OPTION_OF, parseRecordSpec, RECORD_KINDS, type RecordKind } from '../dns/record-specs.js';
import { buildRecordZone, countByKind, type RecordZone, type SourcedSpec } from '../dns/record-zone.js';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Subnet } from '../net/ipv4.js';
import { readJsonArray, writeFileAtomic } from '../state/atomic-file.js';

export const RUNTIME_RECORDS_FILE = 'runtime-records.json';

/** One runtime record as stored: its kind (the config field) and canonical dnsmasq-syntax value. */
interface StoredRecord {
  kind: RecordKind;
  spec: string;
}

export interface RecordRow {
  /** the dnsmasq option / natd flag name, e.g. host-record */
  kind: string;
  spec: string;
  source: 'config' | 'runtime';
}

export interface RecordBookOptions {
  subnet: Subnet;
  logger: Logger;
  /** host names of the current reservations: a runtime record may not take one */
  reservedNames(): readonly { name: string; field: string }[];
}

const RUNTIME_FIELD = 'runtime';

function configError(message: string): NatdError {
  return new NatdError(ErrorCodes.CONFIG, message);
}

export class RecordBook {
  private current: RecordZone;
  private runtime: SourcedSpec[] = [];
  private config: Config;

  private constructor(config: Config, private readonly opts: RecordBookOptions) {
    this.config = config;
    this.current = this.build(config.records).zone;
  }

  /** The config's records and the runtime file's; a runtime record that no longer fits is logged and left out. */
  static async load(config: Config, opts: RecordBookOptions): Promise<RecordBook> {
    const book = new RecordBook(config, opts);
    await book.reload(config);
    return book;
  }

  /** The zone the DNS server answers from (replaced whole on every change). */
  get zone(): RecordZone {
    return this.current;
  }

  /** Whether a guest's lease name (bare or with the domain) would shadow an operator record. */
  owns = (name: string): boolean => {
    const key = name.toLowerCase().replace(/\.$/, '');
    const domain = this.config.domain;
    return this.current.owns(key) || (domain !== undefined && !key.endsWith(`.${domain}`) && this.current.owns(`${key}.${domain}`));
  };

  /** Records by dnsmasq option name (status, metrics). */
  countsByKind(): Record<string, number> {
    return Object.fromEntries(Object.entries(countByKind(this.current.specs)).map(([kind, n]) => [OPTION_OF[kind as RecordKind], n]));
  }

  /** Whether `name` (bare or with the domain) is the owner of a record: a reservation may not take it. */
  holdsName = (name: string): boolean => {
    const key = name.toLowerCase().replace(/\.$/, '');
    const held = (n: string) => {
      const node = this.current.node(n);
      return node !== undefined && (node.field !== undefined || node.cname !== undefined);
    };
    const domain = this.config.domain;
    return held(key) || (domain !== undefined && held(`${key}.${domain}`));
  };

  rows(): RecordRow[] {
    return this.current.specs.map(({ spec, field }) => ({ kind: OPTION_OF[spec.kind], spec: formatRecordSpec(spec), source: field.startsWith(RUNTIME_FIELD) ? 'runtime' : 'config' }));
  }

  /** Re-reads the runtime file and rebuilds with `config`'s records (start and SIGHUP). */
  async reload(config: Config): Promise<void> {
    this.config = config;
    const stored = await this.readRuntimeFile();
    const accepted: SourcedSpec[] = [];
    for (const entry of stored) {
      const parsed = parseRecordSpec(entry.kind, entry.spec, { domain: config.domain });
      if (!parsed.ok) {
        this.opts.logger.warn('runtime DNS record skipped: not valid', { kind: OPTION_OF[entry.kind], spec: entry.spec, problem: parsed.error });
        continue;
      }
      const candidate = { spec: parsed.spec, field: `${RUNTIME_FIELD} ${OPTION_OF[entry.kind]}` };
      const problems = this.build([...config.records, ...accepted, candidate]).problems;
      if (problems.length) this.opts.logger.warn('runtime DNS record skipped: clashes with the config', { kind: OPTION_OF[entry.kind], spec: entry.spec, problem: problems.join('; ') });
      else accepted.push(candidate);
    }
    this.runtime = accepted;
    this.current = this.build([...config.records, ...accepted]).zone;
    this.opts.logger.info('DNS records loaded', { config: config.records.length, runtime: accepted.length });
  }

  /** `natd records add KIND VALUE`: validated as the config is, persisted, then answered at once. */
  async add(args: { kind?: unknown; spec?: unknown }): Promise<RecordRow> {
    const { kind, text } = this.kindAndText(args);
    const parsed = parseRecordSpec(kind, text, { domain: this.config.domain });
    if (!parsed.ok) throw configError(`${OPTION_OF[kind]}: ${parsed.error} (got ${JSON.stringify(text)})`);
    const canonical = formatRecordSpec(parsed.spec);
    if (this.current.specs.some(({ spec }) => spec.kind === kind && formatRecordSpec(spec) === canonical)) {
      throw configError(`${OPTION_OF[kind]}=${canonical} is already there`);
    }
    const candidate = { spec: parsed.spec, field: `${RUNTIME_FIELD} ${OPTION_OF[kind]}` };
    const next = [...this.runtime, candidate];
    const built = this.build([...this.config.records, ...next], true);
    if (built.problems.length) throw configError(built.problems.join('; '));
    await this.persist(next);
    this.runtime = next;
    this.current = built.zone;
    this.opts.logger.info('DNS record added', { kind: OPTION_OF[kind], spec: canonical });
    return { kind: OPTION_OF[kind], spec: canonical, source: 'runtime' };
  }

  /** `natd records remove KIND VALUE`: only runtime records; the config's are changed in the config. */
  async remove(args: { kind?: unknown; spec?: unknown }): Promise<RecordRow> {
    const { kind, text } = this.kindAndText(args);
    const parsed = parseRecordSpec(kind, text, { domain: this.config.domain });
    if (!parsed.ok) throw configError(`${OPTION_OF[kind]}: ${parsed.error} (got ${JSON.stringify(text)})`);
    const canonical = formatRecordSpec(parsed.spec);
    const same = ({ spec }: SourcedSpec) => spec.kind === kind && formatRecordSpec(spec) === canonical;
    if (!this.runtime.some(same)) {
      if (this.config.records.some(same)) throw configError(`${OPTION_OF[kind]}=${canonical} comes from the config; remove it there and reload`);
      throw configError(`no record ${OPTION_OF[kind]}=${canonical} (natd records list)`);
    }
    const next = this.runtime.filter((r) => !same(r));
    const built = this.build([...this.config.records, ...next]);
    await this.persist(next);
    this.runtime = next;
    this.current = built.zone;
    this.opts.logger.info('DNS record removed', { kind: OPTION_OF[kind], spec: canonical });
    return { kind: OPTION_OF[kind], spec: canonical, source: 'runtime' };
  }

  private kindAndText(args: { kind?: unknown; spec?: unknown }): { kind: RecordKind; text: string } {
    const kind = kindOfOption(String(args.kind ?? ''));
    if (!kind) throw configError(`kind: expected one of ${RECORD_KINDS.map((k) => OPTION_OF[k]).join(', ')} (got ${JSON.stringify(String(args.kind ?? ''))})`);
    if (typeof args.spec !== 'string' || args.spec.trim() === '') throw configError(`${OPTION_OF[kind]}: a value is needed, e.g. natd records add ${OPTION_OF[kind]}=…`);
    return { kind, text: args.spec };
  }

  private build(specs: readonly SourcedSpec[], withReservations = false): { zone: RecordZone; problems: string[] } {
    const checked = checkRecordSet(specs, { domain: this.config.domain, ttl: this.config.localTtl, ...(withReservations ? { reservedNames: this.opts.reservedNames() } : {}) });
    if (checked.problems.length) return checked;
    // the zone served also knows the bridge's reverse zone (the SOA of negative PTR answers)
    const domain = this.config.domain;
    const zone = buildRecordZone(specs, { domain, subnet: this.opts.subnet, ttl: this.config.localTtl, serverName: checked.zone.options.serverName }).zone;
    return { zone, problems: [] };
  }

  private async readRuntimeFile(): Promise<StoredRecord[]> {
    const file = path.join(this.config.stateDir, RUNTIME_RECORDS_FILE);
    const parsed = await readJsonArray(file);
    if (parsed === undefined) {
      this.opts.logger.warn('runtime DNS records file unreadable; starting without runtime records', { file, error: 'not a JSON array' });
      return [];
    }
    return parsed.filter((e): e is StoredRecord => typeof e === 'object' && e !== null && RECORD_KINDS.includes((e as StoredRecord).kind) && typeof (e as StoredRecord).spec === 'string');
  }

  private async persist(runtime: readonly SourcedSpec[]): Promise<void> {
    const stored: StoredRecord[] = runtime.map(({ spec }) => ({ kind: spec.kind, spec: formatRecordSpec(spec) }));
    await writeFileAtomic(path.join(this.config.stateDir, RUNTIME_RECORDS_FILE), JSON.stringify(stored, null, 1) + '\n');
  }
}
