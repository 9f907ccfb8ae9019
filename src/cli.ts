#!/usr/bin/env node
/**
 * natd's command line: the daemon (`natd --bridge virbr10`), `natd check-config`, and the subcommands that talk to
 * a running daemon over its control socket. Flags are parsed with node:util.parseArgs (commander's current major
 * needs Node 22); every error is one line naming the problem, with a non-zero exit status.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { readConfigFile, resolveConfig, type Config, type RawSettings } from './config.js';
import { exitStatusFor, ErrorCodes, NatdError } from './errors.js';
import { createLogger } from './log.js';
import { buildDaemon } from './daemon.js';
import { runControlCommand, CONTROL_COMMANDS, flagError } from './control/commands.js';
import { OPS_COMMANDS, runOpsCommand } from './ops/commands.js';
import { isEntryPoint } from './entrypoint.js';

const DAEMON_OPTIONS = {
  bridge: { type: 'string' },
  subnet: { type: 'string' },
  'dhcp-range': { type: 'string' },
  'lease-time': { type: 'string' },
  domain: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  'state-dir': { type: 'string' },
  'control-socket': { type: 'string' },
  config: { type: 'string' },
  forward: { type: 'string', multiple: true },
  hostsfile: { type: 'string' },
  'addn-hosts': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'bridge-mac': { type: 'string' },
  'cache-size': { type: 'string' },
  'no-dns': { type: 'boolean' },
  'no-firewall': { type: 'boolean' },
  'metrics-listen': { type: 'string' },
  'allow-ipv6-forward': { type: 'boolean' },
  'no-ping': { type: 'boolean' },
  'search-domain': { type: 'string', multiple: true },
  route: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies ParseArgsConfig['options'];

const HELP = `natd — DHCP, DNS and NAT for a VM bridge, in one process (replaces dnsmasq + iptables scripts)

Usage:
  natd --bridge NAME [options]          run the daemon for bridge NAME (created if missing)
  natd check-config --bridge NAME [...] validate flags/config without touching the system
  natd status|leases [--bridge NAME] [--json]
  natd reservations list|add|remove ... [--bridge NAME]
  natd forwards list|add|remove ...     [--bridge NAME]
  natd reload [--bridge NAME]
  natd metrics [--bridge NAME]          Prometheus text from the running daemon
  natd demo                             a safe first try in throwaway namespaces
  natd import-dnsmasq DNSMASQ.CONF [--state-dir DIR] [--config-out FILE] [--force]
                                        take over a dnsmasq set-up: config, reservations, leases
  natd libvirt-xml [--bridge NAME]      the <network> for virsh net-define, and a VM <interface>
  natd doctor [--bridge NAME]           find what else on the host would break DHCP, DNS or NAT

Daemon options:
  --bridge NAME            bridge to serve (required)
  --subnet CIDR            gateway address and prefix, e.g. 10.10.0.1/24 (default: the bridge's address,
                           or 10.10.0.1/24 when natd creates the bridge)
  --dhcp-range START-END   dynamic pool (default: .10 to the last host)
  --lease-time DURATION    3600, 90s, 30m, 1h, 1d (default 1h)
  --domain NAME            DNS domain for the guests' names, e.g. vm
  --upstream ADDR          upstream DNS server (repeatable; default: /etc/resolv.conf)
  --search-domain NAME     DHCP domain search list (repeatable; default: the --domain)
  --route NET/LEN=ROUTER   extra classless static route for the guests (repeatable), e.g. 192.168.50.0/24=10.10.0.2
  --forward SPEC           port forward [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT (repeatable)
  --hostsfile FILE         dnsmasq-style reservations: MAC,IP[,NAME] per line (re-read on SIGHUP)
  --addn-hosts FILE        extra DNS names in /etc/hosts format (repeatable; re-read on SIGHUP)
  --state-dir DIR          leases and runtime state (default /var/lib/natd/BRIDGE)
  --config FILE            JSON config file (same names, camelCase); flags win
  --log-level LEVEL        debug|info|warn|error (default info)
  --no-ping                offer new addresses without the conflict ping first (as dnsmasq --no-ping)
  --no-dns, --no-firewall  run without the DNS server / without the nftables table
  --allow-ipv6-forward     let IPv6 routed through the bridge pass (default: rejected)
  --metrics-listen ADDR:PORT  also serve Prometheus metrics over HTTP (always: natd metrics)

Examples:
  natd --bridge virbr10
  natd --bridge virbr10 --subnet 10.10.0.1/24 --domain vm --forward tcp:2222=web:22 --forward 80=10.10.0.5:80
  natd forwards add udp:5353=web:53 --bridge virbr10
  natd leases --bridge virbr10 --json
`;

function version(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (const candidate of [path.join(root, 'package.json'), path.join(root, '..', 'package.json')]) {
    try {
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return 'unknown';
}

type DaemonValues = ReturnType<typeof parseDaemonArgs>['values'];

function parseDaemonArgs(args: string[]) {
  try {
    return parseArgs({ args, options: DAEMON_OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw flagError(err);
  }
}

/** Flags → raw settings (same names as the config file). */
export function settingsFromFlags(v: DaemonValues): RawSettings {
  const cacheSize = v['cache-size'] !== undefined ? Number(v['cache-size']) : undefined;
  return {
    bridge: v.bridge,
    subnet: v.subnet,
    dhcpRange: v['dhcp-range'],
    leaseTime: v['lease-time'],
    domain: v.domain,
    upstreams: v.upstream,
    stateDir: v['state-dir'],
    controlSocket: v['control-socket'],
    forwards: v.forward,
    hostsfile: v.hostsfile,
    addnHosts: v['addn-hosts'],
    logLevel: v['log-level'],
    bridgeMac: v['bridge-mac'],
    cacheSize: cacheSize !== undefined && Number.isFinite(cacheSize) ? cacheSize : v['cache-size'],
    dns: v['no-dns'] ? false : undefined,
    firewall: v['no-firewall'] ? false : undefined,
    metricsListen: v['metrics-listen'],
    allowIpv6Forward: v['allow-ipv6-forward'] ? true : undefined,
    conflictProbe: v['no-ping'] ? false : undefined,
    searchDomains: v['search-domain'],
    routes: v.route,
  };
}

export function configFromArgs(values: DaemonValues): Config {
  const fileSettings = values.config ? readConfigFile(values.config) : {};
  if (values.bridge === undefined && fileSettings.bridge === undefined) {
    throw new NatdError(ErrorCodes.CONFIG, 'bridge: missing; give --bridge NAME (e.g. natd --bridge virbr10)');
  }
  return resolveConfig(settingsFromFlags(values), fileSettings, values.config);
}

async function runDaemon(values: DaemonValues): Promise<void> {
  const config = configFromArgs(values);
  const logger = createLogger({ level: config.logLevel });
  const daemon = buildDaemon(config, { logger, loadConfig: () => configFromArgs(values) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting at once', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('stopping', { signal });
    // the promise to systemd and operators: gone within 2 s even if nft or the disk hangs
    setTimeout(() => {
      logger.error('stop did not finish in time; exiting');
      process.exit(1);
    }, 1800).unref();
    daemon.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('error while stopping', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    let next: Config | undefined;
    try {
      next = configFromArgs(values);
    } catch (err) {
      logger.error('reload refused: configuration invalid, nothing changed', { error: (err as Error).message });
      return;
    }
    daemon.reload(next).catch((err: unknown) => logger.error('reload failed', { error: (err as Error).message }));
  });
  await daemon.start();
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'check-config') {
    const { values } = parseDaemonArgs(rest);
    const config = configFromArgs(values);
    process.stdout.write(`configuration OK for bridge ${config.bridge}\n`);
    return 0;
  }
  if (first !== undefined && CONTROL_COMMANDS.has(first)) return runControlCommand(first, rest);
  if (first === 'demo') return (await import('./demo.js')).runDemo();
  if (first !== undefined && OPS_COMMANDS.has(first)) return runOpsCommand(first, rest);
  if (first !== undefined && !first.startsWith('-')) {
    throw new NatdError(ErrorCodes.COMMAND, `unknown command "${first}"; see natd --help`);
  }
  const { values } = parseDaemonArgs(argv);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`natd ${version()}\n`);
    return 0;
  }
  await runDaemon(values);
  return -1; // keeps running
}

if (isEntryPoint(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (status) => {
      if (status >= 0) process.exitCode = status;
    },
    (err: unknown) => {
      const message = err instanceof NatdError ? err.message : (err as Error).stack ?? String(err);
      process.stderr.write(`natd: ${message}\n`);
      process.exit(exitStatusFor(err));
    },
  );
}
