/**
 * systemd-resolved integration: while natd runs, the host itself resolves VM names, because resolved sends
 * queries for natd's domain to natd on the bridge (what `resolvectl dns BR ADDR` + `resolvectl domain BR ~DOMAIN`
 * do by hand). On stop, `resolvectl revert BR` removes it again.
 *
 * The bridge is never made a default DNS route: natd's own upstream is often resolved's stub (127.0.0.53 in
 * resolv.conf), and resolved sending general queries to natd would make a loop.
 *
 * Nothing here is fatal: without resolved (or resolvectl) natd simply does not register, and a failing command is
 * logged and undone.
 */
import { stat } from 'node:fs/promises';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseIpv4 } from '../net/ipv4.js';
import { defaultExec, type Exec } from '../exec.js';

/** resolved's runtime directory: present exactly when it runs. */
export const RESOLVED_RUNTIME_DIR = '/run/systemd/resolve';

export interface ResolvedOptions {
  bridge: string;
  /** natd's DNS address on the bridge (the gateway) */
  address: string;
  /** natd's domain; without it only the server is registered (reverse lookups and bare names stay unrouted) */
  domain?: string;
  exec?: Exec;
  logger: Logger;
  /** whether resolved runs; default: RESOLVED_RUNTIME_DIR exists */
  isRunning?: () => Promise<boolean>;
}

export interface ResolvedRegistration {
  registered: boolean;
  /** Reverts the bridge's resolved settings; idempotent, never throws. */
  undo(): Promise<void>;
}

const DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const defaultIsRunning = (): Promise<boolean> =>
  stat(RESOLVED_RUNTIME_DIR).then(
    (s) => s.isDirectory(),
    () => false,
  );

const notRegistered: ResolvedRegistration = { registered: false, undo: async () => undefined };

/** Registers natd's DNS server and routing domain for the bridge with systemd-resolved, when it runs. */
export async function registerWithResolved(opts: ResolvedOptions): Promise<ResolvedRegistration> {
  if (parseIpv4(opts.address) === undefined) throw new NatdError(ErrorCodes.CONFIG, `resolved: ${JSON.stringify(opts.address)} is not an IPv4 address`);
  if (opts.domain !== undefined && !DOMAIN.test(opts.domain)) throw new NatdError(ErrorCodes.CONFIG, `resolved: ${JSON.stringify(opts.domain)} is not a domain name`);
  const exec = opts.exec ?? defaultExec;
  const { logger, bridge } = opts;

  if (!(await (opts.isRunning ?? defaultIsRunning)())) {
    logger.debug('systemd-resolved not running; not registering the bridge DNS', { bridge });
    return notRegistered;
  }

  let undone: Promise<void> | undefined;
  const undo = (): Promise<void> =>
    (undone ??= exec('resolvectl', ['revert', bridge]).then((r) => {
      if (r.code === 0) logger.info('systemd-resolved registration removed', { bridge });
      else logger.warn('resolvectl revert failed', { bridge, code: r.code, stderr: r.stderr.trim() });
    }));

  const steps: string[][] = [['dns', bridge, opts.address]];
  // '~' makes it a routing-only domain: only names under it go to natd; it is not added to the search list.
  if (opts.domain !== undefined) steps.push(['domain', bridge, `~${opts.domain}`]);
  for (const args of steps) {
    const r = await exec('resolvectl', args);
    if (r.code !== 0) {
      logger.warn('cannot register natd with systemd-resolved; the host will not resolve VM names', { command: `resolvectl ${args.join(' ')}`, code: r.code, stderr: r.stderr.trim() });
      if (args[0] !== 'dns') await undo();
      return notRegistered;
    }
  }
  // Older systemd (< 240) lacks default-route; there a link with a routing-only domain is not a default route anyway.
  const route = await exec('resolvectl', ['default-route', bridge, 'false']);
  if (route.code !== 0) logger.warn('resolvectl default-route failed; continuing', { bridge, stderr: route.stderr.trim() });

  logger.info('registered with systemd-resolved', { bridge, dns: opts.address, ...(opts.domain ? { domain: `~${opts.domain}` } : {}) });
  return { registered: true, undo };
}
