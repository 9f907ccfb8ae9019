/**
 * Drives test/fixtures/dhcp-sim.mjs (many simulated DHCP clients of dhcp-clients.mjs in one vm namespace) and reads back what the
 * clients were promised; also a junk-datagram sender. Both run inside a vm namespace with a link-local address
 * on eth0, so the kernel can route 255.255.255.255 without the vm holding an address of the bridge subnet.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Topology } from './netns.js';
import { FIXTURES } from './paths.js';
import { tempDir } from './natd-process.js';

export interface DhcpSim {
  child: ChildProcess;
  logFile: string;
  /** the newest ACKed address per MAC, as logged by the clients */
  acked(): Map<string, string>;
  /** how many ACK and NAK lines the clients logged */
  counts(): { acks: number; naks: number };
  stop(): Promise<void>;
}

export interface DhcpSimOptions {
  clients: number;
  /** how often a bound client re-confirms its address (INIT-REBOOT), ms */
  reconfirmMs?: number;
  retryMs?: number;
  /** first two MAC bytes, distinct per simulator sharing a bridge */
  macPrefix?: string;
  /** ms between two clients' first DISCOVERs (default 5); 0: all at once */
  staggerMs?: number;
}

/**
 * Gives the vm's eth0 a link-local address and a route for 255.255.255.255 (once), so a plain UDP socket can
 * broadcast DHCP without a lease (real clients use raw sockets for that).
 */
export async function linkLocal(topology: Topology, ns: string, address = '169.254.77.2'): Promise<void> {
  const shown = await topology.runOk(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  if (!shown.includes(`${address}/`)) await topology.runOk(ns, ['ip', 'addr', 'add', `${address}/16`, 'dev', 'eth0']);
  await topology.runOk(ns, ['ip', 'route', 'replace', '255.255.255.255/32', 'dev', 'eth0']);
}

export async function startDhcpSim(topology: Topology, ns: string, opts: DhcpSimOptions): Promise<DhcpSim> {
  await linkLocal(topology, ns);
  const logFile = path.join(tempDir('dhcp-sim-'), 'acks.log');
  const { child } = await topology.start(ns, [
    process.execPath, path.join(FIXTURES, 'dhcp-sim.mjs'), '--clients', String(opts.clients), '--log', logFile,
    '--reconfirm-ms', String(opts.reconfirmMs ?? 300), '--retry-ms', String(opts.retryMs ?? 700),
    '--mac-prefix', opts.macPrefix ?? '02:5e', '--stagger-ms', String(opts.staggerMs ?? 5),
  ], { ready: 'ready', stream: 'stdout', what: 'dhcp-sim' });
  const lines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean) : []);
  return {
    child,
    logFile,
    acked() {
      const last = new Map<string, string>();
      for (const line of lines()) {
        const [kind, mac, address] = line.split(' ');
        if (kind === 'ack' && mac && address) last.set(mac, address);
      }
      return last;
    },
    counts() {
      const all = lines();
      return { acks: all.filter((l) => l.startsWith('ack ')).length, naks: all.filter((l) => l.startsWith('nak ')).length };
    },
    async stop() {
      await topology.stop(child);
    },
  };
}

/**
 * Sends `count` junk datagrams to 255.255.255.255:67 from a vm: random bytes of random length, truncated copies of
 * a valid DISCOVER, a DISCOVER with a wrong magic cookie, and BOOTREPLYs (op=2). Resolves with how many were sent.
 */
export async function sendJunk(topology: Topology, ns: string, count: number): Promise<number> {
  await linkLocal(topology, ns);
  const codec = path.join(FIXTURES, '..', '..', 'dist', 'src', 'dhcp', 'codec.js');
  const script = `
    const dgram = await import('node:dgram');
    const { randomBytes } = await import('node:crypto');
    const { encodeDhcpPacket, emptyPacket } = await import(${JSON.stringify(codec)});
    const p = emptyPacket(1);
    p.chaddr.set([2, 0x6a, 0, 0, 0, 1]);
    p.options = new Map([[53, Uint8Array.of(1)]]);
    const valid = encodeDhcpPacket(p);
    const kinds = [
      () => randomBytes(1 + Math.floor(Math.random() * 600)),
      () => valid.subarray(0, Math.floor(Math.random() * valid.length)),
      () => { const b = Buffer.from(valid); b.writeUInt32BE(0x63825364, 236); return b; },
      () => { const b = Buffer.from(valid); b[0] = 2; return b; },
    ];
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise((r) => s.bind(0, r));
    s.setBroadcast(true);
    let sent = 0;
    for (let i = 0; i < ${count}; i++) {
      await new Promise((r) => s.send(kinds[i % kinds.length](), 67, '255.255.255.255', (err) => { if (!err) sent++; r(); }));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    console.log(sent);
    s.close();
  `;
  const out = await topology.runOk(ns, [process.execPath, '--input-type=module', '-e', script], { timeoutMs: 60_000 });
  return Number(out.trim());
}

/** One DHCP packet as `tcpdump -n -vv` decoded it. */
export interface CapturedDhcp {
  /** position in the capture */
  index: number;
  src: string;
  dst: string;
  /** 'ok' correct, 'bad' wrong checksum, 'none' zero (no checksum), 'unknown' tcpdump said nothing */
  checksum: 'ok' | 'bad' | 'none' | 'unknown';
  op: 'request' | 'reply';
  xid: string;
  mac?: string;
  type?: string;
  ciaddr?: string;
  yiaddr?: string;
  requested?: string;
  serverId?: string;
}

/** Starts tcpdump writing DHCP packets of `device` in `ns` to a pcap file; resolves once it captures. */
export async function startCapture(topology: Topology, ns: string, device: string): Promise<{ file: string; child: ChildProcess }> {
  const file = path.join(tempDir('dhcp-cap-'), 'dhcp.pcap');
  const { child } = await topology.start(ns, ['tcpdump', '-i', device, '-n', '--immediate-mode', '-U', '-w', file, 'udp port 67 or udp port 68'],
    { ready: 'listening on', stream: 'stderr', timeoutMs: 10_000, what: 'tcpdump' });
  return { file, child };
}

/** Reads a capture (it may still be written) into packets. */
export async function readCapture(topology: Topology, ns: string, file: string): Promise<CapturedDhcp[]> {
  const r = await topology.run(ns, ['tcpdump', '-r', file, '-n', '-vv']);
  return parseTcpdumpDhcp(r.stdout);
}

export function parseTcpdumpDhcp(text: string): CapturedDhcp[] {
  const packets: CapturedDhcp[] = [];
  let current: CapturedDhcp | undefined;
  for (const line of text.split('\n')) {
    const header = /^\s+(\d+\.\d+\.\d+\.\d+)\.\d+ > (\d+\.\d+\.\d+\.\d+)\.\d+: (\[[^\]]*\])? ?BOOTP\/DHCP, (Request|Reply).*xid (0x[0-9a-f]+)/.exec(line);
    if (header) {
      const sum = header[3] ?? '';
      current = {
        index: packets.length,
        src: header[1]!,
        dst: header[2]!,
        checksum: sum.includes('sum ok') ? 'ok' : sum.includes('bad udp cksum') ? 'bad' : sum.includes('no cksum') ? 'none' : 'unknown',
        op: header[4] === 'Request' ? 'request' : 'reply',
        xid: header[5]!,
      };
      packets.push(current);
      continue;
    }
    if (!current) continue;
    const field = (re: RegExp) => re.exec(line)?.[1];
    current.mac ??= field(/Client-Ethernet-Address ([0-9a-f:]{17})/);
    current.ciaddr ??= field(/Client-IP (\S+)/);
    current.yiaddr ??= field(/Your-IP (\S+)/);
    current.type ??= field(/DHCP-Message \(53\), length 1: (\S+)/);
    current.requested ??= field(/Requested-IP \(50\), length 4: (\S+)/);
    current.serverId ??= field(/Server-ID \(54\), length 4: (\S+)/);
  }
  return packets;
}
