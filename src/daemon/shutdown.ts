/** The daemon's closes, run in reverse of the order components registered them (that is, reverse start order). */
import type { Logger } from '../log.js';

export class ShutdownStack {
  private readonly closers: { name: string; close: () => Promise<void> | void }[] = [];

  constructor(private readonly logger: Logger) {}

  /** Registers the close of a component that has just started. */
  push(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  /** Runs every close once, newest first; one that fails is logged and the rest still run. */
  async closeAll(): Promise<void> {
    for (let c = this.closers.pop(); c; c = this.closers.pop()) {
      try {
        await c.close();
      } catch (err) {
        this.logger.warn('error while closing', { component: c.name, error: (err as Error).message });
      }
    }
  }
}
