/** The one polling wait of the tests and the benchmarks. */

/**
 * Calls `probe` every intervalMs until it returns something other than undefined or false (a Promise of it counts
 * too) and resolves with that; throws `<what>: not within <timeoutMs> ms` after. A probe that throws ends the wait
 * with its error (a process that died will not come back).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Reads `read()` every intervalMs until `ok(value)` and resolves with that value; throws `<what>: still <last value>
 * after <timeoutMs> ms` after, so a failing test says what it last saw (waitFor's probe form for a value to check).
 */
export async function waitUntil<T>(what: string, read: () => Promise<T> | T, ok: (value: T) => boolean, timeoutMs = 20_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)?.slice(0, 600)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
