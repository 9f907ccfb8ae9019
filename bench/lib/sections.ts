/**
 * Parts of RESULTS.md that a full `npm run bench` writes only when it measured them: each between
 * `<!-- NAME bench: begin ... -->` and `<!-- NAME bench: end -->` markers (the router, hit-cost and DHCPv6 sections
 * use the same form). A scenario the time budget skipped keeps the section of the last run that measured it, charts
 * included (they are written only with results), instead of an empty table with MISSED targets. Pure functions.
 */

export function sectionBegin(name: string): string {
  return `<!-- ${name} bench: begin`;
}

export function sectionEnd(name: string): string {
  return `<!-- ${name} bench: end -->`;
}

/** `body` between `name`'s markers; `how` says what rewrites it (shown in the begin marker). */
export function markSection(name: string, body: string, how = 'a full npm run bench that measures it rewrites this part'): string {
  return `${sectionBegin(name)} (${how}) -->\n${body.trim()}\n${sectionEnd(name)}\n`;
}

/** Where `name`'s section is in `md`, markers included: [start, end), or undefined. */
function bounds(md: string, name: string): [number, number] | undefined {
  const a = md.indexOf(sectionBegin(name));
  const b = md.indexOf(sectionEnd(name), a);
  return a >= 0 && b > a ? [a, b + sectionEnd(name).length] : undefined;
}

/** `name`'s section in `md` as it is (markers included), or undefined. */
export function findSection(md: string, name: string): string | undefined {
  const at = bounds(md, name);
  return at ? md.slice(at[0], at[1]) : undefined;
}

/** `md` with `name`'s section replaced by `section` (appended when it has none): a scenario run alone writes its part. */
export function spliceSection(md: string, name: string, section: string): string {
  const at = bounds(md, name);
  if (at) return md.slice(0, at[0]) + section.trimEnd() + md.slice(at[1]);
  return `${md.trimEnd()}\n\n${section}`;
}

/**
 * `fresh` (this run's RESULTS.md) with the section of every scenario in `skipped` taken from `previous` (the file as
 * it was) unchanged; a skipped section that `previous` does not have stays as this run wrote it. Returns the text
 * and the names whose earlier section was kept.
 */
export function keepSkippedSections(fresh: string, previous: string, skipped: readonly string[]): { md: string; kept: string[] } {
  let md = fresh;
  const kept: string[] = [];
  for (const name of skipped) {
    const old = findSection(previous, name);
    const at = bounds(md, name);
    if (old === undefined || !at) continue;
    md = md.slice(0, at[0]) + old + md.slice(at[1]);
    kept.push(name);
  }
  return { md, kept };
}

/** A scenario the run did not measure, and why (for the summary in RESULTS.md and on the terminal). */
export interface SkippedScenario {
  /** its section's name in the markers */
  name: string;
  label: string;
  reason: string;
}

/**
 * Whether a scenario was left out: not one result measured. `notes` are the runner's lines for what it skipped to stay
 * inside the time budget ("router run 1 skipped (22 s of the budget left)"); the first one's parenthesis says how much
 * was left.
 */
export function skippedScenario(name: string, label: string, measured: number, notes: readonly string[]): SkippedScenario | undefined {
  if (measured > 0) return undefined;
  const left = notes.length ? /\(([^()]*)\)\s*$/.exec(notes[0]!)?.[1] : undefined;
  return { name, label, reason: notes.length ? `skipped by the time budget${left ? `, ${left}` : ''}` : 'no result' };
}

/** One line for RESULTS.md and the terminal: which scenarios were not measured, why, and what their sections show. */
export function skippedSummary(skipped: readonly SkippedScenario[], kept: readonly string[]): string {
  if (!skipped.length) return '';
  const parts = skipped.map((s) => `${s.label} (${s.reason}; ${kept.includes(s.name) ? 'its section below is from an earlier run, unchanged' : 'no earlier section to keep'})`);
  return `Scenarios not measured in this run: ${parts.join('; ')}.`;
}
