#!/usr/bin/env node
/**
 * Times natd's nftables work with natd's own code (dist/src/nft), without a daemon around it. Run it inside the
 * benchmark's host namespace only (it creates and deletes an nft table there):
 *
 *   ip netns exec <host-ns> node build/bench/lib/nft-timing.js --repeat 10
 *
 * Prints one JSON line (NftTiming): medians in milliseconds of
 *   fullApply        one full-apply batch (`add table; delete table; add table; ...`) through `nft -j -f`
 *   fullApplyVerify  the same plus the read-back check natd does at start and reload (applyAndVerify)
 *   forwardAdd       one port forward added at runtime (one element batch: two map elements)
 *   forwardRemove    the same forward removed again
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { applyAndVerify, applyBatch, deleteTable } from '../../src/nft/apply.js';
import { buildForwardChange, buildRuleset, TABLE_FAMILY, type PortForward, type RulesetInput } from '../../src/nft/ruleset.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { median } from './stats.js';
import { assertInsideNamespace } from './netns-guard.js';
import { isEntryPoint } from '../../src/entrypoint.js';

export interface NftTiming {
  repeat: number;
  forwardsInTable: number;
  fullApply: number;
  fullApplyVerify: number;
  forwardAdd: number;
  forwardRemove: number;
}

const TABLE = 'natd-benchnft';
/** A table with a realistic number of forwards already in it (a host with a few dozen services forwarded). */
const EXISTING_FORWARDS = 20;

function input(bridge: string): RulesetInput {
  const gateway = parseIpv4('10.77.0.1')!;
  const forwards: PortForward[] = Array.from({ length: EXISTING_FORWARDS }, (_, i) => ({
    protocol: i % 2 ? 'udp' : 'tcp',
    hostPort: 20_000 + i,
    guestAddress: gateway + 10 + i,
    guestPort: 22,
  }));
  return { table: TABLE, bridge, subnet: makeSubnet(gateway, 16), gateway, masqueradePorts: [1024, 65535], forwards };
}

async function timed(action: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await action();
  return performance.now() - t0;
}

export async function timeNft(bridge: string, repeat: number): Promise<NftTiming> {
  assertInsideNamespace('nft-timing');
  const base = input(bridge);
  const extra: PortForward = { protocol: 'tcp', hostPort: 8080, guestAddress: base.gateway + 200, guestPort: 80 };
  const samples = { fullApply: [] as number[], fullApplyVerify: [] as number[], forwardAdd: [] as number[], forwardRemove: [] as number[] };
  try {
    for (let i = 0; i < repeat; i++) {
      samples.fullApply.push(await timed(() => applyBatch(buildRuleset(base))));
      samples.fullApplyVerify.push(await timed(() => applyAndVerify(base)));
      samples.forwardAdd.push(await timed(() => applyBatch(buildForwardChange(base, [extra], []))));
      samples.forwardRemove.push(await timed(() => applyBatch(buildForwardChange(base, [], [extra]))));
    }
  } finally {
    await deleteTable(TABLE_FAMILY, TABLE);
  }
  return {
    repeat,
    forwardsInTable: EXISTING_FORWARDS,
    fullApply: median(samples.fullApply),
    fullApplyVerify: median(samples.fullApplyVerify),
    forwardAdd: median(samples.forwardAdd),
    forwardRemove: median(samples.forwardRemove),
  };
}


if (isEntryPoint(import.meta.url)) {
  const { values } = parseArgs({ options: { repeat: { type: 'string', default: '10' }, bridge: { type: 'string', default: 'br0' } } });
  timeNft(values.bridge!, Math.max(1, Number(values.repeat) || 10)).then(
    (timing) => process.stdout.write(JSON.stringify(timing) + '\n'),
    (err: unknown) => {
      process.stderr.write(`nft-timing: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
