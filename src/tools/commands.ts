/** The CLI's operator tools that need no running daemon: import-dnsmasq, libvirt-xml, doctor. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { readConfigFile } from '../config.js';
import { DEFAULT_BRIDGE, defaultStateDir } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { flagError } from '../control/commands.js';
import { importDnsmasq, parseDnsmasqConf } from './import-dnsmasq.js';
import { interfaceXml, natNetworkXml, networkXml, type NatNetworkSettings } from './libvirt-xml.js';
import { parseHostsfile } from '../dhcp/hostsfile.js';
import { formatIpv4 } from '../net/ipv4.js';
import { formatFindings, runDoctor } from './doctor.js';
import { importLibvirt, type LibvirtImportReport } from './import-libvirt.js';
import { defaultExec, type Exec } from '../exec.js';
import { servedIpv6 } from '../ipv6/settings.js'; // issue 14
import { readMachineId } from '../ipv6/ula.js';

const DEFAULT_CONFIG_ROOT = '/etc/natd';

export const OPS_COMMANDS = new Set(['import-dnsmasq', 'import-libvirt', 'libvirt-xml', 'doctor']);

function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true } as const);
  } catch (err) {
    throw flagError(err);
  }
}

async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'state-dir': { type: 'string' },
    'config-out': { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const confFile = positionals[0];
  if (!confFile || positionals.length > 1) {
    throw new NatdError(ErrorCodes.COMMAND, 'usage: natd import-dnsmasq DNSMASQ.CONF [--state-dir DIR] [--config-out FILE] [--force]');
  }
  // defaults follow the bridge the dnsmasq config serves (its interface=)
  const confPath = path.resolve(confFile);
  const text = await readFile(confPath, 'utf8').catch((err: Error) => {
    throw new NatdError(ErrorCodes.CONFIG, `cannot read dnsmasq config ${confPath}: ${err.message}`);
  });
  const bridge = parseDnsmasqConf(text, confPath).settings.bridge;
  if (typeof bridge !== 'string' && (!values['state-dir'] || !values['config-out'])) {
    throw new NatdError(ErrorCodes.CONFIG, `${confPath} names no interface=; give --state-dir and --config-out`);
  }
  const report = await importDnsmasq({
    confFile: confPath,
    outDir: values['state-dir'] ?? defaultStateDir(String(bridge)),
    configOut: values['config-out'] ?? `${DEFAULT_CONFIG_ROOT}/${String(bridge)}.json`,
    force: values.force ?? false,
  });
  if (values.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [
    `wrote ${report.configFile} (bridge ${String(report.settings.bridge)})`,
    `wrote ${report.reservationsFile}: ${report.reservations.length} reservation(s)`,
    `wrote ${report.leaseJournal}: ${report.leases.length} lease(s)${report.expiredLeases ? `, ${report.expiredLeases} expired lease(s) left out` : ''}`,
  ];
  for (const u of report.unknown) out.push(`not imported: ${u.file}:${u.line}: unknown dnsmasq option "${u.option}"`);
  for (const i of report.ignored) out.push(`ignored: ${i.file}:${i.line}: ${i.option}: ${i.reason}`);
  for (const s of report.skipped) out.push(`skipped: ${s.file}:${s.line}: ${s.message}`);
  out.push(`start natd with: natd --config ${report.configFile}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

const IMPORT_LIBVIRT_USAGE = 'usage: natd import-libvirt NETWORK.XML | --from-virsh NAME [--state-dir DIR] [--config-out FILE] [--status-file FILE] [--force] [--json]';

/** The network XML from a file, or from `virsh net-dumpxml NAME` (the running definition libvirt holds). */
async function libvirtXmlText(file: string | undefined, virshName: string | undefined, exec: Exec): Promise<{ xml: string; source: string }> {
  if ((file === undefined) === (virshName === undefined)) throw new NatdError(ErrorCodes.COMMAND, IMPORT_LIBVIRT_USAGE);
  if (virshName !== undefined) {
    const result = await exec('virsh', ['net-dumpxml', virshName]);
    if (result.code !== 0) {
      const why = result.code === 127 ? 'virsh is not installed' : result.stderr.trim() || `exit status ${result.code}`;
      throw new NatdError(ErrorCodes.CONFIG, `virsh net-dumpxml ${virshName}: ${why}`);
    }
    return { xml: result.stdout, source: `libvirt network ${virshName}` };
  }
  const source = path.resolve(file!);
  const xml = await readFile(source, 'utf8').catch((err: Error) => {
    throw new NatdError(ErrorCodes.CONFIG, `cannot read ${source}: ${err.message}`);
  });
  return { xml, source };
}

function libvirtImportSummary(report: LibvirtImportReport): string {
  const name = report.network ?? String(report.settings.bridge);
  const bridge = String(report.settings.bridge);
  const out = [
    `wrote ${report.configFile} (network ${name}, bridge ${bridge})`,
    `wrote ${report.reservationsFile}: ${report.reservations.length} reservation(s)`,
    `wrote ${report.leaseJournal}: ${report.leases.length} lease(s)${report.statusFile ? ` from ${report.statusFile}` : ''}${report.expiredLeases ? `, ${report.expiredLeases} expired lease(s) left out` : ''}`,
    ...report.problems.map((p) => `not imported: ${p.element}: ${p.message}`),
    'next, to hand the bridge from libvirt to natd (guests keep using network=' + name + '):',
    `  virsh net-destroy ${name} && virsh net-autostart --disable ${name}`,
    `  natd libvirt-xml --bridge ${bridge} --name ${name} > ${name}-natd.xml && virsh net-define ${name}-natd.xml`,
    `  natd --config ${report.configFile}   (or the natd@${bridge} unit with --config), then virsh net-start ${name}`,
  ];
  return out.join('\n') + '\n';
}

export async function importLibvirtCommand(argv: string[], exec: Exec = defaultExec): Promise<number> {
  const { values, positionals } = parse(argv, {
    'from-virsh': { type: 'string' },
    'state-dir': { type: 'string' },
    'config-out': { type: 'string' },
    'status-file': { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 1) throw new NatdError(ErrorCodes.COMMAND, IMPORT_LIBVIRT_USAGE);
  const { xml, source } = await libvirtXmlText(positionals[0], values['from-virsh'], exec);
  const report = await importLibvirt({
    xml,
    source,
    outDir: (bridge) => values['state-dir'] ?? defaultStateDir(bridge),
    configOut: (bridge) => values['config-out'] ?? `${DEFAULT_CONFIG_ROOT}/${bridge}.json`,
    ...(values['status-file'] !== undefined ? { statusFile: values['status-file'] } : {}),
    force: values.force ?? false,
  });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : libvirtImportSummary(report));
  return 0;
}

/** `libvirt-xml --config FILE --nat`: the config's settings, with the hostsfile's reservations, as a libvirt NAT network. */
async function natNetworkFromConfig(file: string, name: string | undefined): Promise<string> {
  const raw = readConfigFile(path.resolve(file)) as Record<string, unknown>;
  const settings = { ...raw } as unknown as NatNetworkSettings;
  const reservations = [...(settings.reservations ?? [])];
  if (typeof raw.hostsfile === 'string') {
    const text = await readFile(raw.hostsfile, 'utf8').catch(() => '');
    for (const r of parseHostsfile(text, raw.hostsfile).reservations) {
      reservations.push({ mac: r.mac, address: formatIpv4(r.address), ...(r.hostname ? { hostname: r.hostname } : {}) });
    }
  }
  if (typeof settings.bridge !== 'string') throw new NatdError(ErrorCodes.CONFIG, `${file}: bridge: required for a libvirt network`);
  // issue 14: ipv6 auto → the prefix this host derives (libvirt needs it spelled out)
  if (raw.ipv6 === 'auto' && settings.subnet6 === undefined) settings.subnet6 = servedIpv6({ mode: 'auto' }, settings.bridge, readMachineId()).gatewayCidr;
  return natNetworkXml({ ...settings, reservations }, name);
}

async function libvirtCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bridge: { type: 'string' }, name: { type: 'string' }, mac: { type: 'string' }, config: { type: 'string' }, nat: { type: 'boolean' } });
  if (values.nat) {
    if (!values.config) throw new NatdError(ErrorCodes.COMMAND, 'usage: natd libvirt-xml --nat --config FILE [--name NAME]');
    process.stdout.write(await natNetworkFromConfig(values.config, values.name));
    return 0;
  }
  const bridge = values.bridge ?? (values.config ? String(readConfigFile(path.resolve(values.config)).bridge) : DEFAULT_BRIDGE);
  process.stdout.write(`<!-- virsh net-define this file, then: virsh net-start ${values.name ?? bridge} && virsh net-autostart ${values.name ?? bridge} -->\n`);
  process.stdout.write(networkXml({ bridge, ...(values.name ? { name: values.name } : {}) }));
  process.stdout.write(`\n<!-- for an existing VM (virsh edit VM), the interface that joins the bridge: -->\n`);
  process.stdout.write(interfaceXml({ bridge, ...(values.mac ? { mac: values.mac } : {}) }));
  return 0;
}

async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bridge: { type: 'string' }, json: { type: 'boolean' }, 'ipv6-mode': { type: 'string' }, subnet6: { type: 'string' } }); // issue 14: routed checks
  const bridge = values.bridge ?? DEFAULT_BRIDGE;
  const { findings, exitCode } = await runDoctor({ bridge, ...(values['ipv6-mode'] ? { ipv6Mode: values['ipv6-mode'] } : {}), ...(values.subnet6 ? { subnet6: values.subnet6 } : {}) });
  process.stdout.write(values.json ? JSON.stringify(findings, null, 2) + '\n' : formatFindings(findings));
  return exitCode;
}

export function runOpsCommand(command: string, argv: string[]): Promise<number> | number {
  switch (command) {
    case 'import-dnsmasq': return importCommand(argv);
    case 'import-libvirt': return importLibvirtCommand(argv);
    case 'libvirt-xml': return libvirtCommand(argv);
    default: return doctorCommand(argv);
  }
}
