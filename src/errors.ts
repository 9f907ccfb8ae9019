/**
 * One error registry (the undici/fastify habit): callers switch on `code`, never on message text, and the CLI maps
 * codes to exit statuses.
 */
export const ErrorCodes = {
  CONFIG: 'NATD_ERR_CONFIG',
  BRIDGE: 'NATD_ERR_BRIDGE',
  BIND: 'NATD_ERR_BIND',
  NATIVE: 'NATD_ERR_NATIVE',
  NFT_APPLY: 'NATD_ERR_NFT_APPLY',
  NFT_VERIFY: 'NATD_ERR_NFT_VERIFY',
  STATE: 'NATD_ERR_STATE',
  CONTROL: 'NATD_ERR_CONTROL',
  NO_DAEMON: 'NATD_ERR_NO_DAEMON',
  COMMAND: 'NATD_ERR_COMMAND',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class NatdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NatdError';
    this.code = code;
  }
}

/**
 * Exit statuses by code (sysexits-style where one fits). The control commands exit with the daemon's code: the
 * client keeps the code of the daemon's answer (control/client.ts). Documented in `natd --help` and natd(8).
 */
export function exitStatusFor(err: unknown): number {
  if (!(err instanceof NatdError)) return 1;
  switch (err.code) {
    case ErrorCodes.CONFIG: return 78; // EX_CONFIG
    case ErrorCodes.COMMAND: return 64; // EX_USAGE: unknown command, wrong arguments (the CLI's or the daemon's)
    case ErrorCodes.NO_DAEMON: return 69; // EX_UNAVAILABLE
    case ErrorCodes.BIND:
    case ErrorCodes.NATIVE: return 71; // EX_OSERR
    case ErrorCodes.BRIDGE:
    case ErrorCodes.NFT_APPLY:
    case ErrorCodes.NFT_VERIFY: return 70; // EX_SOFTWARE
    default: return 1;
  }
}
