/** Runs the fake upstream (test/fixtures/fake-upstream.mjs) as a process in a namespace (by default the wan one, on UPLINK_WAN:53) until it listens. */
import path from 'node:path';
import { Topology, UPLINK_WAN, type Started } from './netns.js';
import { FIXTURES } from './paths.js';

export const FAKE_UPSTREAM = path.join(FIXTURES, 'fake-upstream.mjs');

export interface FakeUpstreamProcessOptions {
  /** default the wan namespace */
  ns?: string;
  /** `host:port` each; default UPLINK_WAN:53 */
  listen?: string[];
  log?: string;
  delayMs?: number;
  drop?: boolean;
}

/** Resolves once it prints `listening ...`; stopped (by PID) with the topology, or earlier with stop(). */
export function startFakeUpstreamIn(topology: Topology, options: FakeUpstreamProcessOptions = {}): Promise<Started> {
  const argv = [process.execPath, FAKE_UPSTREAM];
  for (const listen of options.listen ?? [`${UPLINK_WAN}:53`]) argv.push('--listen', listen);
  if (options.log) argv.push('--log', options.log);
  if (options.delayMs) argv.push('--delay-ms', String(options.delayMs));
  if (options.drop) argv.push('--drop');
  return topology.start(options.ns ?? topology.wan, argv, { ready: 'listening', stream: 'stdout', timeoutMs: 10_000, what: 'fake upstream' });
}
