// The workers of a distributed job on its page, drawn by the notebook's workers panel
// (notebook/static/workers.js, served unchanged at /assets/widgets/workers.js): a heat
// strip of every GPU's utilization grouped by node, and the ranks table read from
// /workers. This file writes that panel's traits from the page's state, by the rules
// the notebook follows in Python (jobwatch/view/workers.py worker_cells,
// jobwatch/view/gpu_heat.py GpuHeat).
//
// Each node's local rank 0 samples its own GPUs, so one sample holds one node's
// GPUs: the strip shows each GPU's newest value among the recent samples.

import panel from "./widgets/workers.js";
import { formatDuration, formatNumber, formatPercent, parseTime } from "./format.js";
import { WidgetModel } from "./widget_model.js";

/** Milliseconds between two reads of /workers while the job runs. */
export const REFRESH_MS = 3000;
/** Seconds of samples searched for each GPU's newest value (several sampling rounds). */
export const GPU_WINDOW = 30;
const STATUSES = ["running", "silent", "left", "finished"];
const MAX_OPERATION = 200; // characters of a rank's operation kept for its tooltip
const DASH = "-";

/** The newest utilization of each GPU among `samples` (oldest first) within GPU_WINDOW
 * of the newest: [{node, gpus: [{key, label, utilization}]}], nodes and GPUs in order. */
export function gpusByNode(samples) {
  const newest = samples.length ? samples[samples.length - 1].ts : 0;
  const seen = new Map(); // node and key -> {node, number, label, utilization}
  for (let i = samples.length - 1; i >= 0 && samples[i].ts >= newest - GPU_WINDOW; i--) {
    const { gpus, ids } = samples[i];
    for (const key of Object.keys(gpus)) {
      const id = ids[key] ?? {};
      const node = id.node ?? "";
      const place = `${node}\n${key}`;
      if (seen.has(place)) continue;
      seen.set(place, {
        key,
        node,
        number: id.number ?? 0,
        label: `GPU ${id.number ?? "?"}${id.name ? ` (${id.name})` : ""}`,
        utilization: gpus[key].gpuUtilization,
      });
    }
  }
  const nodes = new Map();
  for (const gpu of seen.values()) {
    if (!nodes.has(gpu.node)) nodes.set(gpu.node, []);
    nodes.get(gpu.node).push(gpu);
  }
  return Array.from(nodes.entries())
    .sort(([a], [b]) => nodeOrder(a, b))
    .map(([node, gpus]) => ({
      node,
      gpus: gpus.sort((a, b) => a.number - b.number || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    }));
}

/** Node names with their numbers read as numbers ("n2" before "n10"), letters without
 * case, as jobwatch/view/gpu_heat.py node_order. */
export function nodeOrder(a, b) {
  const parts = (name) => name.split(/(\d+)/).filter((part) => part !== "");
  const [left, right] = [parts(a), parts(b)];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const [x, y] = [left[i], right[i]];
    const [xd, yd] = [/^\d+$/.test(x), /^\d+$/.test(y)];
    if (xd !== yd) return xd ? -1 : 1;
    if (xd && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (!xd && x.toLowerCase() !== y.toLowerCase()) return x.toLowerCase() < y.toLowerCase() ? -1 : 1;
  }
  return left.length - right.length;
}

/** One rank's row of texts, as jobwatch/view/workers.py worker_cells: node, rank, status,
 * last seen, progress, step rate (% per minute), straggler, current operation. */
export function workerCells(worker, now) {
  const seen = parseTime(worker.lastUpdateAt);
  const rate = worker.rate;
  const progress = typeof worker.progress === "number" ? worker.progress : 0;
  return [
    String(worker.node ?? ""),
    worker.rank === null || worker.rank === undefined ? DASH : String(worker.rank),
    STATUSES.includes(worker.status) ? worker.status : "running",
    seen === null ? DASH : `${formatDuration(Math.max(0, now - seen))} ago`,
    formatPercent(progress),
    typeof rate === "number" ? `${formatNumber(rate * 60)} %/min` : DASH,
    worker.straggler ? "straggler" : "",
    String(worker.currentOperation ?? "").slice(0, MAX_OPERATION),
  ];
}

export class WorkersView {
  /** Draw the workers panel into `host`; it shows nothing until setWorkers gives a world size. */
  constructor(host) {
    this.model = new WidgetModel({ world_size: null, rows: [], heat: [] });
    this.model.mount(panel, host);
  }

  /** Show the ranks of a /workers answer; `now` in seconds since the epoch. */
  setWorkers(answer, now) {
    const workers = Array.isArray(answer.workers) ? answer.workers : [];
    const distributed = Number.isInteger(answer.worldSize);
    this.model.set("rows", distributed ? workers.map((worker) => workerCells(worker, now)) : []);
    this.model.set("world_size", distributed ? answer.worldSize : null);
  }

  /** Draw the heat strip from the page's samples (oldest first). */
  drawGpus(samples) {
    const heat = gpusByNode(samples).map(({ node, gpus }) => [
      node,
      gpus.map((gpu) => gpu.label),
      gpus.map((gpu) => gpu.utilization),
    ]);
    this.model.set("heat", heat);
  }
}
