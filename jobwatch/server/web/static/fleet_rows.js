// The fleet's rows without any display: job summaries keyed by id, sorted and
// filtered with the notebook JobsTable's rules (jobstable.js, the same as jobwatch/view/
// fleet.py for `jobwatch top`), and the totals. A job's cost today is its price per hour
// times the hours of its run after local midnight (docs/api.md, "Estimates").

import { parseTime } from "./format.js";
// The fleet's sort and filter rules are the notebook table's own (one source for both).
import { SORT_KEYS, hasStatus, matches, sortRows } from "./widgets/jobstable.js";

export { SORT_KEYS, hasStatus, matches, sortRows };

const FINISHED = new Set(["completed", "failed", "cancelled"]);

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

// The page sorts by the running costs moved on to now, not the summary's.
const shownValue = (row, key) => (key === "costSoFar" ? row.cost : row[key]);

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
    return sortRows(kept, sort, descending, shownValue);
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
