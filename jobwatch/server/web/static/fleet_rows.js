// The fleet's rows without any display: job summaries keyed by id, sorted and
// filtered with the notebook JobsTable's rules (jobstable.js, the same as jobwatch/view/
// fleet.py for `jobwatch top`), and the totals. A running job's cost moves on from its
// summary's costSoFar at its current price per hour (the server integrates the price over
// time: docs/api.md, "Estimates"). What was spent today and this month comes from the
// server (GET /api/costs, see SpendTotals).

// The fleet's sort, filter and budget rules are the notebook table's own (one source for both).
import {
  SORT_KEYS,
  budgetState,
  hasStatus,
  matches,
  projectionText,
  sortRows,
} from "./widgets/jobstable.js";

export { SORT_KEYS, budgetState, hasStatus, matches, projectionText, sortRows };

const FINISHED = new Set(["completed", "failed", "cancelled"]);

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

// The page sorts by the running costs moved on to now, not the summary's.
const shownValue = (row, key) => (key === "costSoFar" ? row.cost : row[key]);

/**
 * The job summaries of the fleet, as the server last sent them, with their costs
 * moved on to `now` (server time, s since the epoch) while they run.
 */
export class FleetRows {
  constructor() {
    this.rows = new Map(); // job id -> summary (JOBS_CHANGED's fields) plus `cost`
  }

  /** Take JOBS_CHANGED summaries received at `now` (server time); returns the ids that changed. */
  update(summaries, now) {
    const changed = [];
    for (const summary of summaries) {
      if (!summary || typeof summary.id !== "string") continue;
      const row = { ...summary, receivedAt: now };
      row.cost = this.cost(row, now);
      this.rows.set(summary.id, row);
      changed.push(summary.id);
    }
    return changed;
  }

  /** Move each running job's cost on to `now`. */
  tick(now) {
    for (const row of this.rows.values()) row.cost = this.cost(row, now);
  }

  /**
   * A row's cost at `now`: its summary's costSoFar plus, while it runs, its current price
   * for the time since the summary came (earlier prices are in costSoFar already).
   */
  cost(row, now) {
    const cost = number(row.costSoFar);
    const price = number(row.pricePerHour);
    if (row.status !== "running" || cost === null || price === null) return cost;
    return cost + (Math.max(0, now - (row.receivedAt ?? now)) / 3600) * price;
  }

  /** The running jobs' prices per hour, summed per currency: how fast spend grows now. */
  burnRate() {
    const rates = {};
    for (const row of this.rows.values()) {
      const price = number(row.pricePerHour);
      if (row.status !== "running" || price === null) continue;
      const currency = String(row.currency || "");
      rates[currency] = (rates[currency] || 0) + price;
    }
    return rates;
  }

  /** The rows shown: filtered by status and name, in sort order. */
  view({ status, text, sort, descending }) {
    const kept = Array.from(this.rows.values()).filter(
      (row) => hasStatus(row, status) && matches(row, text),
    );
    return sortRows(kept, sort, descending, shownValue);
  }

  /** {running: {currency: cost}, counts: {status: n}, stalled: n, jobs: n} over every job held. */
  totals() {
    const totals = { running: {}, counts: {}, stalled: 0, jobs: this.rows.size };
    for (const row of this.rows.values()) {
      totals.counts[row.status] = (totals.counts[row.status] || 0) + 1;
      if (row.stalled && !FINISHED.has(row.status)) totals.stalled += 1;
      const currency = String(row.currency || "");
      if (row.status === "running" && row.cost !== null) {
        totals.running[currency] = (totals.running[currency] || 0) + row.cost;
      }
    }
    return totals;
  }
}

/**
 * What was spent today and this month, per currency: the server's report (GET
 * /api/costs?since=month, in this browser's time zone), moved on between reports by the
 * running jobs' prices for the time since it came.
 */
export class SpendTotals {
  constructor() {
    this.report = null;
    this.at = null; // server time of the report
  }

  /** Take a /api/costs answer fetched at `now` (server time). */
  take(report, now) {
    this.report = report;
    this.at = now;
  }

  /** {today: {currency: amount}, month: {currency: amount}} at `now`, or null before a report. */
  spent(now, burnRate) {
    if (!this.report) return null;
    const today = {};
    const month = {};
    for (const total of this.report.totals || []) {
      const daily = total.daily || [];
      today[total.currency] = number(daily[daily.length - 1]) ?? 0;
      month[total.currency] = number(total.cost) ?? 0;
    }
    const hours = Math.max(0, now - this.at) / 3600;
    for (const [currency, rate] of Object.entries(burnRate || {})) {
      today[currency] = (today[currency] || 0) + rate * hours;
      month[currency] = (month[currency] || 0) + rate * hours;
    }
    return { today, month };
  }
}
