/** `--metrics-listen ADDRESS:PORT`: where the Prometheus endpoint listens, loopback unless explicitly allowed. */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface MetricsListen {
  /** an IPv4 or IPv6 address, without brackets */
  readonly host: string;
  readonly port: number;
  /** as given, for log lines: 127.0.0.1:9153, [::1]:9153 */
  readonly text: string;
}

/** The addresses that only the host itself can reach: 127.0.0.0/8 and ::1. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * The metrics endpoint has no authentication, so by default it listens on loopback only; any other address is an
 * explicit choice (metricsAllowRemote). Problems are pushed with the field named.
 */
export function parseMetricsListen(text: string, allowRemote: boolean, problems: string[]): MetricsListen | undefined {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(i + 1));
  const family = isIPv4(host) ? 'ipv4' : isIPv6(host) ? 'ipv6' : undefined;
  if (!family) problems.push(`metricsListen: ${host} is not an IP address (got "${text}")`);
  else if (port < 1 || port > 65535) problems.push(`metricsListen: port ${port} is not in 1-65535 (got "${text}")`);
  else if (!allowRemote && !LOOPBACK.check(host, family)) {
    problems.push(
      `metricsListen: ${host} is not a loopback address; the endpoint has no authentication, so listening beyond ` +
        `the host needs --metrics-allow-remote (metricsAllowRemote: true) (got "${text}")`,
    );
  } else return Object.freeze({ host, port, text });
  return undefined;
}
