/** issue 14: IPv6 forwards re-resolve their guest names after guest address changes, rate-limited (daemon/forwards6.ts). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { forwards6Refresher } from '../../src/daemon/forwards6.js';
import { recordingLogger } from '../support/recording-logger.js';

describe('forwards6Refresher', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('reloads only when a forward\'s name answers differently; coalesces; a failed reload is logged and does not stop it', async () => {
    const addresses = new Map<string, string>([['web', 'fd00::5']]);
    const applied: (string | undefined)[] = [];
    let fail = false;
    let gate: (() => void) | undefined;
    const logger = recordingLogger();
    const refresher = forwards6Refresher({
      names: () => ['web'],
      resolver: () => { const snapshot = new Map(addresses); return (n) => snapshot.get(n); },
      reload: async (resolve) => {
        if (fail) throw new Error('no IPv6 address known for "web"');
        await new Promise<void>((r) => (gate = r));
        applied.push(resolve('web'));
      },
      logger,
      now: () => Date.now(),
    });
    const { refresh } = refresher;
    refresh(); // nothing changed: no reload
    await vi.advanceTimersByTimeAsync(5000);
    expect(gate).toBeUndefined();

    addresses.set('web', 'fd00::105'); // a lease for web
    refresh();
    await vi.advanceTimersByTimeAsync(0);
    addresses.set('web', 'fd00::106');
    refresh(); // during the reload: one more after it
    refresh();
    gate!();
    await vi.advanceTimersByTimeAsync(1000);
    gate!();
    await vi.advanceTimersByTimeAsync(0);
    expect(applied).toEqual(['fd00::105', 'fd00::106']);

    addresses.delete('web');
    fail = true;
    refresh();
    await vi.advanceTimersByTimeAsync(1000);
    expect(logger.lines.map((l) => l.msg)).toContain('cannot re-resolve IPv6 port forwards after a guest address change');
    fail = false;
    addresses.set('web', 'fd00::107');
    refresh();
    await vi.advanceTimersByTimeAsync(1000);
    gate!();
    await vi.advanceTimersByTimeAsync(0);
    expect(applied).toEqual(['fd00::105', 'fd00::106', 'fd00::107']);
    expect(refresher.stats()).toMatchObject({ reloads: 4, failures: 1 });
  });

  it('a guest churning its address thousands of times a second causes at most one reload per interval, with the last answer', async () => {
    let n = 0;
    const reloads: { at: number; address: string | undefined }[] = [];
    const refresher = forwards6Refresher({
      names: () => ['web', 'db'],
      resolver: () => { const now = n; return (name) => (name === 'web' ? `fd00::${(now % 0xfff).toString(16)}` : undefined); },
      reload: async (resolve) => { reloads.push({ at: Date.now(), address: resolve('web') }); },
      logger: recordingLogger(),
      minIntervalMs: 1000,
      now: () => Date.now(),
    });
    const start = Date.now();
    // 10 s of churn: a new address every millisecond
    for (let ms = 0; ms < 10_000; ms++) {
      n++;
      refresher.refresh();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(2000);
    const s = refresher.stats();
    expect(s.requests).toBe(10_000);
    expect(s.reloads).toBe(reloads.length);
    expect(reloads.length).toBeGreaterThanOrEqual(9);
    expect(reloads.length).toBeLessThanOrEqual(12); // 10 s + the tail, at most one a second
    for (let i = 1; i < reloads.length; i++) expect(reloads[i]!.at - reloads[i - 1]!.at).toBeGreaterThanOrEqual(1000);
    expect(s.coalesced).toBeGreaterThan(9_900);
    expect(reloads.at(-1)!.address).toBe(`fd00::${(n % 0xfff).toString(16)}`); // the last answer won
    expect(reloads[0]!.at - start).toBeLessThan(10); // the first change is applied at once
    refresher.close();
  });
});
