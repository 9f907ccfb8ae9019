#!/usr/bin/env node
/**
 * natd's command line: the daemon (`natd --bridge virbr10`), `natd check-config`, and the subcommands that talk to
 * a running daemon over its control socket. Flags are parsed with node:util.parseArgs (commander's current major
 * needs Node 22); every error is one line naming the problem, with a non-zero exit status.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import v8 from 'node:v8';
import type { Config, RawSettings } from './config.js';
import { exitStatusFor, ErrorCodes, NatdError } from './errors.js';
import { createLogger } from './log.js';
import { isEntryPoint } from './entrypoint.js';
// Only small modules are imported statically. A module once loaded stays in memory for the daemon's whole life, so
// the control client and the operator tools are loaded with import() for their subcommands only; config.js (with
// zod) and the daemon are loaded with import() too, after applyDaemonHeapFlags(): loading them first would already
// grow V8's young generation past what the flags keep it to.

type ConfigModule = typeof import('./config.js');
let configModule: ConfigModule | undefined;

async function loadConfigModule(): Promise<ConfigModule> {
  return (configModule ??= await import('./config.js'));
}

export const DAEMON_OPTIONS = {
  bridge: { type: 'string' },
  subnet: { type: 'string' },
  'dhcp-range': { type: 'string', multiple: true }, // an IPv6 one is the dhcp6Range (issue 14), as in dnsmasq
  'lease-time': { type: 'string' },
  domain: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  'state-dir': { type: 'string' },
  'control-socket': { type: 'string' },
  config: { type: 'string' },
  forward: { type: 'string', multiple: true },
  hostsfile: { type: 'string' },
  'dhcp-hostsfile': { type: 'string' }, // issue 14: dnsmasq's name for --hostsfile
  'addn-hosts': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'bridge-mac': { type: 'string' },
  'cache-size': { type: 'string' },
  'no-dns': { type: 'boolean' },
  'no-firewall': { type: 'boolean' },
  'metrics-listen': { type: 'string' },
  'allow-ipv6-forward': { type: 'boolean' },
  'no-ping': { type: 'boolean' },
  'dhcp-max-declined': { type: 'string' },
  'dhcp-probe-timeout': { type: 'string' },
  'dhcp-script': { type: 'string' },
  'dhcp-script-timeout': { type: 'string' },
  'search-domain': { type: 'string', multiple: true },
  route: { type: 'string', multiple: true },
  'cache-max-bytes': { type: 'string' },
  'dns-forward-max': { type: 'string' },
  'dns-max-pending-per-client': { type: 'string' },
  'dns-max-tcp-per-client': { type: 'string' },
  'metrics-allow-remote': { type: 'boolean' },
  'guest-to-host': { type: 'string', multiple: true },
  // issue 16: PXE boot and the built-in TFTP server (dnsmasq names)
  'dhcp-boot': { type: 'string', multiple: true },
  'dhcp-match': { type: 'string', multiple: true },
  'dhcp-userclass': { type: 'string', multiple: true },
  'dhcp-vendorclass': { type: 'string', multiple: true },
  'enable-tftp': { type: 'boolean' },
  'tftp-root': { type: 'string' },
  'tftp-max': { type: 'string' },
  // issue 15: custom DNS records, dnsmasq's option names and value syntax
  'host-record': { type: 'string', multiple: true },
  cname: { type: 'string', multiple: true },
  'srv-host': { type: 'string', multiple: true },
  'txt-record': { type: 'string', multiple: true },
  'mx-host': { type: 'string', multiple: true },
  'ptr-record': { type: 'string', multiple: true },
  address: { type: 'string', multiple: true },
  'local-ttl': { type: 'string' },
  // issue 16: DHCP options
  'dhcp-option': { type: 'string', multiple: true },
  'dhcp-option-force': { type: 'string', multiple: true },
  'dhcp-dns': { type: 'string', multiple: true },
  mtu: { type: 'string' },
  'dhcp-rapid-commit': { type: 'boolean' },
  'no-dhcp-rapid-commit': { type: 'boolean' },
  // issue 15: split DNS and dnsmasq's DNS knobs (--log-queries alone is rewritten to --log-queries=on)
  server: { type: 'string', multiple: true },
  local: { type: 'string', multiple: true },
  'strict-order': { type: 'boolean' },
  'min-cache-ttl': { type: 'string' },
  'no-negcache': { type: 'boolean' },
  'log-queries': { type: 'string' },
  'listen-address': { type: 'string', multiple: true },
  // issue 15, DDNS
  'ddns-server': { type: 'string' },
  'ddns-zone': { type: 'string' },
  'ddns-reverse': { type: 'boolean' },
  'ddns-key-file': { type: 'string' },
  // issue 14: IPv6 for the guests
  subnet6: { type: 'string' },
  ipv6: { type: 'string' },
  'ipv6-mode': { type: 'string' },
  // issue 17: the name router for shared ports 80/443
  expose: { type: 'string', multiple: true },
  'expose-listen': { type: 'string' },
  'expose-fallback': { type: 'string' },
  'expose-max-conns': { type: 'string' },
  'expose-max-conns-per-client': { type: 'string' },
  'expose-head-timeout': { type: 'string' },
  'expose-idle-timeout': { type: 'string' },
  'dhcp6-range': { type: 'string', multiple: true },
  'dhcp-host': { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies ParseArgsConfig['options'];

export const HELP = `natd — DHCP, DNS and NAT for a VM bridge, in one process (replaces dnsmasq + iptables scripts)

Usage:
  natd --bridge NAME [options]          run the daemon for bridge NAME (created if missing)
  natd check-config --bridge NAME [...] validate flags/config without touching the system
                                        (the daemon's checks, against the subnet it would serve)
  natd status|leases [--bridge NAME] [--json]
  natd leases --watch [--json]          stream lease events: the live leases (old), then add/old/del/renew
  natd reservations list|add|remove ... [--bridge NAME]
  natd forwards list|add|remove ...     [--bridge NAME]
  natd records list|add|remove [KIND=VALUE] [--bridge NAME] [--json]
                                        custom DNS records at runtime, e.g. records add host-record=db.lab,10.10.0.7
  natd expose list|add|remove [SPEC|NAME] [--bridge NAME] [--json]
                                        name routes on shared ports 80/443 at runtime (issue 17)
  natd reload [--bridge NAME]
  natd metrics [--bridge NAME]          Prometheus text from the running daemon
  natd demo                             a safe first try in throwaway namespaces
  natd import-dnsmasq DNSMASQ.CONF [--state-dir DIR] [--config-out FILE] [--force]
                                        take over a dnsmasq set-up: config, reservations, leases
  natd import-libvirt NETWORK.XML | --from-virsh NAME [--state-dir DIR] [--config-out FILE] [--force]
                                        take over a libvirt NAT network (default too): the same, from its XML
  natd libvirt-xml [--bridge NAME]      the <network> for virsh net-define, and a VM <interface>
  natd libvirt-xml --nat --config FILE  the config as a libvirt NAT network (the way back to libvirt)
  natd doctor [--bridge NAME] [--ipv6-mode routed [--subnet6 ADDR/64]]
                                        find what else on the host would break DHCP, DNS or NAT (and routed IPv6)

Daemon options:
  --bridge NAME            bridge to serve (required)
  --subnet CIDR            gateway address and prefix, e.g. 10.10.0.1/24 (default: the bridge's address,
                           or 10.10.0.1/24 when natd creates the bridge)
  --dhcp-range START-END   dynamic pool (default: .10 to the last host); also dnsmasq's START,END[,NETMASK][,LEASETIME]
  --lease-time DURATION    3600, 90s, 30m, 1h, 1d, 1w or infinite (default 1h)
  --domain NAME            DNS domain for the guests' names, e.g. vm
  --upstream ADDR          upstream DNS server: IP, IP#PORT or [IPv6]:PORT (repeatable; default: /etc/resolv.conf)
  --search-domain NAME     DHCP domain search list (repeatable; default: the --domain)
  --route NET/LEN=ROUTER   extra classless static route for the guests (repeatable), e.g. 192.168.50.0/24=10.10.0.2
  --forward SPEC           port forward [tcp|udp:][HOSTADDR:]HOSTPORT=GUEST:PORT (repeatable; IPv6 in [brackets])
  --hostsfile FILE         dnsmasq-style reservations: MAC,IP[,NAME] per line, IPv6 as --dhcp-host (id:DUID,[::5]) (re-read on SIGHUP)
                           (--dhcp-hostsfile FILE: the same, dnsmasq's name)
  --addn-hosts FILE        extra DNS names in /etc/hosts format (repeatable; re-read on SIGHUP)
  --state-dir DIR          leases and runtime state (default /var/lib/natd/BRIDGE)
  --config FILE            JSON config file (same names, camelCase); flags win
  --log-level LEVEL        debug|info|warn|error (default info)
  --no-ping                offer new addresses without the conflict ping first (as dnsmasq --no-ping)
  --no-dns, --no-firewall  run without the DNS server / without the nftables table
  --allow-ipv6-forward     let IPv6 routed through the bridge pass (default: rejected)
  --cache-size N           DNS cache entries at most (default 10000)
  --cache-max-bytes SIZE   bytes the DNS cache may hold, e.g. 32M (default 32M; --cache-size caps entries)
  --dns-forward-max N      upstream DNS queries in flight at once, all guests together (default 4096)
  --dns-max-pending-per-client N  upstream queries one guest may have waiting (default 256; more: SERVFAIL)
  --dns-max-tcp-per-client N      DNS TCP connections one guest may hold (default 8 of 64)
  --metrics-listen ADDR:PORT  also serve Prometheus metrics over HTTP (always: natd metrics); loopback only
                           (127.0.0.0/8, [::1]) unless --metrics-allow-remote
  --metrics-allow-remote   let --metrics-listen use any address (no authentication; guests stay blocked)
  --guest-to-host SPEC     a host service guests may reach, [tcp|udp:]PORT[-PORT] (repeatable), or all; by default
                           guests reach only natd's DHCP, DNS and ping on the host
  --dhcp-max-declined PERCENT  most of the range that verified DECLINEs may quarantine at once (default 10)
  --dhcp-probe-timeout MS  how long the ARP conflict probe before an OFFER waits for an answer (default 250)
  --dhcp-script PATH       run PATH add|old|del MAC IP [HOSTNAME] for each lease event, as dnsmasq does
  --dhcp-script-timeout T  kill a script run after T (default 10s); runs are serial and never block DHCP

DNS records (dnsmasq syntax; each repeatable; re-read on SIGHUP; config file: hostRecord, cname, srvHost, ...):
  --host-record NAME[,NAME...],[IPV4][,IPV6][,TTL]   A/AAAA for the names, PTR for the first
  --cname ALIAS[,ALIAS...],TARGET[,TTL]               followed locally when TARGET is natd's own
  --srv-host _SERVICE._PROTO[.NAME][,TARGET[,PORT[,PRIORITY[,WEIGHT]]]]
  --txt-record NAME[,"TEXT"...]
  --mx-host NAME[,TARGET][,PREFERENCE]               (default target: natd's own name, preference 1)
  --ptr-record NAME[,TARGET]
  --address /DOMAIN[/DOMAIN...]/[ADDRESS]            the domain and every name under it; IPv6 → AAAA;
                                                     no address: NXDOMAIN; hosts/reservation names win per name
  --local-ttl SECONDS      TTL of natd's own answers (default 0, as dnsmasq)
  --dhcp-option SPEC       a DHCP option in dnsmasq's syntax (repeatable): [tag:TAG,]CODE|option:NAME[,VALUE...],
                           e.g. 26,1400  option:ntp-server,10.10.0.1  tag:lab,option:router,10.10.0.2  252,"http://x/"
                           43,01:02:03 (raw hex); no value: the option is not sent; 0.0.0.0 means natd's address
  --dhcp-option-force SPEC like --dhcp-option, sent even when the client did not ask for it
  --dhcp-dns ADDR|none     DNS servers handed to guests instead of natd (repeatable or comma-separated; none: no
                           DNS option); the same as --dhcp-option=option:dns-server,ADDR,...
  --mtu N                  the bridge's MTU, also sent to guests as DHCP option 26
  --no-dhcp-rapid-commit   answer Rapid Commit DISCOVERs (RFC 4039) with an OFFER like any other (default: a
                           DISCOVER with option 80 gets the ACK at once, as --dhcp-rapid-commit)
  --server=/DOMAIN/[DOMAIN/...]ADDR  names in DOMAIN go to ADDR (repeatable; most specific domain wins); ADDR is
                           IP, IP#PORT or [IPv6]:PORT; # = the default upstreams; --server=ADDR = --upstream ADDR
  --local=/DOMAIN/         answer DOMAIN here only: never forwarded, NXDOMAIN unless a local name has it
  --strict-order           ask upstreams in the given order (default: the fastest one first, as dnsmasq)
  --min-cache-ttl SECONDS  keep positive answers cached at least this long (0-3600, default 0)
  --no-negcache            do not cache NXDOMAIN/NODATA answers
  --log-queries[=extra]    one JSON line per DNS query in the log (at most 100 a second; extra: all, with ids)
  --listen-address ADDR    also serve DNS to the host itself on ADDR:53, a loopback address such as 127.0.0.1
                           (repeatable; serves 127.0.0.0/8 only; never used as an upstream)
  --ddns-server ADDR[#PORT]  publish lease names to this authoritative DNS server with RFC 2136 updates
                           (as Kea's kea-dhcp-ddns; needs --ddns-zone)
  --ddns-zone ZONE         forward zone for those names: a lease named alpha becomes alpha.ZONE (A record)
  --ddns-reverse           also publish PTRs in the subnet's in-addr.arpa zone
  --ddns-key-file FILE     TSIG key to sign the updates, BIND format (tsig-keygen -a hmac-sha256 NAME > FILE)

PXE boot (dnsmasq syntax):
  --dhcp-boot [tag:TAG,]FILE[,SERVERNAME[,SERVERADDR]]  boot file for clients with all the TAGs (repeatable;
                           the first matching tagged entry wins, else the untagged one); SERVERADDR default: natd
  --dhcp-match set:TAG,OPTION[,VALUE]  TAG when the client sends OPTION (a number or option:client-arch,
                           option:user-class, ...) holding VALUE, e.g. set:efi-x86_64,option:client-arch,7
  --dhcp-userclass set:TAG,TEXT    TAG when the user class (option 77) contains TEXT, e.g. set:ipxe,iPXE
  --dhcp-vendorclass set:TAG,TEXT  TAG when the vendor class (option 60) contains TEXT, e.g. set:pxe,PXEClient
                           (a reservation's hostsfile line takes set:TAG too; reserved hosts have the tag known)
  --enable-tftp            serve files read-only over TFTP on the gateway address (port 69, bridge only)
  --tftp-root DIR          the directory served (required with --enable-tftp)
  --tftp-max N             TFTP transfers at once (default 50; more are told to retry)

Exit status (the daemon's, for the commands that ask it):
  0 success, 64 wrong usage, 69 no daemon running, 70 bridge/ruleset setup failed, 71 socket bind failed,
  78 invalid configuration or a change the daemon refused, 1 anything else

IPv6 for the guests (issue 14; off unless one of these is given; config file: subnet6, ipv6):
  --subnet6 ADDR/64        serve IPv6: the gateway address and /64 on the bridge, e.g. fd00:10:10::1/64
                           (libvirt <ip family='ipv6' address='fd00:10:10::1' prefix='64'/>); natd sends Router
                           Advertisements (SLAAC prefix, MTU; dnsmasq enable-ra; no DHCPv6 yet) and masquerades
                           the prefix (NAT66, libvirt <nat ipv6='yes'/>); turns on net.ipv6.conf.all.forwarding
  --ipv6 auto|off          auto: the same, with a stable unique-local fdXX:XXXX:XXXX::1/64 derived from the bridge
                           name and /etc/machine-id (RFC 4193)
  --ipv6-mode nat|routed   nat (default): masquerade the prefix to the host's address (NAT66; libvirt
                           <nat ipv6='yes'/>, Incus ipv6.nat=true); routed: the prefix in --subnet6 is a global one
                           routed to this host: no NAT, guests keep their addresses and anyone may connect to them
                           (libvirt <forward mode='route'/>, Incus ipv6.nat=false); changeable by reload
  --forward tcp:[2001:db8::1]:2222=web:22, --forward tcp:2222=[fd00::5]:22
                           port forwards over IPv6; tcp:2222=web:22 forwards over IPv6 too when natd knows
                           web's IPv6 address

Many guests on one port 80/443 (issue 17; config file: expose, exposeListen, exposeFallback, exposeMaxConns, ...):
  --expose NAME[:LISTENPORT]=GUEST[:PORT][,proxy-protocol=v1|v2]
                           route connections to the host's port 80 (HTTP Host) and 443 (TLS SNI, not decrypted)
                           by name to a guest (reservation name, lease hostname or address), e.g.
                           app.example.com=web, *.dev.example.com=10.10.0.7, api.example.com:8443=web:443
                           (repeatable; LISTENPORT makes any TCP port a routed port; PROXY protocol optional)
  --expose-listen ADDR     the host address routed ports listen on (default: every address)
  --expose-fallback GUEST[:PORT]  where TLS without a server name goes (default: closed)
  --expose-max-conns N     routed connections at once (default 4096)
  --expose-max-conns-per-client N  of them from one client: an IPv4 address or IPv6 /64 (default 256)
  --expose-head-timeout T  time to send the ClientHello / HTTP head (default 5s)
  --expose-idle-timeout T  a routed connection with no traffic either way is closed after T (default 300s)
  --dhcp6-range START-END[,LEASETIME]  stateful DHCPv6 (IA_NA) from the range, e.g. fd00:10:10::100-fd00:10:10::1ff
                           or ::100-::1ff (an interface id in the served /64); also dnsmasq's
                           --dhcp-range=START6,END6[,64][,LEASETIME] (config: dhcp6Range). Without it: stateless
                           DHCPv6 (DNS servers, search list) and SLAAC. Rapid Commit follows --dhcp-rapid-commit
  --dhcp-host SPEC         dnsmasq's dhcp-host: id:DUID or MAC, [IPv6] (or [::5] in the served /64) and/or IPv4,
                           name, lease time, e.g. id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc,[fd00::5],db or
                           52:54:00:aa:bb:cc,10.10.0.5,[::5],web (config: dhcpHost; repeatable)

Examples:
  natd --bridge virbr10
  natd --bridge virbr10 --subnet 10.10.0.1/24 --domain vm --forward tcp:2222=web:22 --forward 80=10.10.0.5:80
  natd forwards add udp:5353=web:53 --bridge virbr10
  natd leases --bridge virbr10 --json
`;

function version(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (const candidate of [path.join(root, 'package.json'), path.join(root, '..', 'package.json')]) {
    try {
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return 'unknown';
}

type DaemonValues = Awaited<ReturnType<typeof parseDaemonArgs>>['values'];

async function parseDaemonArgs(args: string[]) {
  try {
    // dnsmasq's --log-queries takes an optional value, which parseArgs cannot express
    const rewritten = args.map((a) => (a === '--log-queries' ? '--log-queries=on' : a));
    return parseArgs({ args: rewritten, options: DAEMON_OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    const { flagError } = await import('./control/commands.js');
    throw flagError(err);
  }
}

/** Flags → raw settings (same names as the config file). */
export function settingsFromFlags(v: DaemonValues): RawSettings {
  return {
    bridge: v.bridge,
    subnet: v.subnet,
    // issue 14: dnsmasq takes the IPv4 and the IPv6 range on the same option; the last IPv4 one counts, as before
    dhcpRange: v['dhcp-range']?.filter((r) => !r.includes(':')).at(-1),
    leaseTime: v['lease-time'],
    domain: v.domain,
    upstreams: v.upstream,
    stateDir: v['state-dir'],
    controlSocket: v['control-socket'],
    forwards: v.forward,
    hostsfile: v.hostsfile ?? v['dhcp-hostsfile'],
    addnHosts: v['addn-hosts'],
    logLevel: v['log-level'],
    bridgeMac: v['bridge-mac'],
    cacheSize: numberOrText(v['cache-size']),
    dns: v['no-dns'] ? false : undefined,
    firewall: v['no-firewall'] ? false : undefined,
    metricsListen: v['metrics-listen'],
    allowIpv6Forward: v['allow-ipv6-forward'] ? true : undefined,
    conflictProbe: v['no-ping'] ? false : undefined,
    searchDomains: v['search-domain'],
    routes: v.route,
    cacheMaxBytes: v['cache-max-bytes'],
    dnsForwardMax: numberOrText(v['dns-forward-max']),
    dnsMaxPendingPerClient: numberOrText(v['dns-max-pending-per-client']),
    dnsMaxTcpPerClient: numberOrText(v['dns-max-tcp-per-client']),
    metricsAllowRemote: v['metrics-allow-remote'] ? true : undefined,
    guestToHost: v['guest-to-host'],
    dhcpMaxDeclinedPercent: numberOrText(v['dhcp-max-declined']),
    dhcpProbeTimeoutMs: numberOrText(v['dhcp-probe-timeout']),
    ...dhcpBreadthFromFlags(v),
    ...dnsBreadthFromFlags(v),
    // issue 14
    subnet6: v.subnet6,
    ipv6: v.ipv6,
    ipv6Mode: v['ipv6-mode'],
    // issue 17
    expose: v.expose,
    exposeListen: v['expose-listen'],
    exposeFallback: v['expose-fallback'],
    exposeMaxConns: numberOrText(v['expose-max-conns']),
    exposeMaxConnsPerClient: numberOrText(v['expose-max-conns-per-client']),
    exposeHeadTimeout: v['expose-head-timeout'],
    exposeIdleTimeout: v['expose-idle-timeout'],
    ...dhcp6FromFlags(v),
  };
}

/** Issue 14: DHCPv6 (--dhcp6-range, or an IPv6 --dhcp-range; --dhcp-host lines). */
function dhcp6FromFlags(v: DaemonValues): RawSettings {
  const ranges = [...(v['dhcp6-range'] ?? []), ...(v['dhcp-range']?.filter((r) => r.includes(':')) ?? [])];
  return {
    dhcp6Range: ranges.length === 0 ? undefined : ranges.length === 1 ? ranges[0] : ranges,
    dhcpHost: v['dhcp-host'],
  };
}

/** Issue 16: DHCP options, PXE/TFTP, the lease script. */
function dhcpBreadthFromFlags(v: DaemonValues): RawSettings {
  return {
    dhcpBoot: v['dhcp-boot'],
    dhcpMatch: v['dhcp-match'],
    dhcpUserclass: v['dhcp-userclass'],
    dhcpVendorclass: v['dhcp-vendorclass'],
    enableTftp: v['enable-tftp'] ? true : undefined,
    tftpRoot: v['tftp-root'],
    tftpMax: numberOrText(v['tftp-max']),
    dhcpScript: v['dhcp-script'],
    dhcpScriptTimeout: numberOrText(v['dhcp-script-timeout']),
    dhcpOptions: v['dhcp-option'],
    dhcpOptionsForce: v['dhcp-option-force'],
    dhcpDns: v['dhcp-dns']?.flatMap((a) => a.split(',')),
    mtu: numberOrText(v.mtu),
    dhcpRapidCommit: v['no-dhcp-rapid-commit'] ? false : v['dhcp-rapid-commit'] ? true : undefined,
  };
}

/** Issue 15: custom records, split DNS and dnsmasq's DNS knobs, DDNS. */
function dnsBreadthFromFlags(v: DaemonValues): RawSettings {
  return {
    hostRecord: v['host-record'],
    cname: v.cname,
    srvHost: v['srv-host'],
    txtRecord: v['txt-record'],
    mxHost: v['mx-host'],
    ptrRecord: v['ptr-record'],
    address: v.address,
    localTtl: numberOrText(v['local-ttl']),
    server: v.server,
    local: v.local,
    strictOrder: v['strict-order'] ? true : undefined,
    minCacheTtl: numberOrText(v['min-cache-ttl']),
    noNegcache: v['no-negcache'] ? true : undefined,
    listenAddress: v['listen-address'],
    logQueries: v['log-queries'] === undefined ? undefined : v['log-queries'] === 'on' ? true : v['log-queries'],
    ddnsServer: v['ddns-server'],
    ddnsZone: v['ddns-zone'],
    ddnsReverse: v['ddns-reverse'] ? true : undefined,
    ddnsKeyFile: v['ddns-key-file'],
  };
}

/** A numeric flag as a number, or as given when it is not one (so the config error quotes it). */
function numberOrText(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) ? n : text;
}

/** Needs loadConfigModule() to have run (main does it before any command that reads the configuration). */
export function configFromArgs(values: DaemonValues): Config {
  if (!configModule) throw new Error('configFromArgs called before loadConfigModule()');
  const { readConfigFile, resolveConfig } = configModule;
  const fileSettings = values.config ? readConfigFile(values.config) : {};
  if (values.bridge === undefined && fileSettings.bridge === undefined) {
    throw new NatdError(ErrorCodes.CONFIG, 'bridge: missing; give --bridge NAME (e.g. natd --bridge virbr10)');
  }
  return resolveConfig(settingsFromFlags(values), fileSettings, values.config);
}

/**
 * Keeps V8's heap close to what natd really holds (issue 7: peak RSS with 10,000 leases and a full cache). Left
 * alone, V8 doubles the young generation up to 2 x 16 MiB under packet load and lets the old generation grow to
 * several times its live size: about 180 MiB peak for a live heap of about 25 MB. The usual fix,
 * `node --max-semi-space-size --max-old-space-size`, only works on node's command line (NODE_OPTIONS, a shebang):
 * set here at run time they change nothing (measured on Node 20), and an old-space cap is a crash (heap out of
 * memory) for a bridge with many more leases. These two are read by V8 each time it sizes the heap, so they take
 * effect from here for every way natd is started (systemd, npm run up, the bin, node dist/src/cli.js):
 * the young generation stays at its initial 1 MiB semi-spaces, and the old generation grows to 1.25 x live
 * after each full collection instead of up to 4 x (a soft limit: a bigger lease table still fits).
 * An operator's own heap flags win: we then set nothing.
 */
const DAEMON_HEAP_FLAGS = '--semi-space-growth-factor=1 --heap-growing-percent=25';

function applyDaemonHeapFlags(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/space-size|heap-size|semi-space|heap-growing/.test(given)) return;
  v8.setFlagsFromString(DAEMON_HEAP_FLAGS);
}

async function runDaemon(values: DaemonValues): Promise<void> {
  applyDaemonHeapFlags();
  await loadConfigModule();
  const config = configFromArgs(values);
  const logger = createLogger({ level: config.logLevel });
  const { buildDaemon } = await import('./daemon/index.js');
  const daemon = buildDaemon(config, { logger, loadConfig: () => configFromArgs(values) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting at once', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('stopping', { signal });
    // the promise to systemd and operators: gone within 2 s even if nft or the disk hangs
    setTimeout(() => {
      logger.error('stop did not finish in time; exiting');
      process.exit(1);
    }, 1800).unref();
    daemon.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('error while stopping', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    let next: Config | undefined;
    try {
      next = configFromArgs(values);
    } catch (err) {
      logger.error('reload refused: configuration invalid, nothing changed', { error: (err as Error).message });
      return;
    }
    daemon.reload(next).catch((err: unknown) => logger.error('reload failed', { error: (err as Error).message }));
  });
  await daemon.start();
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'check-config') {
    const { values } = await parseDaemonArgs(rest);
    await loadConfigModule();
    const config = configFromArgs(values);
    // issue 13: the checks the daemon runs against the subnet it will serve, and the hostsfile, before it starts
    const { checkBeforeStart, configError } = await import('./config/served-subnet.js');
    const { readBridgeCidr } = await import('./net/bridge.js');
    const served = await checkBeforeStart(config, (name) => readBridgeCidr(name));
    // issue 14: DHCPv6 addresses against the /64 the daemon will serve (--ipv6 auto: the ULA it derives)
    const { checkDhcp6BeforeStart } = await import('./dhcp6/settings.js');
    const hostsText = config.hostsfile ? await (await import('node:fs/promises')).readFile(config.hostsfile, 'utf8').catch(() => '') : '';
    const { hostsfile6PlacementProblems } = await import('./dhcp6/hostsfile6.js'); // issue 14: IPv6 hostsfile lines
    checkDhcp6BeforeStart(config, (await import('./ipv6/ula.js')).readMachineId(), (served, fromConfig) => hostsfile6PlacementProblems(hostsText, config.hostsfile ?? '', served, fromConfig));
    // forwards bound to the IPv6 gateway --ipv6 auto derives, on natd's DNS/DHCPv6 ports (nft/forward-services.ts)
    if (config.ipv6?.mode === 'auto') {
      const { servedIpv6 } = await import('./ipv6/settings.js');
      const { forwards6CaptureProblems } = await import('./ipv6/egress-config.js');
      const problems = forwards6CaptureProblems(config.forwards, servedIpv6(config.ipv6, config.bridge, (await import('./ipv6/ula.js')).readMachineId()).gateway);
      if (problems.length) throw configError(problems);
    }
    process.stdout.write(`configuration OK for bridge ${config.bridge} (subnet ${served})\n`);
    return 0;
  }
  if (first !== undefined && !first.startsWith('-')) {
    if (first === 'demo') return (await import('./demo/index.js')).runDemo();
    const control = await import('./control/commands.js');
    if (control.CONTROL_COMMANDS.has(first)) return control.runControlCommand(first, rest);
    const ops = await import('./tools/commands.js');
    if (ops.OPS_COMMANDS.has(first)) return ops.runOpsCommand(first, rest);
    throw new NatdError(ErrorCodes.COMMAND, `unknown command "${first}"; see natd --help`);
  }
  const { values } = await parseDaemonArgs(argv);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`natd ${version()}\n`);
    return 0;
  }
  await runDaemon(values);
  return -1; // keeps running
}

if (isEntryPoint(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (status) => {
      if (status >= 0) process.exitCode = status;
    },
    (err: unknown) => {
      const message = err instanceof NatdError ? err.message : (err as Error).stack ?? String(err);
      process.stderr.write(`natd: ${message}\n`);
      process.exit(exitStatusFor(err));
    },
  );
}
