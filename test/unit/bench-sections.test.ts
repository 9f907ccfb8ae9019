/**
 * bench/lib/sections.ts: a scenario the full run's time budget skipped keeps its earlier RESULTS.md section (not an
 * empty table with MISSED targets), and the run says which scenarios it skipped and why.
 */
import { describe, expect, it } from 'vitest';
import { findSection, keepSkippedSections, markSection, skippedScenario, skippedSummary, spliceSection } from '../../bench/lib/sections.js';

const router = (body: string) => `<!-- router bench: begin (npm run bench -- --scenario router rewrites this part) -->\n${body}\n<!-- router bench: end -->`;

describe('bench RESULTS.md sections', () => {
  const previous = [
    '# Benchmark results (old run)',
    markSection('boot-storm', '### Boot storm\n\n| natd | 0.39 s |'),
    markSection('tftp', '### TFTP throughput\n\n| curl | 61.2 MB/s |'),
    router('## Name router\n\n![natd vs HAProxy](chart-router.svg)\n\n| conn/s | 143 |\n| target | yes |'),
  ].join('\n');
  const fresh = [
    '# Benchmark results (new run)',
    markSection('boot-storm', '### Boot storm\n\n| natd | 0.41 s |'),
    markSection('tftp', '### TFTP throughput\n\n| curl | NaN |'),
    router('## Name router\n\n- router run 1 skipped (22 s of the budget left)\n\n| conn/s | NaN |\n| target | MISSED |'),
  ].join('\n');

  it('a skipped scenario keeps its earlier section byte for byte, chart link included; measured ones take the new one', () => {
    const { md, kept } = keepSkippedSections(fresh, previous, ['tftp', 'router']);
    expect(kept).toEqual(['tftp', 'router']);
    expect(findSection(md, 'tftp')).toBe(findSection(previous, 'tftp'));
    expect(findSection(md, 'router')).toBe(findSection(previous, 'router'));
    expect(md).toContain('chart-router.svg');
    expect(md).not.toContain('MISSED');
    expect(md).not.toContain('NaN');
    expect(findSection(md, 'boot-storm')).toContain('0.41 s'); // measured in this run
    expect(md.startsWith('# Benchmark results (new run)')).toBe(true);
  });

  it('a skipped scenario with no earlier section stays as this run wrote it; nothing skipped changes nothing', () => {
    const { md, kept } = keepSkippedSections(fresh, '# no sections yet\n', ['tftp']);
    expect(kept).toEqual([]);
    expect(md).toBe(fresh);
    expect(keepSkippedSections(fresh, previous, []).md).toBe(fresh);
  });

  it('finds a section by its name only (not by a name it starts with), markers included', () => {
    const md = `${markSection('dhcp', 'v4')}\n${markSection('dhcp6', 'v6')}`;
    expect(findSection(md, 'dhcp6')).toBe(markSection('dhcp6', 'v6').trimEnd());
    expect(findSection(md, 'dhcp')).toBe(markSection('dhcp', 'v4').trimEnd());
    expect(findSection(md, 'tftp')).toBeUndefined();
  });

  it('says which scenarios were skipped, why, and whether their section is an earlier one', () => {
    const tftp = skippedScenario('tftp', 'TFTP throughput', 0, ['TFTP run 1 natd curl (23 s of the budget left)', 'TFTP run 1 tftpd-hpa curl (23 s of the budget left)']);
    const r = skippedScenario('router', 'name router', 0, ['router run 1 skipped (22 s of the budget left)']);
    expect(skippedScenario('dhcp6', 'DHCPv6', 4, [])).toBeUndefined(); // measured
    expect(tftp).toEqual({ name: 'tftp', label: 'TFTP throughput', reason: 'skipped by the time budget, 23 s of the budget left' });
    const line = skippedSummary([tftp!, r!], ['tftp']);
    expect(line).toBe('Scenarios not measured in this run: TFTP throughput (skipped by the time budget, 23 s of the budget left; its section below is from an earlier run, unchanged); ' +
      'name router (skipped by the time budget, 22 s of the budget left; no earlier section to keep).');
    expect(skippedSummary([], [])).toBe('');
  });
});

describe('bench RESULTS.md: a scenario run alone', () => {
  it('replaces its own section and nothing else, or appends it', () => {
    const md = `# R\n\n${markSection('tftp', 'old tftp')}\n${markSection('boot-storm', 'storm')}`;
    const next = spliceSection(md, 'tftp', markSection('tftp', 'new tftp'));
    expect(findSection(next, 'tftp')).toContain('new tftp');
    expect(next).not.toContain('old tftp');
    expect(findSection(next, 'boot-storm')).toBe(findSection(md, 'boot-storm'));
    expect(findSection(spliceSection('# R\n', 'tftp', markSection('tftp', 'first')), 'tftp')).toContain('first');
  });
});
