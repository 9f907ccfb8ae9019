/**
 * Runtime validation of the control socket's arguments, one zod schema per command of the typed table
 * (protocol.ts). A request with arguments that do not fit is answered with NATD_ERR_COMMAND naming the argument,
 * never handed to a handler. Objects are strict: a misspelt argument is an error, not silently ignored.
 */
import { z } from 'zod/v3'; // zod's v3 API, for memory (issue 7): config/values.ts says why
import { ErrorCodes, NatdError } from '../errors.js';
import type { ArgsOf, CommandName, ControlHandlers } from './protocol.js';
import type { ControlHandler } from './server.js';

const none = z.object({}).strict();
const forward = z.object({ spec: z.string().min(1, 'a forward spec') }).strict();

/** `satisfies`: a schema for every command, each producing that command's argument type. */
export const ARG_SCHEMAS = {
  status: none,
  leases: none,
  'reservations.list': none,
  'reservations.add': z.object({ mac: z.string().optional(), address: z.string().optional(), hostname: z.string().nullish(), ipv6: z.string().optional(), duid: z.string().optional() }).strict(), // issue 14: ipv6, duid
  'reservations.remove': z.object({ key: z.string().min(1, 'a MAC, address or name') }).strict(),
  'forwards.list': none,
  'forwards.add': forward,
  'forwards.remove': forward,
  reload: none,
  metrics: none,
  'leases.watch': none,
  'records.list': none,
  'records.add': z.object({ kind: z.string().min(1, 'a record kind'), spec: z.string() }).strict(),
  'records.remove': z.object({ kind: z.string().min(1, 'a record kind'), spec: z.string() }).strict(),
  // issue 17
  'expose.list': none,
  'expose.add': z.object({ spec: z.string().min(1, 'an expose spec').max(1024) }).strict(),
  'expose.remove': z.object({ spec: z.string().min(1, 'an expose spec or name').max(1024) }).strict(),
} satisfies { [K in CommandName]: z.ZodType<ArgsOf<K>> };

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(ARG_SCHEMAS, name);
}

/** `args` checked against `command`'s schema; NatdError(COMMAND) naming the argument when they do not fit. */
export function validateArgs<K extends CommandName>(command: K, args: unknown): ArgsOf<K> {
  const parsed = ARG_SCHEMAS[command].safeParse(args ?? {});
  if (parsed.success) return parsed.data as ArgsOf<K>;
  const problems = parsed.error.issues.map((i) => {
    const field = i.path.length ? i.path.join('.') : 'args';
    return i.code === 'unrecognized_keys' ? `unknown argument(s) ${i.keys.join(', ')}` : `${field}: ${i.message}`;
  });
  throw new NatdError(ErrorCodes.COMMAND, `${command}: invalid arguments: ${problems.join('; ')}`);
}

/** The typed table as the server's handlers: each validates its arguments first. */
export function validatedHandlers(handlers: ControlHandlers): Record<string, ControlHandler> {
  const table: Record<string, ControlHandler> = {};
  for (const name of Object.keys(ARG_SCHEMAS)) {
    if (!isCommand(name)) continue;
    const handler = handlers[name] as (args: unknown) => unknown;
    table[name] = (args) => handler(validateArgs(name, args));
  }
  return table;
}
