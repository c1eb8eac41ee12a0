/* global document, window, getComputedStyle, uPlot */
// The gateway's charts: the history of /api/history drawn with uPlot, each with a time axis in the
// browser's time zone, a labelled value axis whose ticks carry their unit, and a scale from zero.
// What each axis shows is also written on its figure (data-y-label, data-y-ticks, data-x-ticks), which
// is what a screen reader's label and the browser tests read: uPlot itself draws on a canvas.

const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const number = new Intl.NumberFormat([], { maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat([], { notation: 'compact', maximumFractionDigits: 1 });

/** `1.5`, `250`, `12K`: few digits, whatever the size. */
export function count(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Math.abs(v) >= 10_000 ? compact.format(v) : number.format(v);
}

export function perSecond(v) {
  return `${count(v)}/s`;
}

/** A duration in ms with the unit that suits it: `850 ms`, `1.2 s`, `4 min`, `2.5 h`. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1_000) return `${number.format(ms)} ms`;
  if (ms < 60_000) return `${number.format(ms / 1_000)} s`;
  if (ms < 3_600_000) return `${number.format(ms / 60_000)} min`;
  return `${number.format(ms / 3_600_000)} h`;
}

function uplinkValue(v) {
  if (v === 1) return 'up';
  if (v === 0) return 'down';
  return '';
}

/** The charts, in page order: what each plots from the history, on what axis, in what unit. */
export const CHARTS = [
  {
    id: 'events',
    title: 'Events in',
    yLabel: 'events/s',
    format: perSecond,
    series: [{ field: 'eventsIn', label: 'events in', color: '--accent' }],
  },
  {
    id: 'actions',
    title: 'Actions out, by what became of them',
    yLabel: 'actions/s',
    format: perSecond,
    series: [
      { field: 'sent', label: 'sent', color: '--ok' },
      { field: 'suppressed', label: 'suppressed', color: '--muted' },
      { field: 'expired', label: 'expired (ttl)', color: '--warn' },
      { field: 'dropped', label: 'dropped', color: '--bad' },
    ],
  },
  {
    id: 'latency',
    title: 'Event → decision latency',
    yLabel: 'latency (ms)',
    format: duration,
    floor: 10,
    series: [
      { field: 'p50Ms', label: 'p50', color: '--accent' },
      { field: 'p99Ms', label: 'p99', color: '--warn' },
    ],
  },
  {
    id: 'outbox',
    title: 'Outbox',
    yLabel: 'actions waiting',
    format: count,
    whole: true,
    series: [{ field: 'outboxDepth', label: 'depth', color: '--accent' }],
    right: {
      label: 'oldest waiting',
      format: duration,
      floor: 1_000,
      series: { field: 'outboxOldestMs', label: 'oldest age', color: '--warn' },
    },
  },
  {
    id: 'uplink',
    title: 'Uplink to the cloud',
    yLabel: 'state',
    format: uplinkValue,
    fixed: [0, 1],
    series: [{ field: 'uplink', label: 'uplink', color: '--ok', step: true }],
  },
  {
    id: 'connected',
    title: 'Devices connected',
    yLabel: 'devices',
    format: count,
    whole: true,
    series: [{ field: 'connected', label: 'connected', color: '--accent' }],
  },
];

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#2f6fdf';
}

const clock = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', hour12: false });
const clockWithSeconds = new Intl.DateTimeFormat([], {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

/** The x axis: the browser's local clock time. */
function formatX(splits) {
  return splits.map((s) => clock.format(new Date(s * 1000)));
}

/** Steps between ticks for what is counted whole (devices, actions waiting): never half a device. */
const WHOLE_INCRS = [
  1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6,
];

function axisFor(figure, key, label, format, side, opts = {}) {
  const text = cssColor('--fg');
  const grid = cssColor('--line');
  return {
    scale: key,
    side,
    label,
    labelSize: 18,
    size: 64,
    stroke: text,
    grid: { show: side === 3, stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    ...(opts.fixed ? { splits: () => opts.fixed } : {}),
    ...(opts.whole ? { incrs: WHOLE_INCRS } : {}),
    values: (_u, splits) => {
      const out = splits.map(format);
      figure.dataset[key === 'y' ? 'yTicks' : 'y2Ticks'] = out.join(' | ');
      return out;
    },
  };
}

/** uPlot's options for one chart; `range` is read at each redraw (the page moves it on). */
function options(def, figure, box, range) {
  const text = cssColor('--fg');
  const grid = cssColor('--line');
  const series = [
    { label: 'time', value: (_u, v) => (v === null ? '–' : clockWithSeconds.format(new Date(v * 1000))) },
  ];
  const axes = [
    {
      label: `time (${TIME_ZONE})`,
      labelSize: 18,
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      values: (_u, splits) => {
        const out = formatX(splits);
        figure.dataset.xTicks = out.join(' | ');
        return out;
      },
    },
    axisFor(figure, 'y', def.yLabel, def.format, 3, def),
  ];
  for (const s of def.series) series.push(line(s, def.format, 'y'));
  const scales = {
    x: { time: true, range: () => [range.fromS, range.toS] },
    y: { range: (_u, _min, max) => (def.fixed ? [-0.1, 1.1] : [0, niceMax(max, def.floor)]) },
  };
  if (def.right) {
    series.push(line(def.right.series, def.right.format, 'y2'));
    axes.push(axisFor(figure, 'y2', def.right.label, def.right.format, 1, def.right));
    scales.y2 = { range: (_u, _min, max) => [0, niceMax(max, def.right.floor)] };
  }
  return {
    width: box.clientWidth || 420,
    height: 170,
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    select: { show: false },
    scales,
    axes,
    series,
  };
}

function line(s, format, scale) {
  const color = cssColor(s.color);
  return {
    label: s.label,
    scale,
    stroke: color,
    width: 1.5,
    points: { show: false },
    value: (_u, v) => format(v),
    ...(s.step ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
  };
}

/** A scale's top: at least `floor`, so that an idle gateway draws a flat line at 0 rather than a blank. */
function niceMax(max, floor = 1) {
  return Math.max(floor, (max ?? 0) * 1.1);
}

/** The figures for the charts, in `container`; `draw` (re)draws them from a history answer. */
export class Charts {
  constructor(container) {
    this.container = container;
    this.charts = new Map();
    this.range = { fromS: 0, toS: 1 };
    for (const def of CHARTS) {
      const figure = document.createElement('figure');
      figure.className = 'chart-figure';
      figure.dataset.chart = def.id;
      figure.dataset.yLabel = def.right ? `${def.yLabel} | ${def.right.label}` : def.yLabel;
      const caption = document.createElement('figcaption');
      const latest = document.createElement('span');
      latest.className = 'latest';
      caption.append(document.createTextNode(def.title), latest);
      const box = document.createElement('div');
      box.className = 'plot';
      box.setAttribute('role', 'img');
      figure.append(caption, box);
      container.append(figure);
      this.charts.set(def.id, { def, figure, box, latest, plot: undefined });
    }
    window.addEventListener('resize', () => {
      for (const c of this.charts.values()) c.plot?.setSize({ width: c.box.clientWidth || 420, height: 170 });
    });
  }

  /** Draws `history` (an answer of /api/history); `rebuild` after the theme changed. */
  draw(history, rebuild = false) {
    if (typeof uPlot === 'undefined') return;
    this.range.fromS = history.fromAt / 1000;
    this.range.toS = history.toAt / 1000;
    const xs = history.at.map((t) => t / 1000);
    for (const c of this.charts.values()) {
      const fields = c.def.series.map((s) => s.field);
      if (c.def.right) fields.push(c.def.right.series.field);
      const data = [xs, ...fields.map((f) => history.series[f])];
      if (rebuild || !c.plot) {
        c.plot?.destroy();
        c.box.replaceChildren();
        c.plot = new uPlot(options(c.def, c.figure, c.box, this.range), data, c.box);
      } else c.plot.setData(data);
      c.figure.dataset.points = String(xs.length);
      const now = latestValues(c.def, history, fields);
      c.latest.textContent = now;
      c.box.setAttribute(
        'aria-label',
        `${c.def.title} over the last ${history.range}, time in ${TIME_ZONE}; latest: ${now}`,
      );
    }
  }
}

/** A chart's latest values in words, with their units. */
function latestValues(def, history, fields) {
  const latest = (f) => {
    const col = history.series[f];
    for (let i = col.length - 1; i >= 0; i--) if (col[i] !== null) return col[i];
    return null;
  };
  const all = [...def.series, ...(def.right ? [def.right.series] : [])];
  return all
    .map((s, i) => {
      const format = def.right && i === all.length - 1 ? def.right.format : def.format;
      return `${s.label} ${format(latest(fields[i]))}`;
    })
    .join(', ');
}
