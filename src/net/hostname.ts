/**
 * Reduces a client- or operator-supplied name to one DNS label: its first dot-separated part, lower-case a-z0-9 and
 * '-', each run of other characters replaced by one '-', no leading or trailing '-', at most 63 characters.
 * Undefined when nothing usable is left. DHCP requests, hostsfiles and lease imports all use this one rule.
 */
const MAX_LABEL = 63;

export function sanitizeHostname(raw: string): string | undefined {
  const firstLabel = raw.trim().split('.', 1)[0]!;
  let label = firstLabel
    .replace(/[A-Z]/g, (c) => c.toLowerCase())
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '');
  label = label.slice(0, MAX_LABEL).replace(/-+$/, '');
  return label.length > 0 ? label : undefined;
}
