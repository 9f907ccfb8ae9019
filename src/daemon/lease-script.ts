/**
 * `--dhcp-script PATH`: runs the operator's program for each lease event the way dnsmasq does — arguments
 * `add|old|del MAC IP [HOSTNAME]`, details in DNSMASQ_* environment variables, so a script written for dnsmasq (or
 * libvirt's leaseshelper-style tools) works unchanged; NATD_BRIDGE names the bridge too.
 *
 * It never blocks DHCP: events are queued (bounded; past the bound the newest are dropped, counted and logged) and
 * run one at a time, in order, in a child process without a shell (a guest-supplied hostname is one argv element,
 * never parsed). A run that outlives its timeout is killed with its whole process group (SIGTERM, then SIGKILL a
 * second later) and counted; the next event runs after it. The child gets a small fixed environment, not natd's.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';
import type { Config } from '../config.js';
import type { LeaseEvent, LeaseEvents } from './lease-events.js';

export interface LeaseScriptOptions {
  path: string;
  bridge: string;
  domain?: string;
  /** a run longer than this is killed, ms */
  timeoutMs: number;
  /** events waiting at most; more are dropped (default 10,000) */
  maxQueued?: number;
  logger: Logger;
}

export interface LeaseScriptStats {
  runs: number;
  failures: number;
  timeouts: number;
  dropped: number;
  queued: number;
}

const KILL_GRACE_MS = 1000;
const STOP_GRACE_MS = 2000;

/** The environment dnsmasq gives its script, for the fields natd knows. */
export function scriptEnvironment(event: LeaseEvent, bridge: string, domain: string | undefined, now: number): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    NATD_BRIDGE: bridge,
    DNSMASQ_INTERFACE: bridge,
    ...(event.iaid === undefined ? { DNSMASQ_CLIENT_ID: event.clientId } : {}),
    DNSMASQ_LEASE_EXPIRES: String(Math.floor(event.expiresAt / 1000)),
    DNSMASQ_TIME_REMAINING: String(Math.max(0, Math.floor((event.expiresAt - now) / 1000))),
  };
  if (domain) env.DNSMASQ_DOMAIN = domain;
  if (event.hostname) env.DNSMASQ_SUPPLIED_HOSTNAME = event.hostname;
  if (event.oldHostname) env.DNSMASQ_OLD_HOSTNAME = event.oldHostname;
  // issue 14: DHCPv6, as dnsmasq (the DUID is the MAC argument)
  if (event.iaid !== undefined) env.DNSMASQ_IAID = String(event.iaid);
  if (event.serverDuid !== undefined) env.DNSMASQ_SERVER_DUID = event.serverDuid; // colon hex, as dnsmasq prints it
  if (event.hwaddr !== undefined) env.DNSMASQ_MAC = event.hwaddr;
  return env;
}

export class LeaseScript {
  readonly stats: LeaseScriptStats = { runs: 0, failures: 0, timeouts: 0, dropped: 0, queued: 0 };
  private readonly queue: LeaseEvent[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private lastDropLog = 0;
  /** ends the run in progress (with its process group), if one is */
  private killCurrent: (() => void) | undefined;

  constructor(private readonly opts: LeaseScriptOptions) {}

  /** Queues an event (renewals are not a script's business, as in dnsmasq). Never blocks, never throws. */
  push(event: LeaseEvent): void {
    if (this.closed || event.action === 'renew') return;
    if (this.queue.length >= (this.opts.maxQueued ?? 10_000)) {
      this.stats.dropped++;
      const now = Date.now();
      if (now - this.lastDropLog > 60_000) {
        this.lastDropLog = now;
        this.opts.logger.warn('dhcp-script queue full: lease events dropped', { dropped: this.stats.dropped, script: this.opts.path });
      }
      return;
    }
    this.queue.push(event);
    this.stats.queued = this.queue.length;
    this.running ??= this.drain();
  }

  /**
   * 'drain' (a reload replaced the script): the queued events still run, each within its timeout. 'stop' (the
   * daemon stops, and systemd waits only seconds): queued events are dropped (counted and logged) and a run still
   * going after STOP_GRACE_MS is killed.
   */
  async close(mode: 'drain' | 'stop' = 'drain'): Promise<void> {
    this.closed = true;
    if (mode === 'stop' && this.queue.length > 0) {
      this.stats.dropped += this.queue.length;
      this.opts.logger.warn('dhcp-script: lease events not run at stop', { dropped: this.queue.length, script: this.opts.path });
      this.queue.length = 0;
      this.stats.queued = 0;
    }
    if (mode === 'stop' && this.running) {
      const grace = setTimeout(() => this.killCurrent?.(), STOP_GRACE_MS);
      await this.running;
      clearTimeout(grace);
    }
    await this.running;
  }

  private async drain(): Promise<void> {
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      this.stats.queued = this.queue.length;
      await this.run(event);
    }
    this.running = undefined;
  }

  private run(event: LeaseEvent): Promise<void> {
    const args = [event.action, event.mac, event.address, ...(event.hostname ? [event.hostname] : [])];
    const env = scriptEnvironment(event, this.opts.bridge, this.opts.domain, Date.now());
    this.stats.runs++;
    return new Promise((resolve) => {
      let stderr = '';
      let timedOut = false;
      // its own process group, so a timeout ends what the script started too (a `sleep` holding stderr open)
      const child = spawn(this.opts.path, args, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      const killGroup = (signal: NodeJS.Signals): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          // the group is gone already
        }
      };
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.length < 2048) stderr += chunk;
      });
      const kill = (): void => {
        killGroup('SIGTERM');
        setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
      };
      this.killCurrent = kill;
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, this.opts.timeoutMs);
      let finished = false;
      const done = (code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
        if (finished) return; // a spawn failure can report both 'error' and 'close'
        finished = true;
        this.killCurrent = undefined;
        clearTimeout(timer);
        if (timedOut) this.stats.timeouts++;
        if (timedOut || error || code !== 0) {
          this.stats.failures++;
          this.opts.logger.warn('dhcp-script failed', {
            script: this.opts.path,
            action: event.action,
            address: event.address,
            ...(timedOut ? { timeoutMs: this.opts.timeoutMs } : {}),
            ...(error ? { error: error.message } : { code, signal }),
            ...(stderr ? { stderr: stderr.trim().slice(0, 512) } : {}),
          });
        }
        resolve();
      };
      child.once('error', (err) => done(null, null, err));
      child.once('close', (code, signal) => done(code, signal));
    });
  }
}

/**
 * The daemon's lease script, following the config: none, or one runner for the configured path and timeout. A
 * reload that changes either lets the old runner finish its queue and starts a new one for the events after it.
 */
export class LeaseScriptSlot {
  private runner: LeaseScript | undefined;
  private key = '';
  private readonly unsubscribe: () => void;
  private readonly retired: Promise<void>[] = [];
  /** counts of runners that were replaced, so status and metrics stay cumulative */
  private readonly past: LeaseScriptStats = { runs: 0, failures: 0, timeouts: 0, dropped: 0, queued: 0 };

  constructor(
    events: LeaseEvents,
    config: Pick<Config, 'dhcpScript' | 'dhcpScriptTimeoutSeconds' | 'bridge' | 'domain'>,
    private readonly logger: Logger,
  ) {
    this.configure(config);
    this.unsubscribe = events.subscribe((event) => this.runner?.push(event));
  }

  configure(config: Pick<Config, 'dhcpScript' | 'dhcpScriptTimeoutSeconds' | 'bridge' | 'domain'>): void {
    const key = config.dhcpScript === undefined ? '' : `${config.dhcpScript}\0${config.dhcpScriptTimeoutSeconds}\0${config.domain ?? ''}`;
    if (key === this.key) return;
    this.key = key;
    if (this.runner) this.retire(this.runner);
    this.runner =
      config.dhcpScript === undefined
        ? undefined
        : new LeaseScript({
            path: config.dhcpScript,
            bridge: config.bridge,
            ...(config.domain ? { domain: config.domain } : {}),
            timeoutMs: config.dhcpScriptTimeoutSeconds * 1000,
            logger: this.logger,
          });
  }

  /** undefined when no script is configured */
  stats(): LeaseScriptStats | undefined {
    if (!this.runner) return this.past.runs > 0 ? { ...this.past } : undefined;
    const now = this.runner.stats;
    return {
      runs: this.past.runs + now.runs,
      failures: this.past.failures + now.failures,
      timeouts: this.past.timeouts + now.timeouts,
      dropped: this.past.dropped + now.dropped,
      queued: now.queued,
    };
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (this.runner) this.retire(this.runner, 'stop');
    this.runner = undefined;
    await Promise.all(this.retired);
  }

  private retire(runner: LeaseScript, mode: 'drain' | 'stop' = 'drain'): void {
    this.retired.push(
      runner.close(mode).then(() => {
        this.past.runs += runner.stats.runs;
        this.past.failures += runner.stats.failures;
        this.past.timeouts += runner.stats.timeouts;
        this.past.dropped += runner.stats.dropped;
      }),
    );
  }
}
