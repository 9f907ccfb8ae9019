import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_BRIDGE, DEFAULT_LEASE_SECONDS, DEFAULT_RESOLV_CONF, DEFAULT_RUN_ROOT, DEFAULT_STATE_ROOT, DEFAULT_SUBNET, SETTING_DEFAULTS,
  defaultControlSocket, defaultStateDir,
} from '../../src/defaults.js';
import { resolveConfig } from '../../src/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const unit = readFileSync(path.join(ROOT, 'contrib', 'systemd', 'natd@.service'), 'utf8');
/** the man page's text with roff's escaped hyphens plain */
const man = readFileSync(path.join(ROOT, 'man', 'natd.8'), 'utf8').replace(/\\-/g, '-');

/** `Key=value` lines of the unit (the last one wins, as in systemd for these keys) */
function unitValue(key: string): string | undefined {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim()).at(-1);
}

/** "3600" as the man page and --help write it: 1h */
function durationText(seconds: number): string {
  return seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

describe('defaults.ts agrees with the systemd unit', () => {
  it('state and control socket live where the unit puts them', () => {
    expect(`/var/lib/${unitValue('StateDirectory')}`).toBe(defaultStateDir('%i'));
    expect(`/run/${unitValue('RuntimeDirectory')}`).toBe(DEFAULT_RUN_ROOT);
    const exec = unitValue('ExecStart')!;
    // systemd substitutes /var/lib/natd/%i and /run/natd for these
    expect(exec).toContain('--state-dir ${STATE_DIRECTORY}');
    expect(exec.replace('${RUNTIME_DIRECTORY}', DEFAULT_RUN_ROOT)).toContain(`--control-socket ${defaultControlSocket('%i')}`);
  });

  it('the unit example names the default bridge', () => {
    expect(unit).toContain(`natd@${DEFAULT_BRIDGE}`);
  });
});

describe('defaults.ts agrees with natd(8)', () => {
  it('FILES and the path flags', () => {
    expect(man).toContain(`.I ${defaultStateDir('BRIDGE')}/`);
    expect(man).toContain(`.I ${defaultControlSocket('BRIDGE')}`);
    expect(man).toContain(`(default ${DEFAULT_STATE_ROOT}/BRIDGE)`);
    expect(man).toContain(`(default ${DEFAULT_RUN_ROOT}/BRIDGE.sock)`);
  });

  it('the subnet, lease time and resolv.conf', () => {
    expect(man).toContain(`or ${DEFAULT_SUBNET} when natd creates`);
    expect(man).toContain(`gateway ${DEFAULT_SUBNET} by default`);
    expect(man).toContain(`(default ${durationText(DEFAULT_LEASE_SECONDS)})`);
    expect(man).toContain(`the servers of ${DEFAULT_RESOLV_CONF}`);
  });

  it('every numeric default the page states', () => {
    const d = SETTING_DEFAULTS;
    expect(man).toContain(`(default ${d.logLevel})`);
    expect(man).toContain(`DNS cache entries at most (default ${d.cacheSize})`);
    expect(man).toContain(`(default ${d.cacheMaxBytes / 1024 ** 2}M)`);
    expect(man).toContain(`all guests together (default ${d.dnsForwardMax})`);
    expect(man).toContain(`SERVFAIL at once (default ${d.dnsMaxPendingPerClient})`);
    expect(man).toContain(`of 64 (default ${d.dnsMaxTcpPerClient})`);
    expect(man).toContain(`quarantine at once (default ${d.dhcpMaxDeclinedPercent})`);
    expect(man).toContain(`(default ${d.dhcpProbeTimeoutMs})`);
  });
});

describe('the config applies defaults.ts', () => {
  it('a bridge alone gets the documented defaults', () => {
    const c = resolveConfig({ bridge: 'br7' });
    expect(c).toMatchObject({
      stateDir: defaultStateDir('br7'), controlSocket: defaultControlSocket('br7'), leaseTimeSeconds: DEFAULT_LEASE_SECONDS,
      resolvConf: DEFAULT_RESOLV_CONF, cacheSize: SETTING_DEFAULTS.cacheSize, cacheMaxBytes: SETTING_DEFAULTS.cacheMaxBytes,
      dnsForwardMax: SETTING_DEFAULTS.dnsForwardMax, dnsMaxPendingPerClient: SETTING_DEFAULTS.dnsMaxPendingPerClient,
      dnsMaxTcpPerClient: SETTING_DEFAULTS.dnsMaxTcpPerClient, dhcpMaxDeclinedPercent: SETTING_DEFAULTS.dhcpMaxDeclinedPercent,
      dhcpProbeTimeoutMs: SETTING_DEFAULTS.dhcpProbeTimeoutMs, logLevel: SETTING_DEFAULTS.logLevel, masqueradePorts: SETTING_DEFAULTS.masqueradePorts,
    });
  });
});
