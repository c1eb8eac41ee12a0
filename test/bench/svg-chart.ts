import type { RunRecord } from './results.js';

/** Colours per system, dash per percentile: a chart that still reads in grey. */
const COLOURS: Record<string, string> = { vigil: '#c0392b', aedes: '#2471a3', mosquitto: '#229954' };
const PERCENTILES = [
  { key: 'p50', label: 'p50', dash: '2 3' },
  { key: 'p99', label: 'p99', dash: '' },
  { key: 'p999', label: 'p99.9', dash: '7 4' },
] as const;

const PANEL_W = 420;
const PANEL_H = 300;
const MARGIN = { left: 58, right: 16, top: 34, bottom: 44 };

/** Target markers: the issue's p99 targets for Vigil's event → command latency. */
export interface TargetMark {
  qos: 0 | 1;
  rate: number;
  ms: number;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function rateLabel(rate: number): string {
  return rate >= 1_000 ? `${rate / 1_000}k` : String(rate);
}

/**
 * Latency percentiles against rate, one panel per QoS, both axes logarithmic: a plain SVG with no script, so
 * that it renders on GitHub and in docs/benchmarks.md.
 */
export function latencyChart(
  runs: readonly RunRecord[],
  title: string,
  targets: readonly TargetMark[] = [],
): string {
  const measured = runs.filter((r) => r.latencyMs !== null);
  const qosList = [...new Set(measured.map((r) => r.qos))].sort();
  const rates = [...new Set(measured.map((r) => r.rate))].sort((a, b) => a - b);
  const systems = [...new Set(measured.map((r) => r.system))];
  const values = measured.flatMap((r) =>
    r.latencyMs ? [r.latencyMs.p50, r.latencyMs.p99, r.latencyMs.p999] : [],
  );
  values.push(...targets.map((t) => t.ms));
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...values, 1))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, 1)));
  const width = Math.max(1, qosList.length) * (PANEL_W + MARGIN.left + MARGIN.right);
  const legendH = 24 + 18 * Math.ceil((systems.length * PERCENTILES.length) / 3);
  const height = 30 + MARGIN.top + PANEL_H + MARGIN.bottom + legendH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  const xAt = (rate: number): number => {
    if (rates.length < 2) return PANEL_W / 2;
    const a = Math.log(rates[0] ?? 1);
    const b = Math.log(rates[rates.length - 1] ?? 1);
    return ((Math.log(rate) - a) / (b - a)) * (PANEL_W - 40) + 20;
  };
  const yAt = (ms: number): number =>
    PANEL_H - ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PANEL_H;

  qosList.forEach((qos, panel) => {
    const ox = panel * (PANEL_W + MARGIN.left + MARGIN.right) + MARGIN.left;
    const oy = 30 + MARGIN.top;
    out.push(`<g transform="translate(${ox},${oy})">`);
    out.push(
      `<text x="${PANEL_W / 2}" y="-10" text-anchor="middle" font-weight="bold">QoS ${qos}</text>`,
      `<rect width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#888"/>`,
    );
    for (let decade = lo; decade <= hi * 1.0001; decade *= 10) {
      const y = yAt(decade);
      out.push(
        `<line x1="0" x2="${PANEL_W}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
        `<text x="-6" y="${y + 4}" text-anchor="end">${decade >= 1 ? decade : decade.toPrecision(1)}</text>`,
      );
    }
    for (const rate of rates) {
      const x = xAt(rate);
      out.push(
        `<line x1="${x}" x2="${x}" y1="0" y2="${PANEL_H}" stroke="#eee"/>`,
        `<text x="${x}" y="${PANEL_H + 16}" text-anchor="middle">${rateLabel(rate)}</text>`,
      );
    }
    out.push(
      `<text x="${PANEL_W / 2}" y="${PANEL_H + 34}" text-anchor="middle">events/s</text>`,
      `<text transform="translate(-44,${PANEL_H / 2}) rotate(-90)" text-anchor="middle">latency (ms, log)</text>`,
    );
    for (const system of systems) {
      const series = measured
        .filter((r) => r.system === system && r.qos === qos)
        .sort((a, b) => a.rate - b.rate);
      for (const p of PERCENTILES) {
        const points = series.map(
          (r) => `${xAt(r.rate).toFixed(1)},${yAt(r.latencyMs?.[p.key] ?? lo).toFixed(1)}`,
        );
        if (points.length === 0) continue;
        const dash = p.dash ? ` stroke-dasharray="${p.dash}"` : '';
        out.push(
          `<polyline points="${points.join(' ')}" fill="none" stroke="${COLOURS[system] ?? '#555'}" stroke-width="2"${dash}/>`,
        );
        for (const point of points) {
          const [x, y] = point.split(',');
          out.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${COLOURS[system] ?? '#555'}"/>`);
        }
      }
    }
    for (const t of targets.filter((t) => t.qos === qos && rates.includes(t.rate))) {
      const x = xAt(t.rate);
      const y = yAt(t.ms);
      // Near the right edge the label goes to the left of its mark.
      const label = x > PANEL_W - 120 ? `x="${x - 9}" text-anchor="end"` : `x="${x + 9}"`;
      out.push(
        `<path d="M${x - 6},${y - 6} L${x + 6},${y + 6} M${x - 6},${y + 6} L${x + 6},${y - 6}" stroke="black" stroke-width="2"/>`,
        `<text ${label} y="${y + 16}" font-size="11">target p99 ${t.ms} ms</text>`,
      );
    }
    out.push('</g>');
  });

  let ly = 30 + MARGIN.top + PANEL_H + MARGIN.bottom + 14;
  let lx = MARGIN.left;
  let column = 0;
  for (const system of systems) {
    for (const p of PERCENTILES) {
      const dash = p.dash ? ` stroke-dasharray="${p.dash}"` : '';
      out.push(
        `<line x1="${lx}" x2="${lx + 34}" y1="${ly - 4}" y2="${ly - 4}" stroke="${COLOURS[system] ?? '#555'}" stroke-width="2"${dash}/>`,
        `<text x="${lx + 40}" y="${ly}">${escape(`${system} ${p.label}`)}</text>`,
      );
      column++;
      if (column % 3 === 0) {
        ly += 18;
        lx = MARGIN.left;
      } else lx += 170;
    }
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
