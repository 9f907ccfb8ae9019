/**
 * JSON-lines logger for journald/stdout. Injected everywhere (never a global), so tests can capture lines.
 * `warnLimited` is for events triggered by the network: one line per key per interval, with the count of the
 * lines it swallowed, so a flood of junk packets cannot flood the journal.
 */
import { debuglog } from 'node:util';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A warning about something a peer sent: at most one line per key per interval. */
  warnLimited(key: string, msg: string, fields?: LogFields): void;
}

const debugEnabled = debuglog('natd').enabled;

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
  now?: () => number;
  /** Rate-limit window for warnLimited, in ms. */
  limitIntervalMs?: number;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const minLevel = LEVEL_ORDER[options.level ?? (debugEnabled ? 'debug' : 'info')];
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const now = options.now ?? Date.now;
  const interval = options.limitIntervalMs ?? 10_000;
  const limited = new Map<string, { until: number; suppressed: number }>();

  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVEL_ORDER[level] < minLevel) return;
    const record: LogFields = { time: new Date(now()).toISOString(), level, msg, ...fields };
    write(JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  };

  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    warnLimited(key, msg, fields) {
      const t = now();
      const state = limited.get(key);
      if (state && t < state.until) {
        state.suppressed++;
        return;
      }
      const suppressed = state?.suppressed ?? 0;
      limited.set(key, { until: t + interval, suppressed: 0 });
      if (limited.size > 1000) limited.clear(); // keys are code-defined, but stay bounded regardless
      emit('warn', msg, suppressed > 0 ? { ...fields, suppressed } : fields);
    },
  };
}

/** A logger that drops everything (unit tests, library use). */
export const silentLogger: Logger = {
  debug() {}, info() {}, warn() {}, error() {}, warnLimited() {},
};
