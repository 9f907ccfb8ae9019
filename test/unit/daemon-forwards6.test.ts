/** issue 14: IPv6 forwards re-resolve their guest names after DHCPv6 lease changes (daemon/forwards6.ts). */
import { describe, expect, it } from 'vitest';
import { forwards6Refresher } from '../../src/daemon/forwards6.js';
import { recordingLogger } from '../support/recording-logger.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('forwards6Refresher', () => {
  it('reloads only when a forward\'s name answers differently; coalesces; a failed reload is logged and does not stop it', async () => {
    const addresses = new Map<string, string>([['web', 'fd00::5']]);
    const applied: (string | undefined)[] = [];
    let fail = false;
    let gate: (() => void) | undefined;
    const logger = recordingLogger();
    const refresh = forwards6Refresher({
      names: () => ['web'],
      resolver: () => { const snapshot = new Map(addresses); return (n) => snapshot.get(n); },
      reload: async (resolve) => {
        if (fail) throw new Error('no IPv6 address known for "web"');
        await new Promise<void>((r) => (gate = r));
        applied.push(resolve('web'));
      },
      logger,
    });
    refresh(); // nothing changed: no reload
    await tick();
    expect(gate).toBeUndefined();

    addresses.set('web', 'fd00::105'); // a lease for web
    refresh();
    addresses.set('web', 'fd00::106');
    refresh(); // during the reload: one more after it
    refresh();
    await tick();
    gate!();
    await tick();
    gate!();
    await tick();
    expect(applied).toEqual(['fd00::105', 'fd00::106']);

    addresses.delete('web');
    fail = true;
    refresh();
    await tick();
    expect(logger.lines.map((l) => l.msg)).toContain('cannot re-resolve IPv6 port forwards after a DHCPv6 lease change');
    fail = false;
    addresses.set('web', 'fd00::107');
    refresh();
    await tick();
    gate!();
    await tick();
    expect(applied).toEqual(['fd00::105', 'fd00::106', 'fd00::107']);
  });
});
