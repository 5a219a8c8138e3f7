// The fleet's rows without any display: job summaries keyed by id, sorted and
// filtered, and the totals. The same rules as the notebook's JobsTable and
// `jobwatch top` (jobwatch/view/fleet.py): sort by status (running first) then newest
// update; a job's cost today is its price per hour times the hours of its run
// after local midnight (docs/api.md, "Estimates").

import { parseTime } from "./format.js";

/** Where each status sorts under "status": what needs a look first. */
const STATUS_ORDER = { running: 0, pending: 1, failed: 2, cancelled: 3, completed: 4 };
const FINISHED = new Set(["completed", "failed", "cancelled"]);
/** Columns the table sorts by, and whether they are numbers. */
export const SORT_KEYS = {
  status: false,
  name: false,
  progress: true,
  timeRemaining: true,
  costSoFar: true,
  gpuUtilization: true,
  gpuTemperature: true,
  alerts: true,
  updatedAt: false,
};

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function sortKey(row, key) {
  if (key === "status") return STATUS_ORDER[row.status] ?? Object.keys(STATUS_ORDER).length;
  if (key === "name") return String(row.name || row.id).toLowerCase();
  if (key === "costSoFar") return row.cost;
  if (SORT_KEYS[key]) return number(row[key]);
  return typeof row[key] === "string" ? row[key] : null;
}

function compare(a, b) {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

/** Whether the job's name or id contains `text`, ignoring case ("" keeps every job). */
export function matches(row, text) {
  if (!text) return true;
  const needle = text.toLowerCase();
  return String(row.id).toLowerCase().includes(needle) || String(row.name || "").toLowerCase().includes(needle);
}

/** Whether the row passes the status filter: "" all, "stalled", or one status. */
export function hasStatus(row, status) {
  if (!status) return true;
  if (status === "stalled") return Boolean(row.stalled) && !FINISHED.has(row.status);
  return row.status === status;
}

/**
 * Rows in table order: by `key` (descending if asked; rows without a value last),
 * ties by newest update then id.
 */
export function sortRows(rows, key, descending) {
  const ordered = rows.slice().sort(
    (a, b) => compare(b.updatedAt || "", a.updatedAt || "") || compare(String(a.id), String(b.id)),
  );
  const present = ordered.filter((row) => sortKey(row, key) !== null);
  const missing = ordered.filter((row) => sortKey(row, key) === null);
  const sign = descending ? -1 : 1;
  // Array.prototype.sort is stable: equal keys keep the tie-break order above.
  present.sort((a, b) => sign * compare(sortKey(a, key), sortKey(b, key)));
  return present.concat(missing);
}

function localMidnight(now) {
  const day = new Date(now * 1000);
  day.setHours(0, 0, 0, 0);
  return day.getTime() / 1000;
}

/**
 * The job summaries of the fleet, as the server last sent them, with their costs
 * moved on to `now` (server time, s since the epoch) while they run.
 */
export class FleetRows {
  constructor() {
    this.rows = new Map(); // job id -> summary (JOBS_CHANGED's fields) plus `cost`
  }

  /** Take JOBS_CHANGED summaries; returns the ids that changed. */
  update(summaries, now) {
    const changed = [];
    for (const summary of summaries) {
      if (!summary || typeof summary.id !== "string") continue;
      this.rows.set(summary.id, { ...summary, cost: this.cost(summary, now) });
      changed.push(summary.id);
    }
    return changed;
  }

  /** Move each running job's cost on to `now`: price x time since its start (the server's rule). */
  tick(now) {
    for (const row of this.rows.values()) row.cost = this.cost(row, now);
  }

  cost(row, now) {
    const price = number(row.pricePerHour);
    const started = parseTime(row.startedAt);
    if (row.status !== "running" || price === null || started === null) return number(row.costSoFar);
    return (Math.max(0, now - started) / 3600) * price;
  }

  /** The rows shown: filtered by status and name, in sort order. */
  view({ status, text, sort, descending }) {
    const kept = Array.from(this.rows.values()).filter(
      (row) => hasStatus(row, status) && matches(row, text),
    );
    return sortRows(kept, sort, descending);
  }

  /**
   * {running: {currency: cost}, today: {currency: spent since local midnight},
   *  counts: {status: n}, stalled: n} over every job held.
   */
  totals(now) {
    const midnight = localMidnight(now);
    const totals = { running: {}, today: {}, counts: {}, stalled: 0, jobs: this.rows.size };
    for (const row of this.rows.values()) {
      totals.counts[row.status] = (totals.counts[row.status] || 0) + 1;
      if (row.stalled && !FINISHED.has(row.status)) totals.stalled += 1;
      const currency = String(row.currency || "");
      if (row.status === "running" && row.cost !== null) {
        totals.running[currency] = (totals.running[currency] || 0) + row.cost;
      }
      const spent = spentSince(row, midnight, now);
      if (spent !== null) totals.today[currency] = (totals.today[currency] || 0) + spent;
    }
    return totals;
  }
}

// The job's cost between `start` and `now`; null without a price or a start.
function spentSince(row, start, now) {
  const price = number(row.pricePerHour);
  const started = parseTime(row.startedAt);
  if (price === null || started === null) return null;
  const end = FINISHED.has(row.status)
    ? (parseTime(row.completedAt) ?? parseTime(row.updatedAt) ?? started)
    : now;
  return (Math.max(0, Math.min(end, now) - Math.max(started, start)) / 3600) * price;
}
