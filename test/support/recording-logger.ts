/** The one logger of the tests that keeps every line, for assertions on what was logged. */
import type { Logger, LogFields, LogLevel } from '../../src/log.js';

export interface LoggedLine {
  level: LogLevel;
  msg: string;
  fields?: LogFields;
  /** set on warnLimited lines (level warn): the rate-limit key */
  key?: string;
}

export interface RecordingLogger extends Logger {
  /** every call, in order (no rate limiting: each warnLimited call is a line) */
  lines: LoggedLine[];
  /** `{ msg, ...fields }` of the plain calls at one level, or of the warnLimited calls ('limited') */
  messages(which: LogLevel | 'limited'): ({ msg: string } & LogFields)[];
}

export function recordingLogger(): RecordingLogger {
  const lines: LoggedLine[] = [];
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  return {
    lines,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    warnLimited: (key, msg, fields) => void lines.push({ level: 'warn', msg, ...(fields ? { fields } : {}), key }),
    messages: (which) =>
      lines
        .filter((l) => (which === 'limited' ? l.key !== undefined : l.level === which && l.key === undefined))
        .map((l) => ({ msg: l.msg, ...l.fields })),
  };
}
