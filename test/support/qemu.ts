/**
 * A QEMU machine on a tap port of the bridge, booting from its NIC (QEMU's own iPXE ROM: no guest image needed), its
 * serial console written to a file. TCG, not KVM: under this machine's (nested) KVM iPXE stalled at its Ctrl-B
 * prompt, and TCG needs nothing from the host. -nographic makes SeaBIOS and iPXE print to the serial port.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BRIDGE, type Topology } from './netns.js';
import { tempDir } from './natd-process.js';

export interface QemuNic {
  model: string;
  mac: string;
  tap: string;
}

export class QemuGuest {
  private readonly serial = path.join(tempDir('qemu-'), 'serial.txt');
  private child: ChildProcess | undefined;

  constructor(private readonly topo: Topology, readonly guest: QemuNic) {}

  async start(): Promise<void> {
    const { tap, model, mac } = this.guest;
    await this.topo.runOk(this.topo.host, ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await this.topo.runOk(this.topo.host, ['ip', 'link', 'set', tap, 'master', BRIDGE, 'up']);
    this.child = this.topo.spawn(this.topo.host, [
      'qemu-system-x86_64', '-accel', 'tcg', '-m', '64', '-nodefaults', '-nographic', '-serial', `file:${this.serial}`, '-boot', 'n',
      '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `${model},netdev=n0,mac=${mac}`,
    ]);
    this.child.stdout!.resume();
    this.child.stderr!.resume();
  }

  /** What the console showed so far, without terminal escapes. */
  get console(): string {
    try {
      return readFileSync(this.serial, 'latin1').replace(/\x1b\[[0-9;?]*[a-zA-Z]|\r/g, '');
    } catch {
      return '';
    }
  }

  /** Resolves with the first match of `pattern` on the console; throws with the console's tail after timeoutMs. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.console);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`${this.guest.model}: ${pattern} not seen within ${timeoutMs} ms; console:\n${this.console.slice(-1200)}`);
      await sleep(250);
    }
  }

  /** The address iPXE configured, from its "net0: ADDR/MASK gw GATEWAY" line. */
  async configuredAddress(timeoutMs: number): Promise<{ address: string; mask: string; gateway: string }> {
    const m = await this.waitFor(/net0: (\d+\.\d+\.\d+\.\d+)\/(\d+\.\d+\.\d+\.\d+) gw (\d+\.\d+\.\d+\.\d+)/, timeoutMs);
    return { address: m[1]!, mask: m[2]!, gateway: m[3]! };
  }

  async stop(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 2000);
  }
}
