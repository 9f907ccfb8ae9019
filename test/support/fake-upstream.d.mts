/** Types of fake-upstream.mjs (plain JS so namespaces can run it without a build step). */
export interface FakeUpstreamOptions {
  /** `host:port` (IPv6 as `[addr]:port`); port 0 picks one, shared by UDP and TCP. Default 127.0.0.1:0. */
  listen?: string[];
  /** appends `<transport> <name> <TYPE>` per query */
  log?: string;
  /** keep those lines in `queries` too (default true) */
  keepQueries?: boolean;
  /** delays every answer this long */
  delayMs?: number;
  /** logs queries but never answers */
  drop?: boolean;
}

export interface FakeUpstream {
  /** the bound addresses, `host:port` each, in the order asked */
  addresses: string[];
  /** the port of the first address */
  port: number;
  /** `<transport> <name> <TYPE>` per query so far (empty with keepQueries: false) */
  queries: string[];
  close(): void;
}

export function startFakeUpstream(options?: FakeUpstreamOptions): Promise<FakeUpstream>;
export function runFakeUpstreamCli(argv: string[]): Promise<void>;
