/**
 * Hand-written SVG charts for bench/RESULTS.md (issue 18): a grouped bar chart and a line chart, linear or
 * logarithmic axes. Written by hand rather than with a plotting dependency: a few dozen lines of markup cover what
 * the report needs, and the bench stays free of a library (and its install) for one page of pictures.
 */

export interface BarSeries {
  name: string;
  /** default: PALETTE by position (give one per server so a server keeps its colour across charts) */
  color?: string;
  /** one value per group; undefined: the server does not do this, drawn as "–" */
  values: (number | undefined)[];
}

export interface BarChart {
  title: string;
  /** the y axis unit, e.g. "exchanges/s" */
  unit: string;
  groups: string[];
  series: BarSeries[];
  log?: boolean;
}

export interface LineSeries {
  name: string;
  color?: string;
  /** stroke-dasharray (e.g. "6 4"): a second series of the same server, such as another concurrency */
  dash?: string;
  points: [number, number][];
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  logX?: boolean;
  logY?: boolean;
  /** draw y = x, dashed (e.g. "completed = offered") */
  diagonal?: string;
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728', '#8c564b'];
const W = 760;
const H = 380;
const M = { left: 70, right: 20, top: 40, bottom: 80 };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A number as an axis or bar label: 12,800 → 12.8k */
export function short(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

/** Maps values to pixels; ticks at powers of ten (log) or at round steps (linear). */
export function scale(values: number[], log: boolean, from: number, to: number): { at(v: number): number; ticks: number[] } {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (log) {
    // at least half a decade below the smallest value, so its bar (or point) stays visible
    const lo = Math.floor(Math.log10(finite.length ? Math.min(...finite) : 1) - 0.5);
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...finite, 10))));
    const ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
    return { at: (v) => from + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (to - from), ticks };
  }
  const max = Math.max(...finite, 1);
  const step = 10 ** Math.floor(Math.log10(max / 4));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => max / s <= 6)!;
  const top = Math.ceil(max / nice) * nice;
  const ticks = Array.from({ length: Math.round(top / nice) + 1 }, (_, i) => i * nice);
  return { at: (v) => from + (v / top) * (to - from), ticks };
}

function frame(title: string, body: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">\n` +
    `<rect width="${W}" height="${H}" fill="#fff"/>\n<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>\n` +
    `${body.join('\n')}\n</svg>\n`;
}

function yAxis(y: { at(v: number): number; ticks: number[] }, label: string): string[] {
  const out = y.ticks.map((t) => `<line x1="${M.left}" x2="${W - M.right}" y1="${y.at(t).toFixed(1)}" y2="${y.at(t).toFixed(1)}" stroke="#ddd"/>` +
    `<text x="${M.left - 6}" y="${(y.at(t) + 4).toFixed(1)}" text-anchor="end">${short(t)}</text>`);
  out.push(`<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`);
  return out;
}

const colorOf = (s: { color?: string }, i: number) => s.color ?? PALETTE[i % PALETTE.length]!;

/** One entry per series, 150 px each (wider for long names), wrapping onto more rows 16 px apart. */
function legend(series: { name: string; color?: string; dash?: string }[], y: number): string[] {
  const width = Math.max(150, 24 + 7 * Math.max(...series.map((s) => s.name.length)));
  const perRow = Math.max(1, Math.floor((W - M.left - M.right) / width));
  return series.map((s, i) => {
    const x = M.left + (i % perRow) * width;
    const row = y + 16 * Math.floor(i / perRow);
    const mark = s.dash
      ? `<line x1="${x}" y1="${row - 4}" x2="${x + 14}" y2="${row - 4}" stroke="${colorOf(s, i)}" stroke-width="2" stroke-dasharray="${s.dash}"/>`
      : `<rect x="${x}" y="${row - 10}" width="12" height="12" fill="${colorOf(s, i)}"/>`;
    return `${mark}<text x="${x + 18}" y="${row}">${esc(s.name)}</text>`;
  });
}

export function barChart(c: BarChart): string {
  const all = c.series.flatMap((s) => s.values).filter((v): v is number => v !== undefined);
  const y = scale(all, c.log ?? false, H - M.bottom, M.top);
  const base = H - M.bottom;
  const groupW = (W - M.left - M.right) / Math.max(1, c.groups.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, c.series.length));
  const body = yAxis(y, c.unit + (c.log ? ' (log scale)' : ''));
  c.groups.forEach((g, gi) => {
    const x0 = M.left + gi * groupW + (groupW - barW * c.series.length) / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      const x = x0 + si * barW;
      if (v === undefined || !Number.isFinite(v)) {
        body.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${base - 4}" text-anchor="middle" fill="#888">–</text>`);
        return;
      }
      const top = y.at(v);
      body.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.max(0, base - top).toFixed(1)}" fill="${colorOf(s, si)}"><title>${esc(`${s.name}, ${g}: ${short(v)} ${c.unit}`)}</title></rect>`);
      body.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="10">${short(v)}</text>`);
    });
    body.push(`<text x="${(M.left + gi * groupW + groupW / 2).toFixed(1)}" y="${base + 16}" text-anchor="middle">${esc(g)}</text>`);
  });
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${base}" y2="${base}" stroke="#333"/>`);
  body.push(...legend(c.series, H - 24));
  return frame(c.title, body);
}

export function lineChart(c: LineChart): string {
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1]));
  const x = scale(xs, c.logX ?? false, M.left, W - M.right);
  const y = scale(c.diagonal ? [...ys, ...xs] : ys, c.logY ?? false, H - M.bottom, M.top);
  const body = yAxis(y, c.yLabel + (c.logY ? ' (log scale)' : ''));
  for (const t of x.ticks) body.push(`<text x="${x.at(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${short(t)}</text>`);
  body.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle">${esc(c.xLabel + (c.logX ? ' (log scale)' : ''))}</text>`);
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`);
  if (c.diagonal && xs.length) {
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    body.push(`<line x1="${x.at(lo).toFixed(1)}" y1="${y.at(lo).toFixed(1)}" x2="${x.at(hi).toFixed(1)}" y2="${y.at(hi).toFixed(1)}" stroke="#999" stroke-dasharray="5 4"><title>${esc(c.diagonal)}</title></line>`);
  }
  c.series.forEach((s, si) => {
    const color = colorOf(s, si);
    const pts = s.points.filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py) && (!c.logY || py > 0));
    if (!pts.length) return;
    body.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.map(([px, py]) => `${x.at(px).toFixed(1)},${y.at(py).toFixed(1)}`).join(' ')}"/>`);
    for (const [px, py] of pts) body.push(`<circle cx="${x.at(px).toFixed(1)}" cy="${y.at(py).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${s.name}: ${short(px)} → ${short(py)}`)}</title></circle>`);
  });
  body.push(...legend(c.series, H - 24));
  return frame(c.title, body);
}
