/**
 * issue 14: natd as the bridge's IPv6 router (RFC 4861 6.2): unsolicited Router Advertisements every 200-600 s
 * (randomised), the first three at most 16 s apart; an answer to each valid Router Solicitation within 0.5 s; on
 * close a last advertisement with router lifetime 0, so guests drop natd as default router at once.
 *
 * Rate limits (a guest may flood solicitations): a solicitation from an address gets a unicast answer, at most one
 * per address every 3 s (MIN_DELAY_BETWEEN_RAS), and at most MAX_PENDING_UNICAST answers wait at once; one from
 * the unspecified address (a host without an address yet) gets a multicast answer, at most one every 3 s, which
 * all solicitations meanwhile share. Every other solicitation is counted and dropped; malformed ones too (ra.ts).
 *
 * A failed send (the bridge's link-local address still tentative, as right after the bridge gets carrier: natd's
 * socket sends RAs only from it, RFC 4861 6.1.2; or no carrier yet) is followed by a multicast RA MIN_DELAY_BETWEEN_RAS
 * later, at most MAX_SEND_RETRIES times in a row, so guests that solicited meanwhile are not left to the next
 * unsolicited RA (16 s, or up to 600 s later).
 */
import type { Logger } from '../log.js';
import { formatIpv6, type Ipv6Bytes } from './address.js';
import { parseRouterSolicitation } from './ra.js';

export const MIN_RTR_ADV_INTERVAL_MS = 200_000;
export const MAX_RTR_ADV_INTERVAL_MS = 600_000;
export const MAX_INITIAL_RTR_ADVERT_INTERVAL_MS = 16_000;
export const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
export const MAX_RA_DELAY_MS = 500;
export const MIN_DELAY_BETWEEN_RAS_MS = 3_000;
const MAX_PENDING_UNICAST = 64;
/** failed sends in a row followed by a retry (3 s apart: about a minute); then only the regular schedule */
export const MAX_SEND_RETRIES = 20;
const MAX_REMEMBERED_SOLICITORS = 4096;

const ALL_NODES = Uint8Array.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

export interface RaSocket {
  send(destination: Uint8Array, message: Buffer): void;
  close(): void;
}

export interface RaServerOptions {
  /** opens the socket; solicitations come back through the callback */
  open(onSolicitation: (data: Buffer, source: Buffer, hopLimit: number) => void): RaSocket;
  /** the advertisement to send; final: the last one, router lifetime 0 */
  advertisement(final: boolean): Buffer;
  logger: Logger;
  now?: () => number;
  random?: () => number;
}

export interface RaStats {
  advertisementsSent: number;
  solicitationsReceived: number;
  /** malformed solicitations (RFC 4861 6.1.1), dropped */
  solicitationsInvalid: number;
  /** valid solicitations not answered because of the rate limits */
  solicitationsRateLimited: number;
  sendFailures: number;
}

export class RaServer {
  private socket: RaSocket | undefined;
  private unsolicitedTimer: NodeJS.Timeout | undefined;
  private multicastTimer: NodeJS.Timeout | undefined;
  private readonly unicastTimers = new Set<NodeJS.Timeout>();
  /** last answer (or pending answer) time per solicitor address, hex */
  private readonly answered = new Map<string, number>();
  private lastMulticastAt = -Infinity;
  private initialSent = 0;
  private failuresInARow = 0;
  private closed = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly counts: RaStats = { advertisementsSent: 0, solicitationsReceived: 0, solicitationsInvalid: 0, solicitationsRateLimited: 0, sendFailures: 0 };

  constructor(private readonly opts: RaServerOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  start(): void {
    this.socket = this.opts.open((data, source, hopLimit) => this.onSolicitation(data, source, hopLimit));
    this.sendUnsolicited();
  }

  stats(): RaStats {
    return { ...this.counts };
  }

  /** Stops the timers, sends the final advertisement (router lifetime 0) and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.unsolicitedTimer);
    clearTimeout(this.multicastTimer);
    for (const t of this.unicastTimers) clearTimeout(t);
    this.unicastTimers.clear();
    this.send(ALL_NODES, true);
    this.socket?.close();
  }

  private sendUnsolicited(): void {
    if (this.closed) return;
    this.sendMulticast();
    let interval = MIN_RTR_ADV_INTERVAL_MS + this.random() * (MAX_RTR_ADV_INTERVAL_MS - MIN_RTR_ADV_INTERVAL_MS);
    if (++this.initialSent < MAX_INITIAL_RTR_ADVERTISEMENTS) interval = Math.min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL_MS);
    this.unsolicitedTimer = setTimeout(() => this.sendUnsolicited(), interval);
    this.unsolicitedTimer.unref();
  }

  private sendMulticast(): void {
    this.lastMulticastAt = this.now();
    this.send(ALL_NODES, false);
  }

  private send(destination: Uint8Array, final: boolean): void {
    if (!this.socket) return;
    try {
      this.socket.send(destination, this.opts.advertisement(final));
      this.counts.advertisementsSent++;
      this.failuresInARow = 0;
    } catch (err) {
      // no carrier yet (a bridge without ports), or the link-local address is tentative or missing: retried (header)
      this.counts.sendFailures++;
      this.opts.logger.warnLimited('ipv6-ra-send', 'cannot send a router advertisement', { to: formatIpv6(destination), reason: (err as Error).message });
      if (!final && ++this.failuresInARow <= MAX_SEND_RETRIES) this.answerMulticast(MIN_DELAY_BETWEEN_RAS_MS);
    }
  }

  /** Called for every packet the socket passes (only ICMPv6 type 133 gets through the kernel filter). */
  onSolicitation(data: Uint8Array, source: Ipv6Bytes, hopLimit: number): void {
    if (this.closed) return;
    this.counts.solicitationsReceived++;
    const verdict = parseRouterSolicitation(data, source, hopLimit);
    if (!verdict.ok) {
      this.counts.solicitationsInvalid++;
      this.opts.logger.warnLimited('ipv6-rs-invalid', 'dropped an invalid router solicitation', { from: formatIpv6(source), reason: verdict.reason });
      return;
    }
    const delay = this.random() * MAX_RA_DELAY_MS;
    if (source.every((b) => b === 0)) this.answerMulticast(delay);
    else this.answerUnicast(Uint8Array.from(source), delay);
  }

  private answerMulticast(delay: number): void {
    if (this.multicastTimer) return; // shares the answer already planned
    const wait = Math.max(delay, this.lastMulticastAt + MIN_DELAY_BETWEEN_RAS_MS - this.now());
    this.multicastTimer = setTimeout(() => {
      this.multicastTimer = undefined;
      if (!this.closed) this.sendMulticast();
    }, wait);
    this.multicastTimer.unref();
  }

  private answerUnicast(source: Ipv6Bytes, delay: number): void {
    const key = Buffer.from(source).toString('hex');
    const now = this.now();
    const last = this.answered.get(key);
    if ((last !== undefined && now - last < MIN_DELAY_BETWEEN_RAS_MS) || this.unicastTimers.size >= MAX_PENDING_UNICAST) {
      this.counts.solicitationsRateLimited++;
      return;
    }
    if (this.answered.size >= MAX_REMEMBERED_SOLICITORS) {
      for (const [k, at] of this.answered) if (now - at >= MIN_DELAY_BETWEEN_RAS_MS) this.answered.delete(k);
      if (this.answered.size >= MAX_REMEMBERED_SOLICITORS) {
        this.counts.solicitationsRateLimited++;
        return;
      }
    }
    this.answered.set(key, now);
    const timer = setTimeout(() => {
      this.unicastTimers.delete(timer);
      if (!this.closed) this.send(source, false);
    }, delay);
    timer.unref();
    this.unicastTimers.add(timer);
  }
}
