/** CLI subcommands that talk to a running daemon: argument parsing, the call, and human or JSON output. */
import { parseArgs } from 'node:util';
import { DEFAULT_BRIDGE, defaultControlSocket } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { call } from './client.js';
import { formatForwards, formatLeases, formatReservations, formatStatus } from './format.js';
import type { ArgsOf, CommandName, ResultOf } from './protocol.js';

// kept importable from here (tests, older callers)
export { formatForwards, formatStatus, formatTable } from './format.js';

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

const SUBCOMMANDS: Record<string, string[]> = {
  reservations: ['list', 'add', 'remove'],
  forwards: ['list', 'add', 'remove'],
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
      if (rest.length < 2 || rest.length > 3) throw usage('natd reservations add MAC ADDRESS [NAME]');
      return run(socketPath, json, 'reservations.add', { mac: rest[0]!, address: rest[1]!, ...(rest[2] !== undefined ? { hostname: rest[2] } : {}) }, done);
    }
    if (rest.length !== 1) throw usage('natd reservations remove MAC|ADDRESS|NAME');
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
