// The job page's charts, drawn with uPlot (vendored: assets/vendor/uplot/, a global
// loaded before the modules). The same figures as the notebook monitor
// (jobwatch/notebook/charts.py, system_charts.py and scalar_chart.py): GPU utilization
// with temperature (dashed, right axis), memory used against total (dashed), power;
// one line per GPU when the job reports several; the system metrics, one figure per
// `chart` of the metrics table with a line per metric (a total dashed); and the
// training metrics, one line per name against the step. Missing values are gaps, never 0.
//
// Each chart's element carries data-points (x values drawn) and data-series
// (the series' labels, "|"-joined) so that tests and people can check what is drawn.

import { formatMetric, formatNumber } from "./format.js";
import { gpuLines } from "./gpu_labels.js";
// Not a file: written from the metrics table (jobwatch/contract/metrics.py).
import { METRICS } from "./metrics.js";

const uPlot = globalThis.uPlot;
const HEIGHT = 220; // px
// Tableau 10: distinct colours that read on light and dark backgrounds.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];

function colour(index) {
  return PALETTE[index % PALETTE.length];
}

/** One uPlot figure in `host` that is rebuilt when its series change, else given new data. */
class Figure {
  constructor(host, title) {
    this.host = host;
    this.title = title;
    this.plot = null;
    this.shape = "";
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(host);
  }

  size() {
    return { width: Math.max(200, this.host.clientWidth), height: HEIGHT };
  }

  // `options()` builds uPlot options for the current series; `shape` names them.
  draw(shape, options, data) {
    if (shape !== this.shape || !this.plot) {
      this.plot?.destroy();
      this.plot = new uPlot({ ...options(), ...this.size(), title: this.title }, data, this.host);
      this.shape = shape;
    } else {
      this.plot.setData(data);
    }
    this.host.dataset.points = String(data[0].length);
    this.host.dataset.series = this.plot.series.slice(1).map((s) => s.label).join("|");
  }
}

/** Most GPUs drawn as lines of their own; more are drawn as one line (see update). */
export const MAX_GPU_LINES = 16;

const unit = (suffix) => (_plot, value) => (value === null ? "-" : formatMetric(value, suffix));

/** The three GPU figures, fed with JobState samples. */
export class GpuCharts {
  constructor(hosts) {
    this.utilization = new Figure(hosts.utilization, "GPU utilization (%) and temperature (°C)");
    this.memory = new Figure(hosts.memory, "GPU memory (GiB)");
    this.power = new Figure(hosts.power, "Power (W)");
  }

  /** Draw `samples` ({ts, flat, gpus}) newer than `window` seconds before the newest. */
  update(samples, window, now) {
    let shown = samples;
    if (window !== null && samples.length) {
      const start = Math.max(now, samples[samples.length - 1].ts) - window;
      shown = samples.filter((s) => s.ts >= start);
    }
    // one line per GPU, keyed by its uuid: two MIG slices of GPU 0 are two lines; past
    // MAX_GPU_LINES (a job of many nodes) one line of the samples' flat figures, and the
    // workers section's heat strip shows each GPU
    const perGpu = gpuLines(shown);
    const gpus = perGpu.length > MAX_GPU_LINES ? [] : perGpu;
    const keys = gpus.map((gpu) => gpu.key);
    const names = gpus.length ? gpus.map((gpu) => gpu.label) : ["all GPUs"];
    const line = (field, scale = 1) =>
      (gpus.length ? keys : [null]).map((key) =>
        shown.map((s) => {
          const value = key !== null ? s.gpus[key]?.[field] : s.flat[field];
          return value === null || value === undefined ? null : value / scale;
        }),
      );
    const x = shown.map((s) => s.ts);
    const shape = names.join("|");
    const series = (suffix, dash, format, scale) =>
      names.map((name, i) => ({
        label: `${name}${suffix}`,
        stroke: colour(i),
        width: 1.5,
        value: format,
        ...(dash ? { dash } : {}),
        ...(scale ? { scale } : {}),
      }));
    this.utilization.draw(
      shape,
      () => ({
        scales: { x: { time: true }, "%": { range: [0, 100] }, "°C": { range: (_u, _min, max) => [0, Math.max(100, max ?? 0)] } },
        series: [{}, ...series(" util", undefined, unit("%"), "%"), ...series(" temp", [6, 4], unit("°C"), "°C")],
        axes: [{}, { scale: "%", label: "%" }, { scale: "°C", label: "°C", side: 1, grid: { show: false } }],
      }),
      [x, ...line("gpuUtilization"), ...line("gpuTemperature")],
    );
    this.memory.draw(
      shape,
      () => ({
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 0)] } },
        series: [{}, ...series(" used", undefined, unit(" GiB")), ...series(" total", [6, 4], unit(" GiB"))],
        axes: [{}, { label: "GiB" }],
      }),
      [x, ...line("gpuMemoryUsed", 1024), ...line("gpuMemoryTotal", 1024)],
    );
    this.power.draw(
      shape,
      () => ({
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 0)] } },
        series: [{}, ...series("", undefined, unit(" W"))],
        axes: [{}, { label: "W" }],
      }),
      [x, ...line("powerUsage")],
    );
  }
}

// A system chart's title, by its `chart` name in the metrics table (a new name is its own title).
const SYSTEM_TITLES = {
  cpu: "CPU utilization (%)",
  memory: "Memory: machine used, total (dashed) and process (GiB)",
  io: "Disk and network (MiB/s)",
};
// How a wire unit is drawn: divided by `scale`, labelled `label` (jobwatch/notebook/system_charts.py).
const SYSTEM_UNITS = {
  "%": { scale: 1, label: "%", range: [0, 100] },
  MB: { scale: 1024, label: "GiB" },
  "B/s": { scale: 1024 * 1024, label: "MiB/s" },
};

/** The system figures, one per `chart` of the metrics table, fed with JobState samples. */
export class SystemCharts {
  /** `row`: the element the figures are made in, one child each. */
  constructor(row) {
    const system = METRICS.filter((m) => m.scope === "system" && m.chart);
    const bounds = new Set(METRICS.map((m) => m.atMost).filter(Boolean)); // totals: dashed
    this.charts = [];
    for (const m of system) {
      let chart = this.charts.find((c) => c.name === m.chart);
      if (!chart) {
        const host = document.createElement("div");
        host.className = `jobwatch-chart jobwatch-chart-system jobwatch-chart-system-${m.chart}`;
        row.append(host);
        chart = { name: m.chart, metrics: [], figure: new Figure(host, SYSTEM_TITLES[m.chart] || m.chart) };
        this.charts.push(chart);
      }
      chart.metrics.push({ ...m, dashed: bounds.has(m.wire) });
    }
  }

  /** Draw `samples` ({ts, flat}) newer than `window` seconds before the newest (as GpuCharts). */
  update(samples, window, now) {
    let shown = samples;
    if (window !== null && samples.length) {
      const start = Math.max(now, samples[samples.length - 1].ts) - window;
      shown = samples.filter((s) => s.ts >= start);
    }
    const x = shown.map((s) => s.ts);
    for (const chart of this.charts) {
      const unit = SYSTEM_UNITS[chart.metrics[0].unit] || { scale: 1, label: chart.metrics[0].unit };
      const format = (_plot, value) => (value === null ? "-" : `${formatNumber(value)} ${unit.label}`);
      const lines = chart.metrics.map((m) =>
        shown.map((s) => {
          const value = s.flat[m.wire];
          return value === null || value === undefined ? null : value / unit.scale;
        }),
      );
      chart.figure.draw(
        chart.metrics.map((m) => m.wire).join("|"),
        () => ({
          scales: {
            x: { time: true },
            y: { range: unit.range ?? ((_u, _min, max) => [0, Math.max(unit.scale === 1 ? 1 : 0.01, max ?? 0)]) },
          },
          series: [
            {},
            ...chart.metrics.map((m, i) => ({
              label: m.label,
              stroke: colour(i),
              width: 1.5,
              value: format,
              ...(m.dashed ? { dash: [6, 4] } : {}),
            })),
          ],
          axes: [{}, { label: unit.label }],
        }),
        [x, ...lines],
      );
    }
  }
}

/** The training-metrics figure: one line per name against the step, linear or log y. */
/** What the training-metric chart draws values against (as the notebook's SCALAR_AXES). */
export const SCALAR_AXES = ["step", "time", "cost"];

export class ScalarChart {
  constructor(host) {
    this.figure = new Figure(host, "Training metrics");
  }

  /**
   * Draw `scalars` (Map name -> [{step, ts, value, cost}]) against `by`: "step", "time"
   * (seconds since `started`, s since the epoch) or "cost" (what the job had cost when
   * each value was logged, in `currency`; values without a cost are left out). `log`: a
   * log y axis (values <= 0 are gaps).
   */
  update(scalars, log, by = "step", { currency = "", started = null } = {}) {
    const xOf = {
      step: (p) => p.step,
      time: (p) => (started === null ? null : p.ts - started),
      cost: (p) => (typeof p.cost === "number" ? p.cost : null),
    }[by];
    const names = Array.from(scalars.keys()).sort();
    const xs = Array.from(
      new Set(names.flatMap((n) => scalars.get(n).map(xOf).filter((x) => x !== null))),
    );
    xs.sort((a, b) => a - b);
    const lines = names.map((name) => {
      const byX = new Map();
      for (const p of scalars.get(name)) {
        const x = xOf(p);
        if (x !== null) byX.set(x, p.value);
      }
      return xs.map((x) => {
        const value = byX.get(x);
        return value === undefined || (log && value <= 0) ? null : value;
      });
    });
    const label = { step: "step", time: "seconds since start", cost: `cost (${currency})` }[by];
    this.figure.draw(
      `${names.join("|")}|${log ? "log" : "linear"}|${label}`,
      () => ({
        scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
        series: [
          { label },
          ...names.map((name, i) => ({
            label: name,
            stroke: colour(i),
            width: 1.5,
            spanGaps: true, // metrics logged at different steps still draw as lines
            value: (_plot, value) => (value === null ? "-" : formatNumber(value)),
          })),
        ],
        axes: [{ label }, {}],
      }),
      [xs, ...lines],
    );
    this.figure.host.dataset.axis = by;
    this.figure.host.dataset.xLast = xs.length ? String(xs[xs.length - 1]) : "";
  }
}
