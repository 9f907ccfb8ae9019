/**
 * issue 16: PXE boot with natd's built-in TFTP server, with real clients in a guest namespace and a real firmware.
 *
 *  - three TFTP clients fetch a 5 MB file through natd's firewall (the input chain admits udp 69; the transfer's
 *    ACKs come back as replies to natd's ephemeral port): tftp-hpa (RFC 1350, 512-byte blocks, no options), curl
 *    (blksize 1468 and tsize) and atftp (blksize, tsize and windowsize 8); content checked by hash, the negotiated
 *    parameters from natd's debug log line of each transfer;
 *  - attacks from the guest: `../`, an absolute path, a symlink out of the root, a directory, a write request — each
 *    refused with a TFTP error, nothing written, counted in the metrics;
 *  - PXE end to end: a QEMU machine boots from its NIC's iPXE ROM, natd's OFFER names boot.ipxe (chosen by
 *    --dhcp-userclass set:ipxe,iPXE and --dhcp-match on client-arch 0), iPXE fetches it from natd's TFTP server and
 *    runs it: the script echoes a marker on the serial console.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { QemuGuest } from '../support/qemu.js';

const needsRoot = !isRoot() && !process.env.CI;
const GUEST_ADDRESS = '10.77.0.50';
const BIG = 5 * 1024 * 1024 + 123; // not a whole number of blocks
const MARKER = 'NATD-PXE-SCRIPT-RAN';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe.skipIf(needsRoot)('PXE boot and TFTP (tftp-hpa, curl, atftp, QEMU iPXE)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let root: string;
  let outside: string;
  let out: string;
  let bigHash: string;
  let vm: string;

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
    vm = topo.vm(1).ns;
    const base = tempDir('natd-tftp-');
    root = path.join(base, 'root');
    outside = path.join(base, 'secret.txt');
    out = path.join(base, 'out');
    mkdirSync(path.join(root, 'dir'), { recursive: true });
    mkdirSync(out);
    const big = randomBytes(BIG);
    bigHash = sha(big);
    writeFileSync(path.join(root, 'big.bin'), big, { mode: 0o644 });
    writeFileSync(outside, 'the host secret\n', { mode: 0o644 });
    symlinkSync(outside, path.join(root, 'escape'));
    writeFileSync(path.join(root, 'boot.ipxe'), `#!ipxe\necho ${MARKER} arch \${buildarch} from \${next-server}\nshell\n`, { mode: 0o644 });
    await topo.runOk(vm, ['ip', 'addr', 'add', `${GUEST_ADDRESS}/24`, 'dev', 'eth0']);
    natd = await startNatd(topo, [
      '--bridge', 'br0', '--no-dns', '--log-level', 'debug',
      '--enable-tftp', '--tftp-root', root,
      '--dhcp-userclass', 'set:ipxe,iPXE',
      '--dhcp-match', 'set:bios,option:client-arch,0',
      '--dhcp-boot', 'tag:ipxe,tag:bios,boot.ipxe',
      '--dhcp-boot', 'undionly.kpxe',
    ]);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  /** natd's debug line for the transfer of `file` that ended last (the log is JSON lines). */
  const transferLog = (file: string) => natd.waitForLog((l) => l.msg === 'TFTP transfer ended' && l.file === file && !seen.has(l), 10_000).then((l) => (seen.add(l), l));
  const seen = new Set<Record<string, unknown>>();

  it('tftp-hpa fetches 5 MB (RFC 1350: 512-byte blocks, block numbers wrap past 65535)', async () => {
    const target = path.join(out, 'hpa.bin');
    const r = await topo.run(vm, ['tftp', '-m', 'binary', GATEWAY, '-c', 'get', 'big.bin', target], { timeoutMs: 120_000 });
    expect(r.stdout + r.stderr).not.toMatch(/Error|Transfer timed out/);
    expect(sha(readFileSync(target))).toBe(bigHash);
    expect(await transferLog('big.bin')).toMatchObject({ result: 'complete', bytes: BIG, blockSize: 512, windowSize: 1, mode: 'octet', options: {} });
  }, 130_000);

  it('curl fetches it with blksize 1468 and tsize', async () => {
    const target = path.join(out, 'curl.bin');
    await topo.runOk(vm, ['curl', '-sS', '--tftp-blksize', '1468', '-o', target, `tftp://${GATEWAY}/big.bin`], { timeoutMs: 60_000 });
    expect(sha(readFileSync(target))).toBe(bigHash);
    expect(await transferLog('big.bin')).toMatchObject({ result: 'complete', bytes: BIG, blockSize: 1468, windowSize: 1, options: { blksize: '1468', tsize: String(BIG) } });
  }, 70_000);

  it('atftp fetches it with blksize, tsize and windowsize 8 (RFC 7440)', async () => {
    const target = path.join(out, 'atftp.bin');
    const r = await topo.run(vm, ['atftp', '--option', 'blksize 1468', '--option', 'tsize 0', '--option', 'windowsize 8', '-g', '-r', 'big.bin', '-l', target, GATEWAY], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(sha(readFileSync(target))).toBe(bigHash);
    const log = await transferLog('big.bin');
    expect(log).toMatchObject({ result: 'complete', bytes: BIG, blockSize: 1468 });
    expect(log.windowSize).toBe(8);
    expect(log.options).toEqual({ blksize: '1468', tsize: String(BIG), windowsize: '8' });
  }, 70_000);

  it('attacks from the guest are refused with a TFTP error: ../, absolute path, symlink out of the root, directory, write', async () => {
    const attempts: Array<[string, string[], RegExp]> = [
      ['dot-dot', ['get', '../secret.txt', path.join(out, 'a')], /Error code 2/],
      ['absolute-path', ['get', outside, path.join(out, 'b')], /Error code 2/],
      ['outside-root', ['get', 'escape', path.join(out, 'c')], /Error code 2/],
      ['not-regular', ['get', 'dir', path.join(out, 'd')], /Error code 2/],
      ['not-found', ['get', 'missing', path.join(out, 'e')], /Error code 1/],
    ];
    for (const [, command, expected] of attempts) {
      const r = await topo.run(vm, ['tftp', '-m', 'binary', GATEWAY, '-c', ...command], { timeoutMs: 20_000 });
      expect(r.stdout + r.stderr, command.join(' ')).toMatch(expected);
      const local = command[2]!;
      expect(existsSync(local) ? readFileSync(local, 'utf8') : '').not.toContain('secret');
    }
    // a write request: refused, nothing appears in the root
    const upload = path.join(out, 'upload.txt');
    writeFileSync(upload, 'should never land in the root');
    const put = await topo.run(vm, ['tftp', '-m', 'binary', GATEWAY, '-c', 'put', upload, 'uploaded.txt'], { timeoutMs: 20_000 });
    expect(put.stdout + put.stderr).toMatch(/Error code 2/);
    expect(readdirSync(root).sort()).toEqual(['big.bin', 'boot.ipxe', 'dir', 'escape']);

    const metrics = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
    for (const [reason] of attempts) expect(metrics).toMatch(new RegExp(`natd_tftp_refused_total\\{bridge="br0",reason="${reason}"\\} 1`));
    expect(metrics).toMatch(/natd_tftp_refused_total\{bridge="br0",reason="write-request"\} 1/);
    expect(metrics).toMatch(/natd_tftp_transfers_total\{bridge="br0",result="complete"\} 3/);
    expect(metrics).toMatch(new RegExp(`natd_tftp_sent_bytes_total\\{bridge="br0"\\} ${3 * BIG}`));
  }, 120_000);

  it('junk datagrams to port 69 are dropped and counted; natd keeps serving', async () => {
    const junk = ['\\x00\\x04\\x00\\x01', '\\xff\\xff', '\\x00\\x01abc'];
    for (const j of junk) await topo.runOk(vm, ['bash', '-c', `printf '${j}' | socat -u - UDP4-SENDTO:${GATEWAY}:69`]);
    const target = path.join(out, 'after-junk.ipxe');
    await topo.runOk(vm, ['tftp', '-m', 'binary', GATEWAY, '-c', 'get', 'boot.ipxe', target]);
    expect(readFileSync(target, 'utf8')).toContain(MARKER);
    const metrics = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
    const dropped = [...metrics.matchAll(/natd_tftp_dropped_total\{bridge="br0",reason="([^"]+)"\} (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
    expect(dropped).toBeGreaterThanOrEqual(junk.length);
  }, 60_000);

  it('PXE: a QEMU machine boots from its NIC, gets boot.ipxe from natd\'s DHCP and TFTP, and runs it', async () => {
    const guest = new QemuGuest(topo, { model: 'virtio-net-pci', mac: '52:54:00:36:00:01', tap: 'ptap1' });
    await guest.start();
    try {
      const m = await guest.waitFor(new RegExp(`${MARKER} arch (\\S+) from (\\S+)`), 150_000);
      expect(m[2]).toBe(GATEWAY);
      expect(guest.console).toMatch(/boot\.ipxe/);
      const log = await transferLog('boot.ipxe');
      expect(log).toMatchObject({ result: 'complete', file: 'boot.ipxe' });
      console.log(`QEMU iPXE (${m[1]}) ran natd's boot.ipxe; transfer: blksize ${String(log.blockSize)}, ${String(log.ms)} ms`);
    } finally {
      await guest.stop();
    }
  }, 170_000);
});
