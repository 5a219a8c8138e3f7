// The workers of a distributed job on its page: a table of its ranks (node, rank,
// status, last seen, progress, step rate, straggler) read from /workers, and a heat
// strip of every GPU's utilization grouped by node, readable from 1 GPU to 64 nodes
// of 8 GPUs (one small cell per GPU, a node's cells side by side, nodes wrapping).
//
// Each node's local rank 0 samples its own GPUs, so one sample holds one node's
// GPUs: the strip shows each GPU's newest value among the recent samples.

import { element, setText } from "./dom.js";
import { formatDuration, formatNumber, formatPercent, parseTime } from "./format.js";

/** Milliseconds between two reads of /workers while the job runs. */
export const REFRESH_MS = 3000;
/** Seconds of samples searched for each GPU's newest value (several sampling rounds). */
export const GPU_WINDOW = 30;
const STATUSES = ["running", "silent", "left", "finished"];

/** The newest utilization of each GPU among `samples` (oldest first) within GPU_WINDOW
 * of the newest: [{node, gpus: [{key, label, utilization}]}], nodes and GPUs in order. */
export function gpusByNode(samples) {
  const newest = samples.length ? samples[samples.length - 1].ts : 0;
  const seen = new Map(); // key -> {node, number, label, utilization}
  for (let i = samples.length - 1; i >= 0 && samples[i].ts >= newest - GPU_WINDOW; i--) {
    const { gpus, ids } = samples[i];
    for (const key of Object.keys(gpus)) {
      if (seen.has(key)) continue;
      const id = ids[key] ?? {};
      seen.set(key, {
        key,
        node: id.node ?? "",
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
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([node, gpus]) => ({ node, gpus: gpus.sort((a, b) => a.number - b.number) }));
}

/** A cell's background for a utilization in % (null: not reported). */
export function heatColor(utilization) {
  if (utilization === null || utilization === undefined) return "transparent";
  const share = Math.max(0, Math.min(100, utilization));
  return `color-mix(in srgb, var(--completed) ${share}%, var(--stripe))`;
}

export class WorkersView {
  /** `root`: the section holding `.jobwatch-workers-summary`, `.jobwatch-heat` and the table. */
  constructor(root) {
    this.root = root;
    this.summary = root.querySelector(".jobwatch-workers-summary");
    this.heat = root.querySelector(".jobwatch-heat");
    this.body = root.querySelector(".jobwatch-workers-table tbody");
    this.workers = [];
    this.heatKey = "";
  }

  /** Show the ranks of a /workers answer. */
  setWorkers(answer, now) {
    this.workers = Array.isArray(answer.workers) ? answer.workers : [];
    const distributed = answer.worldSize !== null && answer.worldSize !== undefined;
    this.root.hidden = !distributed;
    if (!distributed) return;
    const nodes = new Set(this.workers.map((w) => w.node));
    const silent = this.workers.filter((w) => w.status === "silent").length;
    const stragglers = this.workers.filter((w) => w.straggler).length;
    setText(
      this.summary,
      `${this.workers.length} of ${answer.worldSize} ranks on ${nodes.size} node${nodes.size === 1 ? "" : "s"}` +
        (silent ? ` · ${silent} silent` : "") +
        (stragglers ? ` · ${stragglers} straggler${stragglers === 1 ? "" : "s"}` : ""),
    );
    this.body.replaceChildren(...this.workers.map((w) => this.row(w, now)));
  }

  row(worker, now) {
    const row = element("tr", "jobwatch-worker");
    const status = STATUSES.includes(worker.status) ? worker.status : "running";
    row.dataset.status = status;
    if (worker.straggler) row.dataset.straggler = "true";
    const seen = parseTime(worker.lastUpdateAt);
    const rate = typeof worker.rate === "number" ? `${formatNumber(worker.rate * 60)} %/min` : "-";
    const cells = [
      worker.node,
      String(worker.rank ?? "-"),
      status,
      seen === null ? "-" : `${formatDuration(Math.max(0, now - seen))} ago`,
      formatPercent(worker.progress ?? 0),
      rate,
      worker.straggler ? "straggler" : "",
    ];
    row.append(...cells.map((text) => element("td", "", text)));
    row.title = worker.currentOperation || "";
    return row;
  }

  /** Draw the heat strip from the page's samples (oldest first). */
  drawGpus(samples) {
    const nodes = gpusByNode(samples);
    const key = JSON.stringify(nodes.map((n) => [n.node, n.gpus.map((g) => [g.key, g.utilization])]));
    if (key === this.heatKey) return;
    this.heatKey = key;
    this.heat.hidden = nodes.length === 0;
    this.heat.replaceChildren(
      ...nodes.map(({ node, gpus }) => {
        const group = element("div", "jobwatch-heat-node");
        group.append(element("span", "jobwatch-heat-label", node || "?"));
        for (const gpu of gpus) {
          const cell = element("span", "jobwatch-heat-cell");
          cell.style.background = heatColor(gpu.utilization);
          const value = gpu.utilization === null ? "not reported" : `${formatNumber(gpu.utilization)} %`;
          cell.title = `${node} ${gpu.label}: ${value}`;
          group.append(cell);
        }
        return group;
      }),
    );
  }
}
