/**
 * Crash-safe whole-file replacement: readers see either the old file or the new one, never half of either.
 * (Rewriting a file in place, as dnsmasq does with its leases file, leaves a torn file after a crash.)
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o640: state may name clients, keep it from other users). */
  mode?: number;
}

/**
 * Writes `data` to a temp file beside `path`, fsyncs it, renames it over `path`, then fsyncs the directory so the
 * rename itself survives a power cut. The temp file lives in the same directory because rename is only atomic
 * within one filesystem.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const handle = await open(temp, 'wx', options.mode ?? 0o640);
  let renamed = false;
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    renamed = true;
    await fsyncDirectory(dir);
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}

/** Makes a directory's entries (created, renamed, removed files) durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A state file holding a JSON array (the runtime forwards and records): [] when it does not exist; `undefined` when
 * it exists but is not a JSON array (the caller decides whether that is fatal).
 */
export async function readJsonArray(path: string): Promise<unknown[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
