// What the job page knows of its job, kept apart from any display: the same rules
// as jobwatch/view/state.py (MonitorState), which the notebook monitor and `jobwatch
// watch` use. It takes the /monitor snapshot, stream events and history pages.

import { parseTime } from "./format.js";
import { gpuIds } from "./gpu_labels.js";
// Not a file: the server writes it from the job's field table (jobwatch/contract/job_fields.py).
import { JOB_FIELDS } from "./job_fields.js";
// Not a file either: written from the metrics table (jobwatch/contract/metrics.py).
import { METRICS } from "./metrics.js";

export const MAX_POINTS = 2000; // samples kept for the GPU and system charts
export const MAX_SCALAR_POINTS = 2000; // points kept per training metric
export const MAX_ALERTS = 20; // alerts kept (the newest)
export const METRIC_FIELDS = METRICS.map((m) => m.wire); // a sample's flat fields
export const GPU_FIELDS = METRICS.filter((m) => m.scope === "gpu").map((m) => m.wire);
export const SYSTEM_FIELDS = METRICS.filter((m) => m.scope === "system").map((m) => m.wire);
const FINISHED = new Set(["completed", "failed", "cancelled"]);

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** One metrics sample {ts (s), flat: {field: value|null}, gpus: {key: {...}}, ids: {key:
 * identity, with `node` for a distributed job's GPU}}; null if undated. A GPU's key is its uuid, else its index (gpu_labels.js).
 * `flat` holds every metric (GPU and system), a GPU's entry the GPU metrics. */
export function sample(raw) {
  const ts = parseTime(raw && raw.timestamp);
  if (ts === null) return null;
  const fields = (source, names) =>
    Object.fromEntries(names.map((name) => [name, number(source[name])]));
  const entries = (Array.isArray(raw.gpus) ? raw.gpus : []).filter(
    (gpu) => gpu && typeof gpu === "object",
  );
  const gpus = {};
  const ids = {};
  gpuIds(entries).forEach((id, i) => {
    gpus[id.key] = fields(entries[i], GPU_FIELDS);
    const node = entries[i].node; // a distributed job's GPU names its node
    ids[id.key] = typeof node === "string" && node ? { ...id, node } : id;
  });
  return { ts, flat: fields(raw, METRIC_FIELDS), gpus, ids };
}

/** The page's copy of a job object: every field of JOB_FIELDS (null where `raw` lacks it,
 * as from an older server), then whatever else `raw` holds (jobwatch/view/state.py job_model). */
export function jobModel(raw) {
  return { ...Object.fromEntries(JOB_FIELDS.map((name) => [name, null])), ...raw };
}

function sameFlat(a, b) {
  return METRIC_FIELDS.every((name) => a.flat[name] === b.flat[name]);
}

export class JobState {
  constructor() {
    this.job = {};
    this.timeRemaining = null;
    this.costSoFar = null;
    this.estimatedTotalCost = null;
    this.currency = "QUBIC"; // the server's default: the seed marketplace's currency
    this.seq = 0;
    this.samples = [];
    this.scalars = new Map(); // name -> [{step, ts, value, cost}], by step
    this.latestScalars = new Map(); // name -> {step, ts, value, cost}
    this.alerts = [];
    this.newLogs = []; // lines not yet handed to the log view
    this.logTotal = 0; // lines the job has on the server, as far as known
    this.lastLogId = -1;
    this.reportedElapsed = null;
    this.elapsedAt = 0; // page time (s) when reportedElapsed came
    this.samplesVersion = 0;
    this.scalarsVersion = 0;
    this.hasGpu = false; // a sample with a GPU value came (the GPU charts have something to draw)
    this.hasSystem = false; // a sample with a system value came
  }

  get finished() {
    return FINISHED.has(this.job.status);
  }

  get stalled() {
    return Boolean(this.job.stalled) && !this.finished;
  }

  /** Seconds since the start, moving on with `now` (page clock, s) while the job runs. */
  elapsed(now) {
    if (this.finished) {
      const started = parseTime(this.job.startedAt);
      const ended = parseTime(this.job.completedAt);
      if (started !== null && ended !== null) return Math.max(0, ended - started);
      return this.reportedElapsed;
    }
    if (this.reportedElapsed === null) return null;
    return this.reportedElapsed + Math.max(0, now - this.elapsedAt);
  }

  /** Start from a GET /monitor answer; `now` is the page clock (s). */
  loadSnapshot(snapshot, now) {
    this.job = jobModel(snapshot.job);
    this.estimates(snapshot, now);
    this.seq = Number(snapshot.seq) || 0;
    const metrics = snapshot.metrics || {};
    this.replaceSamples(metrics.history || []);
    if (metrics.latest) this.addSample(metrics.latest);
    this.addLogs(snapshot.logs || []);
    for (const [name, point] of Object.entries(snapshot.scalars || {})) {
      this.addScalar(name, point.step, point.timestamp, point.value, point.cost);
    }
    this.alerts = [];
    for (const alert of snapshot.alerts || []) this.addAlert(alert);
  }

  /** Apply one stream event; returns whether it was one of the job's events. */
  apply(event, now) {
    const data = event.data || {};
    switch (event.type) {
      case "JOB_PROGRESS":
        for (const key of ["status", "progress", "currentOperation"]) {
          if (key in data) this.job[key] = data[key];
        }
        this.estimates(data, now);
        if (data.metrics) this.addSample(data.metrics);
        for (const point of data.scalars || []) {
          for (const [name, value] of Object.entries(point.values || {})) {
            this.addScalar(name, point.step, point.timestamp, value, point.cost);
          }
        }
        break;
      case "JOB_LOGS":
        this.addLogs(data.logs || []);
        break;
      case "JOB_STALLED":
      case "JOB_RESUMED":
        this.job.stalled = event.type === "JOB_STALLED";
        break;
      case "JOB_ALERT":
        this.addAlert(data.alert || {});
        break;
      case "JOB_COMPLETED":
        Object.assign(this.job, {
          status: data.status,
          result: data.result,
          error: data.error,
          completedAt: data.completedAt,
        });
        if (data.status === "completed") this.job.progress = 100;
        this.estimates(data, now);
        this.timeRemaining = 0;
        this.estimatedTotalCost = this.costSoFar; // the total is known now
        break;
      default:
        return false;
    }
    this.seq = Math.max(this.seq, Number(event.seq) || 0);
    return true;
  }

  /** Replace the chart samples with a /metrics page (oldest first). */
  replaceSamples(rows) {
    this.samples = [];
    this.hasGpu = this.hasSystem = false;
    for (const row of rows) this.addSample(row);
    this.samplesVersion += 1;
  }

  /** Replace the training-metric history with a /scalars answer's `scalars`. */
  /**
   * Merge a /scalars answer into the history: points events brought meanwhile stay,
   * each point once, in step order (MonitorState.merge_scalars in Python).
   */
  mergeScalars(series) {
    for (const [name, points] of Object.entries(series || {})) {
      const kept = new Map((this.scalars.get(name) || []).map((p) => [`${p.step}/${p.ts}`, p]));
      for (const raw of points) {
        const ts = parseTime(raw.timestamp);
        if (!Number.isInteger(raw.step) || number(raw.value) === null || ts === null) continue;
        const key = `${raw.step}/${ts}`;
        if (!kept.has(key)) kept.set(key, { step: raw.step, ts, value: raw.value, cost: number(raw.cost) });
      }
      const merged = [...kept.values()].sort((a, b) => a.step - b.step || a.ts - b.ts);
      if (!merged.length) continue;
      this.scalars.set(name, merged.slice(-MAX_SCALAR_POINTS));
      const newest = merged[merged.length - 1];
      const latest = this.latestScalars.get(name);
      if (!latest || newest.step >= latest.step) this.latestScalars.set(name, newest);
    }
    this.scalarsVersion += 1;
  }

  /** Add log lines newer than those held; they queue in newLogs for the log view. */
  addLogs(lines) {
    const fresh = lines.filter((line) => Number.isInteger(line.id) && line.id > this.lastLogId);
    if (!fresh.length) return;
    this.lastLogId = fresh[fresh.length - 1].id;
    this.newLogs.push(...fresh);
    this.logTotal += fresh.length;
  }

  /** The log lines added since the last call. */
  takeNewLogs() {
    const fresh = this.newLogs;
    this.newLogs = [];
    return fresh;
  }

  estimates(data, now) {
    if ("timeRemaining" in data) this.timeRemaining = data.timeRemaining;
    if ("costSoFar" in data) this.costSoFar = data.costSoFar;
    if ("estimatedTotalCost" in data) this.estimatedTotalCost = data.estimatedTotalCost;
    if (data.currency) this.currency = data.currency;
    if (typeof data.elapsed === "number") {
      this.reportedElapsed = data.elapsed;
      this.elapsedAt = now;
    }
  }

  addSample(raw) {
    const next = sample(raw);
    const last = this.samples[this.samples.length - 1];
    if (next === null || (last && next.ts < last.ts)) return;
    if (last && next.ts === last.ts && sameFlat(next, last)) return; // snapshot's latest = history's last
    this.samples.push(next);
    this.hasGpu ||= Object.keys(next.gpus).length > 0 || GPU_FIELDS.some((f) => next.flat[f] !== null);
    this.hasSystem ||= SYSTEM_FIELDS.some((f) => next.flat[f] !== null);
    if (this.samples.length > MAX_POINTS) this.samples.splice(0, this.samples.length - MAX_POINTS);
    this.samplesVersion += 1;
  }

  // `cost`: what the job had cost when the value was logged (null: no price).
  addScalar(name, step, stamp, value, cost = null) {
    const ts = parseTime(stamp);
    if (typeof name !== "string" || !Number.isInteger(step) || number(value) === null || ts === null) {
      return;
    }
    const point = { step, ts, value, cost: number(cost) };
    if (!this.scalars.has(name)) this.scalars.set(name, []);
    const points = this.scalars.get(name);
    const last = points[points.length - 1];
    if (!last || step > last.step || (step === last.step && ts > last.ts)) {
      points.push(point);
      if (points.length > MAX_SCALAR_POINTS) points.shift();
    }
    const latest = this.latestScalars.get(name);
    if (!latest || step >= latest.step) this.latestScalars.set(name, point);
    this.scalarsVersion += 1;
  }

  addAlert(alert) {
    if (typeof alert.title !== "string") return;
    if (this.alerts.some((kept) => kept.seq === alert.seq)) return; // snapshot's and stream's copy
    this.alerts.push({ ...alert });
    if (this.alerts.length > MAX_ALERTS) this.alerts.shift();
    this.job.alerts = Math.max(Number(this.job.alerts) || 0, this.alerts.length);
  }
}
