/**
 * issue 16: starts natd's TFTP server on the gateway address of the bridge (port 69, each transfer on an ephemeral
 * port of the same address, all bound to the bridge). The largest block is the bridge MTU - 32 (IP, UDP and TFTP
 * headers), as dnsmasq caps blksize, so no DATA packet is ever fragmented.
 */
import { readFileSync } from 'node:fs';
import type { TftpSettings } from '../tftp/settings.js';
import { TftpServer } from '../tftp/server.js';
import { DEFAULT_LIMITS } from '../tftp/options.js';
import type { BridgeInfo } from '../net/bridge.js';
import { formatIpv4 } from '../net/ipv4.js';
import type { Logger } from '../log.js';
import type { DaemonSystem } from './system.js';
import type { ShutdownStack } from './shutdown.js';
import { NatdError, ErrorCodes } from '../errors.js';

const TFTP_PORT = 69;
const HEADERS = 32;

function bridgeMtu(bridge: string): number {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${bridge}/mtu`, 'utf8').trim());
    return Number.isInteger(mtu) && mtu >= 576 ? mtu : 1500;
  } catch {
    return 1500;
  }
}

export async function startTftp(name: string, bridge: BridgeInfo, settings: TftpSettings, ctx: { sys: DaemonSystem; logger: Logger; stack: ShutdownStack }): Promise<TftpServer> {
  const open = ctx.sys.sockets.openTftp;
  if (!open) throw new NatdError(ErrorCodes.BIND, 'this system cannot open TFTP sockets');
  const address = formatIpv4(bridge.gateway);
  const server = new TftpServer({
    socket: await open(name, address, TFTP_PORT),
    openTransferSocket: () => open(name, address, 0),
    root: settings.root,
    maxTransfers: settings.maxTransfers,
    limits: { ...DEFAULT_LIMITS, maxBlockSize: Math.max(512, bridgeMtu(name) - HEADERS) },
    logger: ctx.logger,
    now: ctx.sys.now,
  });
  server.start();
  ctx.stack.push('tftp', () => server.close());
  ctx.logger.info('TFTP server listening', { address: `${address}:${TFTP_PORT}`, root: settings.root, maxTransfers: settings.maxTransfers });
  return server;
}
