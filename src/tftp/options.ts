/**
 * Option negotiation for a read request (RFC 2347 OACK): blksize (RFC 2348), timeout and tsize (RFC 2349),
 * windowsize (RFC 7440). Pure: the client's options and the server's limits in, the transfer parameters and the
 * OACK to send out. An option with a value out of its RFC range is ignored (left out of the OACK), as RFC 2347 lets
 * a server ignore what it does not accept; an acceptable value above natd's limit is answered with the limit.
 */

export interface NegotiationLimits {
  /** largest block natd sends: the bridge MTU - 32 (IP + UDP + TFTP headers), as dnsmasq caps it */
  maxBlockSize: number;
  /** most blocks in flight per window */
  maxWindowSize: number;
  /** a window never holds more bytes than this, whatever blksize and windowsize say (memory per transfer) */
  maxWindowBytes: number;
  /**
   * longest retransmission timeout accepted, seconds: RFC 2349 allows 255, but a client that asks for that and then
   * goes silent would hold a transfer slot for 255 s x the retries; a larger value is ignored (1 s applies)
   */
  maxTimeoutSeconds: number;
}

export interface Negotiated {
  blockSize: number;
  windowSize: number;
  /** retransmission timeout, ms */
  timeoutMs: number;
  /** options to acknowledge; undefined: send no OACK (start with DATA 1) */
  oack: Map<string, string> | undefined;
}

/** RFC 1350's block size, used when the client asks for nothing else. */
export const DEFAULT_BLOCK_SIZE = 512;
/** Retransmission timeout without a timeout option (tftp-hpa's and iPXE's default is about 1 s too). */
export const DEFAULT_TIMEOUT_MS = 1000;
export const DEFAULT_LIMITS: NegotiationLimits = { maxBlockSize: 1468, maxWindowSize: 64, maxWindowBytes: 512 * 1024, maxTimeoutSeconds: 30 };

const MIN_BLKSIZE = 8;
const MAX_BLKSIZE = 65464;
const MAX_WINDOWSIZE = 65535;

/** A decimal integer without sign, spaces or leading junk; undefined otherwise. */
function decimal(value: string): number | undefined {
  if (!/^\d{1,10}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * `size`: the transfer's exact length in bytes, or undefined when it is not known in advance (netascii grows the
 * file while sending it, so tsize is then not acknowledged).
 */
export function negotiate(requested: ReadonlyMap<string, string>, size: number | undefined, limits: NegotiationLimits = DEFAULT_LIMITS): Negotiated {
  const oack = new Map<string, string>();
  let blockSize = DEFAULT_BLOCK_SIZE;
  let windowSize = 1;
  let timeoutMs = DEFAULT_TIMEOUT_MS;

  const blk = decimal(requested.get('blksize') ?? '');
  if (blk !== undefined && blk >= MIN_BLKSIZE && blk <= MAX_BLKSIZE) {
    blockSize = Math.max(MIN_BLKSIZE, Math.min(blk, limits.maxBlockSize));
    oack.set('blksize', String(blockSize));
  }

  const timeout = decimal(requested.get('timeout') ?? '');
  // RFC 2349: 1-255 seconds, acknowledged with the same value (or not at all: natd takes up to maxTimeoutSeconds)
  if (timeout !== undefined && timeout >= 1 && timeout <= Math.min(255, limits.maxTimeoutSeconds)) {
    timeoutMs = timeout * 1000;
    oack.set('timeout', String(timeout));
  }

  const tsize = decimal(requested.get('tsize') ?? '');
  // in a read request the client sends 0 and the server answers with the size (RFC 2349)
  if (tsize !== undefined && size !== undefined) oack.set('tsize', String(size));

  const window = decimal(requested.get('windowsize') ?? '');
  if (window !== undefined && window >= 1 && window <= MAX_WINDOWSIZE) {
    const byBytes = Math.max(1, Math.floor(limits.maxWindowBytes / blockSize));
    windowSize = Math.max(1, Math.min(window, limits.maxWindowSize, byBytes));
    oack.set('windowsize', String(windowSize));
  }

  return { blockSize, windowSize, timeoutMs, oack: oack.size > 0 ? oack : undefined };
}
