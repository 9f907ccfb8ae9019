/** The CLI's operator tools that need no running daemon: import-dnsmasq, libvirt-xml, doctor. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { DEFAULT_BRIDGE, defaultStateDir } from '../defaults.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { flagError } from '../control/commands.js';
import { importDnsmasq, parseDnsmasqConf } from './import-dnsmasq.js';
import { interfaceXml, networkXml } from './libvirt-xml.js';
import { formatFindings, runDoctor } from './doctor.js';

const DEFAULT_CONFIG_ROOT = '/etc/natd';

export const OPS_COMMANDS = new Set(['import-dnsmasq', 'libvirt-xml', 'doctor']);

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

function libvirtCommand(argv: string[]): number {
  const { values } = parse(argv, { bridge: { type: 'string' }, name: { type: 'string' }, mac: { type: 'string' } });
  const bridge = values.bridge ?? DEFAULT_BRIDGE;
  process.stdout.write(`<!-- virsh net-define this file, then: virsh net-start ${values.name ?? bridge} && virsh net-autostart ${values.name ?? bridge} -->\n`);
  process.stdout.write(networkXml({ bridge, ...(values.name ? { name: values.name } : {}) }));
  process.stdout.write(`\n<!-- for an existing VM (virsh edit VM), the interface that joins the bridge: -->\n`);
  process.stdout.write(interfaceXml({ bridge, ...(values.mac ? { mac: values.mac } : {}) }));
  return 0;
}

async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bridge: { type: 'string' }, json: { type: 'boolean' } });
  const bridge = values.bridge ?? DEFAULT_BRIDGE;
  const { findings, exitCode } = await runDoctor({ bridge });
  process.stdout.write(values.json ? JSON.stringify(findings, null, 2) + '\n' : formatFindings(findings));
  return exitCode;
}

export function runOpsCommand(command: string, argv: string[]): Promise<number> | number {
  switch (command) {
    case 'import-dnsmasq': return importCommand(argv);
    case 'libvirt-xml': return libvirtCommand(argv);
    default: return doctorCommand(argv);
  }
}
