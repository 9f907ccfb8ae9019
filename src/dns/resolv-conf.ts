/**
 * Upstream servers from resolv.conf: a pure parser and a watcher that re-reads the file when it changes.
 *
 * resolv.conf is usually replaced by rename (NetworkManager, resolvconf) or is a symlink into /run whose target is
 * rewritten (systemd-resolved), so the watcher watches directories, not the file, and re-reads through the path.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { isIP } from 'node:net';
import { silentLogger, type Logger } from '../log.js';

export interface ResolvConf {
  /** IPv4 and IPv6 addresses in file order, duplicates removed (resolv.conf has no port syntax: always 53) */
  nameservers: string[];
  /** search list; `domain` and `search` are exclusive and the last one wins, as in glibc */
  search: string[];
}

/** Parses resolv.conf text. Never throws: unknown keywords and invalid addresses are skipped. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver') {
      const address = args[0];
      if (address !== undefined && isIP(address) !== 0 && !nameservers.includes(address)) nameservers.push(address);
    } else if (keyword === 'search' || keyword === 'domain') {
      const comment = args.findIndex((a) => a.startsWith('#') || a.startsWith(';'));
      search = (comment === -1 ? args : args.slice(0, comment)).map((a) => a.toLowerCase().replace(/\.$/, ''));
      if (keyword === 'domain') search = search.slice(0, 1);
    }
  }
  return { nameservers, search };
}

/** Drops natd's own listen addresses: forwarding to ourselves would loop. */
export function withoutOwnAddresses(conf: ResolvConf, own: readonly string[]): ResolvConf {
  return { ...conf, nameservers: conf.nameservers.filter((a) => !own.includes(a)) };
}

export interface WatchResolvConfOptions {
  /** natd's own addresses (the bridge gateway): never used as upstreams */
  ownAddresses?: readonly string[];
  /** quiet period after the last event before re-reading (default 100 ms): renames come in bursts */
  debounceMs?: number;
  /** safety-net re-read interval for filesystems where inotify misses events (default 30 s, 0 = off) */
  pollMs?: number;
  logger?: Logger;
}

/**
 * Calls `onChange` with the current content once at start and again whenever the parsed content changes.
 * A missing or unreadable file keeps the last known content (it is often briefly absent during a rename).
 * Returns a function that stops watching.
 */
export function watchResolvConf(
  path: string,
  onChange: (conf: ResolvConf) => void,
  options: WatchResolvConfOptions = {},
): () => void {
  const own = options.ownAddresses ?? [];
  const debounceMs = options.debounceMs ?? 100;
  const logger = options.logger ?? silentLogger;
  const names = new Set([basename(path)]);
  const dirs = directoryWatchers(names, () => schedule(), logger);
  const watchDir = dirs.add;
  let last: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const reload = async (): Promise<void> => {
    const text = await readFollowingLink(path, names, watchDir, logger);
    if (text === undefined || closed) return;
    const conf = withoutOwnAddresses(parseResolvConf(text), own);
    const fingerprint = JSON.stringify(conf);
    if (fingerprint === last) return;
    last = fingerprint;
    onChange(conf);
  };

  function schedule(): void {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, debounceMs);
  }

  watchDir(dirname(path));
  const poll = (options.pollMs ?? 30_000) > 0 ? setInterval(schedule, options.pollMs ?? 30_000) : undefined;
  poll?.unref();
  void reload();

  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    if (poll) clearInterval(poll);
    dirs.close();
  };
}

/**
 * The file's text, its symlink target's directory watched too (systemd-resolved rewrites the target, not the link);
 * undefined when it cannot be read (the last known content stays).
 */
async function readFollowingLink(path: string, names: Set<string>, watchDir: (dir: string) => void, logger: Logger): Promise<string | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    const target = await realpath(path);
    names.add(basename(target));
    watchDir(dirname(target));
    return text;
  } catch (err) {
    logger.debug('resolv.conf not readable, keeping the last upstreams', { path, error: String(err) });
    return undefined;
  }
}

/** fs.watch on the directories that may hold the file (its own, a symlink target's); events for `names` only. */
function directoryWatchers(names: ReadonlySet<string>, onEvent: () => void, logger: Logger): { add(dir: string): void; close(): void } {
  const watchers = new Map<string, FSWatcher>();
  let closed = false;
  return {
    add(dir) {
      if (watchers.has(dir) || closed) return;
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          // filename can be null on some platforms: then any event in the directory counts
          if (filename === null || names.has(filename.toString())) onEvent();
        });
        w.on('error', (err) => logger.warn('resolv.conf watcher failed', { dir, error: String(err) }));
        watchers.set(dir, w);
      } catch (err) {
        logger.warn('cannot watch resolv.conf directory, relying on polling', { dir, error: String(err) });
      }
    },
    close() {
      closed = true;
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
