/** CLI subcommands that talk to a running daemon: argument parsing, the call, and human or JSON output. */
import { parseArgs } from 'node:util';
import { DEFAULT_BRIDGE, defaultControlSocket } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { callDaemon } from './client.js';

export const CONTROL_COMMANDS = new Set(['status', 'leases', 'reservations', 'forwards', 'reload', 'metrics']);

const OPTIONS = {
  bridge: { type: 'string' },
  'control-socket': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/**
 * A parseArgs error as one short line. Node appends advice about positionals that start with '-' to its
 * unknown-option message; natd takes no such positionals, so only the first sentence is kept.
 */
export function flagError(err: unknown): NatdError {
  const first = (err as Error).message.split('. ')[0]!.replace(/\.$/, '');
  return new NatdError(ErrorCodes.CONFIG, `${first}; see natd --help`);
}

/** Renders rows as an aligned text table with a header. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Nested values as `key=value` pairs with dotted keys, e.g. `cache.hits=3 upstream.failures=0`. */
function flatten(value: unknown, prefix = ''): string[] {
  // a list of records (e.g. upstream.perServer) reads as one group per record, named by its first text field
  if (Array.isArray(value) && value.some((v) => v !== null && typeof v === 'object')) {
    return value.flatMap((v, i) => flatten(v, `${prefix}[${recordLabel(v) ?? i}]`));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [`${prefix}=${Array.isArray(value) ? value.join(',') : String(value)}`];
  return Object.entries(value).filter(([, v]) => v !== undefined).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function recordLabel(record: unknown): string | undefined {
  if (record === null || typeof record !== 'object') return undefined;
  const first = Object.values(record).find((v) => typeof v === 'string');
  return typeof first === 'string' ? first : undefined;
}

/** Status for people: one line per component, scalars as they are, nested counters as key=value pairs. */
export function formatStatus(status: Record<string, unknown>): string {
  const rows = Object.entries(status)
    .filter(([, v]) => v !== undefined)
    .map(([key, v]) => [key, v !== null && typeof v === 'object' && !Array.isArray(v) ? flatten(v).join(' ') : String(v)]);
  const width = Math.max(...rows.map(([k]) => k!.length));
  return rows.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n') + '\n';
}

function remaining(expiresAt: number): string {
  const s = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** state 'declined': a quarantined address (a probe confirmed the conflict), expiresAt is when it ends */
interface LeaseRow { address: string; mac: string; hostname?: string; expiresAt: number; clientId: string; state?: 'declined' }
interface ReservationRow { mac: string; address: string; hostname?: string; source?: string }
/** inTable false: the forward is kept but not applied (e.g. its reservation is gone); `problem` says why when known */
interface ForwardRow { spec: string; protocol: string; host: string; guest: string; inTable?: boolean; problem?: string }

/** `natd forwards list` for people; a forward kept but not applied says so beside its guest. */
export function formatForwards(rows: ForwardRow[]): string {
  if (!rows.length) return 'no port forwards\n';
  const guest = (f: ForwardRow) => (f.inTable === false ? `${f.guest} (${f.problem ? `${f.problem}; ` : ''}not in the table)` : f.guest);
  return formatTable(['PROTO', 'HOST', 'GUEST', 'SPEC'], rows.map((f) => [f.protocol, f.host, guest(f), f.spec]));
}

function render(command: string, sub: string | undefined, result: unknown): string {
  switch (command) {
    case 'leases': {
      const rows = result as LeaseRow[];
      if (!rows.length) return 'no leases\n';
      return formatTable(['ADDRESS', 'MAC', 'HOSTNAME', 'EXPIRES IN', 'CLIENT ID'],
        rows.map((l) => l.state === 'declined'
          ? [l.address, '-', '(declined)', remaining(l.expiresAt), '-']
          : [l.address, l.mac, l.hostname ?? '-', remaining(l.expiresAt), l.clientId]));
    }
    case 'reservations':
      if (sub === 'list') {
        const rows = result as ReservationRow[];
        if (!rows.length) return 'no reservations\n';
        return formatTable(['MAC', 'ADDRESS', 'NAME', 'SOURCE'], rows.map((r) => [r.mac, r.address, r.hostname ?? '-', r.source ?? '-']));
      }
      return `${sub === 'add' ? 'added' : 'removed'}\n`;
    case 'forwards':
      if (sub === 'list') return formatForwards(result as ForwardRow[]);
      return `${sub === 'add' ? 'added' : 'removed'}\n`;
    case 'reload':
      return 'reloaded\n';
    case 'status':
      return formatStatus(result as Record<string, unknown>);
    case 'metrics':
      return String(result);
    default:
      return JSON.stringify(result, null, 2) + '\n';
  }
}

const SUBCOMMANDS: Record<string, string[]> = {
  reservations: ['list', 'add', 'remove'],
  forwards: ['list', 'add', 'remove'],
};

export async function runControlCommand(command: string, argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw flagError(err);
  }
  const { values, positionals } = parsed;
  const bridge = values.bridge ?? DEFAULT_BRIDGE;
  const socketPath = values['control-socket'] ?? defaultControlSocket(bridge);
  let sub: string | undefined;
  let args: Record<string, unknown> = {};
  const allowed = SUBCOMMANDS[command];
  if (allowed) {
    sub = positionals[0] ?? 'list';
    if (!allowed.includes(sub)) throw new NatdError(ErrorCodes.COMMAND, `natd ${command}: expected one of ${allowed.join(', ')}, got "${sub}"`);
    const rest = positionals.slice(1);
    if (command === 'reservations' && sub === 'add') {
      if (rest.length < 2) throw new NatdError(ErrorCodes.COMMAND, 'usage: natd reservations add MAC ADDRESS [NAME]');
      args = { mac: rest[0], address: rest[1], hostname: rest[2] };
    } else if (command === 'reservations' && sub === 'remove') {
      if (rest.length !== 1) throw new NatdError(ErrorCodes.COMMAND, 'usage: natd reservations remove MAC|ADDRESS|NAME');
      args = { key: rest[0] };
    } else if (command === 'forwards' && sub !== 'list') {
      if (rest.length !== 1) throw new NatdError(ErrorCodes.COMMAND, `usage: natd forwards ${sub} [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT`);
      args = { spec: rest[0] };
    }
  }
  const result = await callDaemon(socketPath, sub ? `${command}.${sub}` : command, args);
  process.stdout.write(values.json ? JSON.stringify(result, null, 2) + '\n' : render(command, sub, result));
  return 0;
}
