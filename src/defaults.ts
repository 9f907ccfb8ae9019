/**
 * natd's defaults in one place: names, paths and values that the daemon, the CLI, the tools, the tests and the bench
 * all refer to. This module imports nothing, so the small CLI commands can use it without loading zod or the daemon.
 * The systemd unit (contrib/systemd/natd@.service) and the man page (man/natd.8) keep their own literal text; a unit
 * test (test/unit/defaults.test.ts) checks that they agree with what is here.
 */

/** The bridge the examples, `natd libvirt-xml` and the CLI subcommands use when none is given. */
export const DEFAULT_BRIDGE = 'virbr10';

/** Gateway address and prefix when natd creates the bridge (an existing bridge keeps its own address). */
export const DEFAULT_SUBNET = '10.10.0.1/24';

/** Lease time when none is configured (dnsmasq's default too). */
export const DEFAULT_LEASE_SECONDS = 3600;

/** Per-bridge state lives in DEFAULT_STATE_ROOT/BRIDGE (systemd: StateDirectory=natd/%i). */
export const DEFAULT_STATE_ROOT = '/var/lib/natd';
/** Control sockets live in DEFAULT_RUN_ROOT (systemd: RuntimeDirectory=natd). */
export const DEFAULT_RUN_ROOT = '/run/natd';

export function defaultStateDir(bridge: string): string {
  return `${DEFAULT_STATE_ROOT}/${bridge}`;
}

export function defaultControlSocket(bridge: string): string {
  return `${DEFAULT_RUN_ROOT}/${bridge}.sock`;
}

/** natd's own nftables table (family inet), one per bridge. */
export function tableNameFor(bridge: string): string {
  return `natd-${bridge}`;
}

/** Files in the state dir. */
export const STATE_FILES = {
  /** the lease journal (append-only JSON lines) */
  journal: 'leases.jsonl',
  /** one daemon per state dir: its pid */
  lock: 'leases.lock',
  /** reservations added at runtime, hostsfile format; not 'reservations': import-dnsmasq writes that one */
  runtimeReservations: 'runtime-reservations',
  /** port forwards added at runtime, a JSON list of specs */
  runtimeForwards: 'forwards.json',
  /** the hostsfile import-dnsmasq writes */
  importedReservations: 'reservations',
} as const;

/** Where the upstream DNS servers are read from when none is configured. */
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';

/** Values of the settings that have one (the zod schema's `.default(...)`s). */
export const SETTING_DEFAULTS = {
  cacheSize: 10_000,
  cacheMaxBytes: 32 * 1024 * 1024,
  masqueradePorts: [1024, 65535] as readonly [number, number],
  dnsForwardMax: 4096,
  dnsMaxPendingPerClient: 256,
  dnsMaxTcpPerClient: 8,
  dhcpMaxDeclinedPercent: 10,
  dhcpProbeTimeoutMs: 250,
  logLevel: 'info',
} as const;

/** How long the CLI waits for the daemon's answer on the control socket. */
export const CONTROL_TIMEOUT_MS = 10_000;
