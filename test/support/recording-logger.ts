/** A logger that keeps every line, for assertions on what was logged. */
import type { Logger, LogFields } from '../../src/log.js';

export function recordingLogger(): Logger & { lines: { level: string; msg: string; fields?: LogFields }[] } {
  const lines: { level: string; msg: string; fields?: LogFields }[] = [];
  const log = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), warnLimited: (_k, msg, fields) => log('warn')(msg, fields) };
}
