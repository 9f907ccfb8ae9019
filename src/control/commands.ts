/** CLI subcommands that talk to a running daemon: argument parsing, the call, and human or JSON output. */
import { parseArgs } from 'node:util';
import { DEFAULT_BRIDGE, defaultControlSocket } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { call, watchDaemon } from './client.js';
import { formatExpose, formatForwards, formatLeases, formatReservations, formatStatus, formatTable, remaining } from './format.js';
import type { ArgsOf, CommandName, ResultOf } from './protocol.js';

// kept importable from here (tests, older callers)
export { formatForwards, formatStatus, formatTable } from './format.js';

export const CONTROL_COMMANDS = new Set(['status', 'leases', 'reservations', 'forwards', 'reload', 'metrics', 'records', 'expose']);

const OPTIONS = {
  bridge: { type: 'string' },
  'control-socket': { type: 'string' },
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
} as const;

/**
 * A parseArgs error as one short line. Node appends advice about positionals that start with '-' to its
 * unknown-option message; natd takes no such positionals, so only the first sentence is kept.
 */
export function flagError(err: unknown): NatdError {
  const first = (err as Error).message.split('. ')[0]!.replace(/\.$/, '');
  return new NatdError(ErrorCodes.CONFIG, `${first}; see natd --help`);
}

const SUBCOMMANDS: Record<string, string[]> = {
  reservations: ['list', 'add', 'remove'],
  forwards: ['list', 'add', 'remove'],
  records: ['list', 'add', 'remove'],
};

/** One typed call, printed as JSON or for people. */
async function run<K extends CommandName>(socketPath: string, json: boolean | undefined, command: K, args: ArgsOf<K>, render: (result: ResultOf<K>) => string): Promise<number> {
  const result = await call(socketPath, command, args);
  process.stdout.write(json ? JSON.stringify(result ?? null, null, 2) + '\n' : render(result));
  return 0;
}

function usage(text: string): NatdError {
  return new NatdError(ErrorCodes.COMMAND, `usage: ${text}`);
}

/**
 * issue 15: `natd records add|remove KIND=VALUE` (a dnsmasq.conf line, e.g. host-record=db.lab,10.10.0.7 or
 * address=/apps.lab/10.10.0.50) or `KIND VALUE`; a leading -- is accepted too.
 */
export function recordArgs(sub: string, rest: string[]): { kind: string; spec: string } {
  const usage = `usage: natd records ${sub} KIND=VALUE, e.g. host-record=db.lab,10.10.0.7 (kinds: host-record, cname, srv-host, txt-record, mx-host, ptr-record, address)`;
  if (rest.length === 1) {
    const eq = rest[0]!.indexOf('=');
    if (eq <= 0) throw new NatdError(ErrorCodes.COMMAND, usage);
    return { kind: rest[0]!.slice(0, eq).replace(/^--/, ''), spec: rest[0]!.slice(eq + 1) };
  }
  if (rest.length === 2) return { kind: rest[0]!.replace(/^--/, ''), spec: rest[1]! };
  throw new NatdError(ErrorCodes.COMMAND, usage);
}

/** issue 15: `records list|add|remove`. */
function recordsCommand(positionals: string[], socketPath: string, json: boolean | undefined): Promise<number> {
  const sub = positionals[0] ?? 'list';
  if (!SUBCOMMANDS.records!.includes(sub)) throw new NatdError(ErrorCodes.COMMAND, `natd records: expected one of list, add, remove, got "${sub}"`);
  if (sub === 'list') {
    return run(socketPath, json, 'records.list', {}, (rows) => (rows.length ? formatTable(['KIND', 'VALUE', 'SOURCE'], rows.map((r) => [r.kind, r.spec, r.source])) : 'no DNS records\n'));
  }
  const args = recordArgs(sub, positionals.slice(1));
  return run(socketPath, json, sub === 'add' ? 'records.add' : 'records.remove', args, (r) => `${sub === 'add' ? 'added' : 'removed'} ${r.kind}=${r.spec}\n`);
}

/** issue 17: `expose list|add|remove`. */
function exposeCommand(positionals: string[], socketPath: string, json: boolean | undefined): Promise<number> {
  const sub = positionals[0] ?? 'list';
  if (!['list', 'add', 'remove'].includes(sub)) throw new NatdError(ErrorCodes.COMMAND, `natd expose: expected one of list, add, remove, got "${sub}"`);
  if (sub === 'list') return run(socketPath, json, 'expose.list', {}, formatExpose);
  const rest = positionals.slice(1);
  if (rest.length !== 1) throw usage(sub === 'add' ? 'natd expose add NAME[:LISTENPORT]=GUEST[:PORT][,proxy-protocol=v1|v2]' : 'natd expose remove SPEC|NAME');
  return run(socketPath, json, sub === 'add' ? 'expose.add' : 'expose.remove', { spec: rest[0]! }, (rows) => `${sub === 'add' ? 'added' : 'removed'} ${[...new Set(rows.map((r) => r.spec))].join(', ')}\n`);
}

interface WatchedEvent { action: string; mac: string; address: string; hostname?: string; expiresAt: number; at: number }

/** One `leases --watch` line for people: time, action, address, MAC, name, time left. */
export function formatLeaseEvent(e: WatchedEvent): string {
  const left = e.action === 'del' ? '' : `  ${remaining(e.expiresAt)}`;
  return `${new Date(e.at).toISOString()}  ${e.action.padEnd(5)}  ${e.address.padEnd(15)}  ${e.mac}  ${e.hostname ?? '-'}${left}\n`;
}

/**
 * `natd reservations add` arguments, dnsmasq dhcp-host style (issue 14): MAC or id:DUID first, then an IPv4 address,
 * an IPv6 address (`[fd00::5]`, `[::5]`; brackets optional) and a name, in any order.
 */
export function reservationAddArgs(rest: readonly string[]): { mac?: string; duid?: string; address?: string; ipv6?: string; hostname?: string } {
  const [id, ...fields] = rest;
  const out: { mac?: string; duid?: string; address?: string; ipv6?: string; hostname?: string } = /^id:/i.test(id!) ? { duid: id!.slice(3) } : { mac: id! };
  for (const f of fields) {
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(f) && out.address === undefined) out.address = f;
    else if ((f.startsWith('[') || f.includes(':')) && out.ipv6 === undefined) out.ipv6 = f;
    else if (out.hostname === undefined && !f.includes(':')) out.hostname = f;
    else throw usage(`natd reservations add: unexpected "${f}" (MAC|id:DUID [IPV4] [[IPV6]] [NAME])`);
  }
  if (out.address === undefined && out.ipv6 === undefined) throw usage('natd reservations add MAC|id:DUID [IPV4] [[IPV6]] [NAME]: give an IPv4 and/or an [IPv6] address');
  return out;
}

/** `reservations` and `forwards`: list, add, remove, each with its own arguments. */
function subcommand(command: 'reservations' | 'forwards', positionals: string[], socketPath: string, json: boolean | undefined): Promise<number> {
  const allowed = SUBCOMMANDS[command]!;
  const sub = positionals[0] ?? 'list';
  if (!allowed.includes(sub)) throw new NatdError(ErrorCodes.COMMAND, `natd ${command}: expected one of ${allowed.join(', ')}, got "${sub}"`);
  const rest = positionals.slice(1);
  const done = () => `${sub === 'add' ? 'added' : 'removed'}\n`;
  if (command === 'reservations') {
    if (sub === 'list') return run(socketPath, json, 'reservations.list', {}, formatReservations);
    if (sub === 'add') {
      if (rest.length < 2 || rest.length > 4) throw usage('natd reservations add MAC|id:DUID [IPV4] [[IPV6]] [NAME]');
      return run(socketPath, json, 'reservations.add', reservationAddArgs(rest), done);
    }
    if (rest.length !== 1) throw usage('natd reservations remove MAC|ADDRESS|[IPV6]|id:DUID|NAME');
    return run(socketPath, json, 'reservations.remove', { key: rest[0]! }, done);
  }
  if (sub === 'list') return run(socketPath, json, 'forwards.list', {}, formatForwards);
  if (rest.length !== 1) throw usage(`natd forwards ${sub} [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT`);
  return run(socketPath, json, sub === 'add' ? 'forwards.add' : 'forwards.remove', { spec: rest[0]! }, done);
}

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
  const json = values.json;
  if (values.watch) {
    if (command !== 'leases' || positionals.length) throw usage('natd leases --watch [--json]');
    await watchDaemon(socketPath, 'leases.watch', {}, (event) => process.stdout.write(json ? JSON.stringify(event) + '\n' : formatLeaseEvent(event as WatchedEvent)));
    return 0;
  }
  if (command === 'records') return recordsCommand(positionals, socketPath, json);
  if (command === 'expose') return exposeCommand(positionals, socketPath, json); // issue 17
  if (command === 'reservations' || command === 'forwards') return subcommand(command, positionals, socketPath, json);
  if (positionals.length) throw usage(`natd ${command} [--bridge NAME] [--json] (no arguments)`);
  switch (command) {
    case 'status': return run(socketPath, json, 'status', {}, formatStatus);
    case 'leases': return run(socketPath, json, 'leases', {}, (rows) => formatLeases(rows));
    case 'reload': return run(socketPath, json, 'reload', {}, () => 'reloaded\n');
    case 'metrics': return run(socketPath, json, 'metrics', {}, (text) => text);
    default: throw new NatdError(ErrorCodes.COMMAND, `unknown command "${command}"; see natd --help`);
  }
}
