/** zod pieces the settings schema (config.ts) is built from: addresses, durations, sizes, names, reservations. */
// issue 7 (memory): zod's v3 API, which the zod 4 package keeps at 'zod/v3'. zod 4's own entry loads about 95 modules,
// 64 of them message locales natd never uses, and they stay in the daemon's heap for its whole life: peak RSS with
// 10,000 leases and a full cache 73.8 instead of 76.8 MiB (bench --scenario memory). The schemas are the same.
import { z } from 'zod/v3';

/** A schema's own message for every issue it raises itself (zod 4's `{ error }` parameter). */
export const hint = (message: string): { errorMap: () => { message: string } } => ({ errorMap: () => ({ message }) });
import { normalizeMac, parseIpv4 } from '../net/ipv4.js';

export const ipv4 = z.string().refine((s) => parseIpv4(s) !== undefined, { message: 'not an IPv4 address' });

const DURATION_HINT = 'expected seconds or a duration like 3600, 90s, 30m, 1h or 1d';
export const durationSeconds = z.union([z.number().int().positive(), z.string()], hint(DURATION_HINT)).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*([smhd]?)$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: DURATION_HINT });
    return z.NEVER;
  }
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
});

const SIZE_HINT = 'expected bytes or a size like 32M, 64MiB, 512K or 1G (K/M/G are powers of 1024)';
export const sizeBytes = z.union([z.number().int().positive(), z.string()], hint(SIZE_HINT)).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: SIZE_HINT });
    return z.NEVER;
  }
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
});

export const DOMAIN_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export const reservationSchema = z.object({
  mac: z.string().refine((s) => normalizeMac(s) !== undefined, { message: 'not a MAC address like 52:54:00:12:34:56' }),
  address: ipv4,
  hostname: z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'not a DNS label').optional(),
});
