/**
 * Issue 16's bench scenario (`npm run bench -- --scenario dhcp-options`): natd's DHCP closed loop (4 exchanges in
 * flight, from an empty lease table) as it runs today, and with 50 configured options (40 untagged, 10 tagged for
 * reservation groups, all --dhcp-option-force so every reply carries them) and 1,000 reservations in a hostsfile
 * (each with set:grpN). Runs alternate the two set-ups, each on fresh namespaces; the report gives both medians.
 * The options are encoded once per configuration: the per-reply cost is one map lookup and copying the values.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './dhcp-load.js';
import { dhcpLoad } from './server-run.js';
import { startServer } from './servers.js';
import { median } from './stats.js';
import { BenchNetwork } from './topology.js';

export interface DhcpOptionsBenchResult {
  variant: 'baseline' | 'options';
  run: number;
  perSecond: number;
  p50Ms: number;
  failed: number;
}

const LOOP_MS = 4000;
const CONCURRENCY = 4;
const GROUPS = 10;
const RESERVATIONS = 1000;

/** 40 untagged options (codes 160-199, two-byte values) and 10 tagged NTP servers, all forced. */
export function optionArgs(): string[] {
  const args: string[] = [];
  for (let i = 0; i < 40; i++) args.push('--dhcp-option-force', `${160 + i},${1000 + i}`);
  for (let g = 0; g < GROUPS; g++) args.push('--dhcp-option-force', `tag:grp${g},option:ntp-server,10.77.0.${2 + g}`);
  return args;
}

/** 1,000 reservations outside the dynamic pool (10.77.220.0 on), MACs the load generator never uses. */
export function reservationsFile(file: string): string {
  const lines: string[] = [];
  for (let i = 0; i < RESERVATIONS; i++) {
    const mac = `02:c0:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    lines.push(`${mac},10.77.${220 + (i >> 8)}.${(i & 255) || 1},set:grp${i % GROUPS}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function once(variant: DhcpOptionsBenchResult['variant'], run: number, natdArgs: string[], log: (line: string) => void): Promise<DhcpOptionsBenchResult> {
  const net = await BenchNetwork.create();
  try {
    const extra = variant === 'options' ? [...optionArgs(), '--hostsfile', reservationsFile(path.join(net.workDir, 'reservations'))] : [];
    const server = await startServer(net, 'natd', { instance: `options-${variant}`, extraArgs: [...natdArgs, ...extra] });
    try {
      const r: LoadResult = await dhcpLoad(net, {
        device: 'eth0', mode: 'closed', concurrency: CONCURRENCY, count: 1_000_000, 'max-ms': LOOP_MS, 'timeout-ms': 5000,
        'first-client': 1_000_000, 'hostname-prefix': 'c',
      }, LOOP_MS + 5000 + 30_000);
      log(`  natd ${variant}: ${r.completedPerSecond.toFixed(1)} exchanges/s, p50 ${r.latencyMs.p50.toFixed(2)} ms, ${r.dropped + r.naks} failed`);
      return { variant, run, perSecond: r.completedPerSecond, p50Ms: r.latencyMs.p50, failed: r.dropped + r.naks };
    } finally {
      await server.stop();
    }
  } finally {
    await net.destroy();
  }
}

export async function dhcpOptionsBench(runs: number, natdArgs: string[], log: (line: string) => void): Promise<DhcpOptionsBenchResult[]> {
  const results: DhcpOptionsBenchResult[] = [];
  for (let run = 1; run <= runs; run++) {
    const order: DhcpOptionsBenchResult['variant'][] = run % 2 === 1 ? ['baseline', 'options'] : ['options', 'baseline'];
    for (const variant of order) {
      log(`[dhcp-options ${run}/${runs}] ${variant}`);
      results.push(await once(variant, run, natdArgs, log));
    }
  }
  return results;
}

export function dhcpOptionsSummary(results: DhcpOptionsBenchResult[]): string {
  const of = (v: DhcpOptionsBenchResult['variant']) => results.filter((r) => r.variant === v);
  const base = median(of('baseline').map((r) => r.perSecond));
  const opts = median(of('options').map((r) => r.perSecond));
  const rows = results.map((r) => `  run ${r.run} ${r.variant.padEnd(8)} ${r.perSecond.toFixed(1)}/s  p50 ${r.p50Ms.toFixed(2)} ms  failed ${r.failed}`);
  return `DHCP closed loop (${CONCURRENCY} in flight, ${LOOP_MS / 1000} s, empty lease table), natd:\n${rows.join('\n')}\n` +
    `  median baseline ${base.toFixed(1)}/s, with 50 options + 1,000 reservations ${opts.toFixed(1)}/s ` +
    `(${((opts / base - 1) * 100).toFixed(1)}%)\n`;
}

/**
 * The same comparison without I/O (the closed loop above waits on the journal's fdatasync, so it shows the disk more
 * than the option engine): the core's DISCOVER → OFFER, REQUEST → ACK and the encoding of both replies, in process,
 * for `count` new clients asking for every option (PRL 1-254). `distRoot`: a build of natd (this one's, or another
 * commit's, for "today's figure"); `withOptions` needs a build that has the option engine.
 */
export async function coreLoop(distRoot: string, withOptions: boolean, count = 20_000): Promise<number> {
  const core = (await import(path.join(distRoot, 'src/dhcp/server-core.js'))) as typeof import('../../src/dhcp/server-core.js');
  const codec = (await import(path.join(distRoot, 'src/dhcp/codec.js'))) as typeof import('../../src/dhcp/codec.js');
  const extra: Record<string, unknown> = {};
  let reservations: { mac: string; address: number; tags?: string[] }[] = [];
  if (withOptions) {
    const spec = (await import(path.join(distRoot, 'src/dhcp/option-spec.js'))) as typeof import('../../src/dhcp/option-spec.js');
    const specs = [];
    for (let i = 0; i < 40; i++) specs.push(spec.parseOptionSpec(`${160 + i},${1000 + i}`, true));
    for (let g = 0; g < GROUPS; g++) specs.push(spec.parseOptionSpec(`tag:grp${g},option:ntp-server,10.77.0.${2 + g}`, true));
    extra.options = specs;
    reservations = Array.from({ length: RESERVATIONS }, (_, i) => ({
      mac: `02:c0:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      address: ((10 << 24) | (77 << 16) | ((220 + (i >> 8)) << 8) | ((i & 255) || 1)) >>> 0,
      tags: [`grp${i % GROUPS}`],
    }));
  }
  const server = ((10 << 24) | (77 << 16) | 1) >>> 0;
  const c = new core.DhcpServerCore({
    serverAddress: server, subnet: { network: (server & 0xffff0000) >>> 0, prefix: 16, mask: 0xffff0000, broadcast: (server | 0xffff) >>> 0 },
    router: server, dnsServers: [server], domain: 'vm', leaseTimeSeconds: 3600,
    rangeStart: (server + 9) >>> 0, rangeEnd: (server + 200 * 256) >>> 0, ...extra,
  } as ConstructorParameters<typeof core.DhcpServerCore>[0], reservations);
  const prl = Array.from({ length: 254 }, (_, i) => i + 1);
  const t0 = performance.now();
  const now = Date.now();
  for (let n = 0; n < count; n++) {
    // half the clients are reserved hosts (their tags and options apply), half new ones
    const mac = withOptions && n % 2 === 0 ? reservations[n % RESERVATIONS]!.mac : `02:b0:${[24, 16, 8, 0].map((s) => ((n >>> s) & 255).toString(16).padStart(2, '0')).join(':')}`;
    const chaddr = new Uint8Array(16);
    mac.split(':').forEach((b, i) => (chaddr[i] = parseInt(b, 16)));
    const base = { xid: n, flags: 0x8000, broadcast: true, ciaddr: 0, giaddr: 0, hops: 0, htype: 1, mac, chaddr, clientId: `01${mac.replace(/:/g, '')}`, parameterRequestList: prl, maxMessageSize: 1500 };
    const offer = c.handle({ ...base, type: 1 }, now);
    codec.encodeDhcpPacket(offer.reply!.packet, 1500);
    const ack = c.handle({ ...base, type: 3, serverId: server, requestedAddress: offer.reply!.packet.yiaddr }, now);
    codec.encodeDhcpPacket(ack.reply!.packet, 1500);
  }
  return count / ((performance.now() - t0) / 1000);
}
