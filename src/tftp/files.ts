/**
 * The TFTP root: turning a requested name into an open regular file inside the root, and reading it as a stream of
 * blocks.
 *
 * How a name cannot escape the root: the name is checked first (no absolute path, no `..` component, no NUL, no
 * backslash, bounded length), then the file is opened (following symlinks, O_NONBLOCK so a FIFO cannot block the
 * open, O_NOCTTY), and THEN the opened file itself is checked: `fstat` says it is a regular file readable by everyone
 * (the files dnsmasq would serve after dropping privileges: natd runs as root and must not publish a 0600 file an
 * operator left in the root), and `/proc/self/fd/N` names the path of the inode actually opened, which must be inside
 * the root's real path. Checking after the open is what makes it race-free: a check of the path before opening
 * (realpath, lstat) can be defeated by a symlink swapped in between, and Node has no openat2(RESOLVE_BENEATH);
 * O_NOFOLLOW alone would only cover the last component and would refuse harmless symlinks inside the root (a
 * `pxelinux.cfg/default` link to a file next to it). A hard link inside the root to a file elsewhere is served: from
 * the file system's view it is inside the root, and only root could have made it.
 */
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';

export type OpenRefusal =
  | 'bad-name'
  | 'absolute-path'
  | 'dot-dot'
  | 'not-found'
  | 'outside-root'
  | 'not-regular'
  | 'not-world-readable'
  | 'open-failed';

export type OpenResult = { ok: true; file: OpenedFile } | { ok: false; reason: OpenRefusal };

export interface OpenedFile {
  handle: fsp.FileHandle;
  size: number;
  /** path inside the root, for logs */
  name: string;
}

/** Longer names are no PXE file (the RRQ itself must fit in 512 bytes by RFC 2347). */
const MAX_NAME_LENGTH = 255;
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Why a requested name is refused before touching the file system, or undefined when it may be looked up. */
export function nameProblem(name: string): OpenRefusal | undefined {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || name.includes('\0') || name.includes('\\')) return 'bad-name';
  if (name.startsWith('/')) return 'absolute-path';
  if (name.split('/').some((part) => part === '..')) return 'dot-dot';
  return undefined;
}

/** `rootReal` must be the root's real path (fs.realpath at start). */
export async function openInRoot(rootReal: string, name: string): Promise<OpenResult> {
  const problem = nameProblem(name);
  if (problem) return { ok: false, reason: problem };
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path.join(rootReal, name), OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' || code === 'ENOTDIR' ? 'not-found' : 'open-failed' };
  }
  const refusal = await checkOpened(handle, rootReal).catch((): OpenRefusal => 'open-failed');
  if (typeof refusal === 'string') {
    await handle.close().catch(() => undefined);
    return { ok: false, reason: refusal };
  }
  return { ok: true, file: { handle, size: refusal.size, name } };
}

async function checkOpened(handle: fsp.FileHandle, rootReal: string): Promise<OpenRefusal | { size: number }> {
  const real = await fsp.readlink(`/proc/self/fd/${handle.fd}`);
  const prefix = rootReal.endsWith('/') ? rootReal : `${rootReal}/`;
  if (!real.startsWith(prefix)) return 'outside-root';
  const stat = await handle.stat();
  if (!stat.isFile()) return 'not-regular';
  if ((stat.mode & 0o004) === 0) return 'not-world-readable';
  return { size: stat.size };
}

// ---------------------------------------------------------------------------------------------------------------
// the block stream

/** Bytes read from the file per read call: a few windows' worth, so a transfer reads the disk in large pieces. */
const READ_CHUNK = 256 * 1024;

/**
 * The transfer's bytes as blocks, read forward only: a transfer never needs anything before the last acknowledged
 * block, so the buffer holds from there on, and netascii conversion (which changes every later offset) stays a
 * simple forward pass. `size` is the length at open; a file that shrinks meanwhile makes a read fail.
 */
export class BlockStream {
  /** converted bytes from stream offset `start` on */
  private buffer: Buffer = Buffer.alloc(0);
  private start = 0;
  /** next file offset to read */
  private filePosition = 0;
  private eof = false;

  constructor(
    private readonly handle: fsp.FileHandle,
    private readonly size: number,
    private readonly blockSize: number,
    private readonly netascii: boolean,
  ) {}

  /**
   * Blocks `from`..`to` (1-based, inclusive) as views into the buffer, fewer when the stream ends first; the last
   * returned block is shorter than blockSize exactly when it is the final one. Drops what lies before block `from`.
   */
  async blocks(from: number, to: number): Promise<Buffer[]> {
    this.dropBefore(from);
    const end = to * this.blockSize;
    while (this.start + this.buffer.length < end && !this.eof) await this.readMore();
    return this.slice(from, to);
  }

  /** The same without waiting, when the window is already in memory (the hot path); undefined when a read is due. */
  bufferedBlocks(from: number, to: number): Buffer[] | undefined {
    this.dropBefore(from);
    if (this.start + this.buffer.length < to * this.blockSize && !this.eof) return undefined;
    return this.slice(from, to);
  }

  private dropBefore(from: number): void {
    const first = (from - 1) * this.blockSize;
    if (first > this.start) {
      this.buffer = this.buffer.subarray(Math.min(first - this.start, this.buffer.length));
      this.start = first;
    }
  }

  private slice(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    for (let b = from; b <= to; b++) {
      const offset = (b - 1) * this.blockSize - this.start;
      if (offset > this.buffer.length) break;
      const block = this.buffer.subarray(offset, Math.min(offset + this.blockSize, this.buffer.length));
      out.push(block);
      if (block.length < this.blockSize) break;
    }
    return out;
  }

  private async readMore(): Promise<void> {
    const want = Math.min(READ_CHUNK, this.size - this.filePosition);
    if (want <= 0) {
      this.eof = true;
      return;
    }
    const chunk = Buffer.allocUnsafe(want);
    const { bytesRead } = await this.handle.read(chunk, 0, want, this.filePosition);
    if (bytesRead < want) throw new Error('file shrank during the transfer');
    this.filePosition += bytesRead;
    const data = this.netascii ? toNetascii(chunk) : chunk;
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
  }
}

/** RFC 764 netascii as tftp-hpa sends it: LF becomes CR LF, CR becomes CR NUL. Stateless per byte. */
export function toNetascii(data: Buffer): Buffer {
  let extra = 0;
  for (const byte of data) if (byte === 0x0a || byte === 0x0d) extra++;
  if (extra === 0) return data;
  const out = Buffer.allocUnsafe(data.length + extra);
  let o = 0;
  for (const byte of data) {
    if (byte === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (byte === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else out[o++] = byte;
  }
  return out;
}
