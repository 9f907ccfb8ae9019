/**
 * --log-queries (issue 15): one JSON line per query in natd's log, for an operator asking "what is this VM looking
 * up, and who answered?". dnsmasq's flag, with natd's log format:
 *
 *   {"level":"info","msg":"dns query","client":"10.10.0.23","name":"www.example.com","type":1,"answer":"cache","rcode":0}
 *
 * `answer` is cache, local, refused, upstream, or `upstream DOMAIN` for a --server=/DOMAIN/ route; `rcode` is the
 * answer's (for a forwarded query the line is written when the answer is ready).
 *
 * Guests choose how many queries they send, so by default the log is rate-limited: at most `perSecond` lines per
 * second (100), and the first line after a dropped stretch carries `suppressed` (how many were not written).
 * `--log-queries=extra` writes every query, plus the query id: for debugging a single guest, never for a busy bridge.
 */
import type { Logger } from '../log.js';
import { formatClient, type ClientAddress } from './client-address.js';
import type { ParsedQuery } from './types.js';
import { getRcode, HEADER_LENGTH } from './wire.js';

export type LogQueriesMode = 'off' | 'on' | 'extra';

export const DEFAULT_LOG_QUERIES_PER_SECOND = 100;

export class QueryLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;
  /** lines not written because of the rate limit, since start */
  dropped = 0;

  private extra = false;
  /** false: --log-queries is off, record() must not be called */
  enabled = false;

  constructor(
    private readonly logger: Logger,
    mode: LogQueriesMode,
    private readonly now: () => number = Date.now,
    private readonly perSecond = DEFAULT_LOG_QUERIES_PER_SECOND,
  ) {
    this.setMode(mode);
  }

  /** On reload. */
  setMode(mode: LogQueriesMode): void {
    this.enabled = mode !== 'off';
    this.extra = mode === 'extra';
  }

  record(query: ParsedQuery, client: ClientAddress, answer: string, response: Buffer | Promise<Buffer> | undefined): void {
    if (!this.extra && !this.admit()) return;
    const fields: Record<string, unknown> = {
      client: formatClient(client), name: query.question.name, type: query.question.type, answer,
    };
    if (this.extra) fields.id = query.id;
    if (this.suppressed > 0) {
      fields.suppressed = this.suppressed;
      this.suppressed = 0;
    }
    if (response instanceof Promise) void response.then((r) => this.write(fields, r), () => this.write(fields, undefined));
    else this.write(fields, response);
  }

  private write(fields: Record<string, unknown>, response: Buffer | undefined): void {
    if (response && response.length >= HEADER_LENGTH) fields.rcode = getRcode(response);
    this.logger.info('dns query', fields);
  }

  /** A fixed one-second window: simple, and a flood costs one comparison per query. */
  private admit(): boolean {
    const t = this.now();
    if (t - this.windowStart >= 1000) {
      this.windowStart = t;
      this.written = 0;
    }
    if (this.written < this.perSecond) {
      this.written++;
      return true;
    }
    this.suppressed++;
    this.dropped++;
    return false;
  }
}
