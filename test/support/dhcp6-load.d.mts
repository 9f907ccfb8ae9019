/** Types of dhcp6-load.mjs (issue 14: the DHCPv6 load generator and client simulator). */
export interface Load6Options {
  device: string;
  /** link-local source addresses (fe80::b6:<n>), one socket each */
  sources: number;
  /** exchanges in flight at once */
  concurrency: number;
  /** exchanges to complete */
  count: number;
  maxMs: number;
  /** an exchange unanswered this long is a drop */
  timeoutMs: number;
  /** index of the first client (DUID-LL 02:b6 + a mix of the index) */
  firstClient: number;
  /** append "reply <duid> <address>" for every bound Reply */
  log?: string;
}

export interface Load6Result {
  started: number;
  completed: number;
  dropped: number;
  /** Advertises or Replies without an address */
  refused: number;
  elapsedSeconds: number;
  /** Solicit→Reply exchanges per second */
  completedPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  sendErrors: number;
  /** the generator's own CPU (user + system) per completed exchange: when it nears the server's, the load measures
   * the generator as much as the server */
  generatorCpuUsPerExchange: number;
}

export function sourceAddress(n: number): string;
export function addSources(device: string, sources: number): void;
export function runLoad6(opts: Load6Options): Promise<Load6Result>;
