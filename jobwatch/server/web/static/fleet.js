// The fleet page: one live row per job, from the WebSocket's subscribe:jobs feed.
//
// The server coalesces job changes into JOBS_CHANGED messages (at most 4 a second per
// job); the page keeps the summaries in FleetRows and redraws at most once a frame,
// touching only the cells whose text changed and moving only rows out of place.
// Costs of running jobs and "updated ... ago" move on once a second in between. What
// was spent today and this month is the server's report (GET /api/costs?since=month in
// this browser's time zone), fetched every SPEND_MS and moved on in between by the
// running jobs' prices.

import { ROOT, Stream, getJson } from "./api.js";
import {
  STATUSES,
  element,
  setProgress,
  progressBar,
  setText,
  showConnection,
  showError,
  stalledBadge,
  statusBadge,
} from "./dom.js";
import { FleetRows, SORT_KEYS, SpendTotals, budgetState, projectionText } from "./fleet_rows.js";
import {
  DASH,
  formatCost,
  formatDuration,
  formatMetric,
  formatMoney,
  formatPercent,
  parseTime,
} from "./format.js";

const TICK_MS = 1000; // how often running costs and ages move on
const SPEND_MS = 60_000; // how often the spend of today and this month is asked again

const $ = (selector) => document.querySelector(selector);
const body = $(".jobwatch-fleet tbody");
const connection = $(".jobwatch-connection");
const errorBox = $(".jobwatch-error");
const empty = $(".jobwatch-empty");
const statusFilter = $(".jobwatch-filter-status");
const nameFilter = $(".jobwatch-filter-name");
const shown = $(".jobwatch-shown");

const fleet = new FleetRows();
const spend = new SpendTotals();
const drawn = new Map(); // job id -> {tr, cells..., status, stalled}
const options = { status: "", text: "", sort: "status", descending: false };
let serverOffset = 0; // server clock minus ours (ms), from each message's seq
let since = null; // the newest JOBS_CHANGED seq: where a reconnection resumes
let frame = 0;

function now() {
  return (Date.now() + serverOffset) / 1000;
}

// -- one row -------------------------------------------------------------------------

function newRow(id) {
  const tr = element("tr", "jobwatch-row");
  tr.dataset.jobId = id;
  const cell = (name) => {
    const td = element("td", `jobwatch-col-${name}`);
    tr.append(td);
    return td;
  };
  const job = cell("job");
  const link = element("a", "jobwatch-job-link");
  link.href = new URL(`jobs/${encodeURIComponent(id)}`, ROOT).pathname;
  const jobId = element("div", "jobwatch-job-id", id);
  job.append(link, jobId);
  const status = cell("status");
  const progress = cell("progress");
  const [bar, fill] = progressBar();
  const percent = element("span", "jobwatch-percent");
  const operation = element("div", "jobwatch-operation");
  progress.append(bar, percent, operation);
  return {
    tr,
    link,
    jobId,
    status,
    bar,
    fill,
    percent,
    operation,
    remaining: cell("remaining"),
    ...costCell(cell("cost")),
    gpu: cell("gpu"),
    temperature: cell("temperature"),
    alerts: cell("alerts"),
    updated: cell("updated"),
    badges: null, // the status badges drawn, to redraw them only when they change
  };
}

// The cost so far, and under it the projected spend and the budget.
function costCell(td) {
  const costValue = element("span", "jobwatch-cost-value");
  const budget = element("div", "jobwatch-budget");
  td.append(costValue, budget);
  return { cost: td, costValue, budget };
}

// The cost cell's figures; its data-over ("projected", "spent") colours what is over.
function drawCost(row, job) {
  setText(row.costValue, formatCost(job.cost, job.currency));
  const projection = projectionText(job.estimatedTotalCost, job.budget, job.currency);
  setText(row.budget, projection === DASH ? "" : projection);
  const over = budgetState(job.budget, job.cost, job.estimatedTotalCost) || "none";
  if (row.cost.dataset.over !== over) row.cost.dataset.over = over;
}

function drawStatus(row, job) {
  const badges = `${job.status}|${Boolean(job.stalled)}`;
  if (row.badges === badges) return;
  row.badges = badges;
  row.status.replaceChildren(statusBadge(job.status));
  if (job.stalled && job.status === "running") row.status.append(" ", stalledBadge());
  row.tr.dataset.status = STATUSES.includes(job.status) ? job.status : "unknown";
}

function drawRow(row, job, at) {
  setText(row.link, job.name || job.id);
  row.jobId.hidden = !job.name || job.name === job.id;
  row.tr.title = job.workerId ? `worker ${job.workerId}` : "";
  drawStatus(row, job);
  setProgress(row.bar, row.fill, job.progress, job.status);
  setText(row.percent, formatPercent(job.progress));
  setText(row.operation, job.currentOperation || "");
  setText(row.remaining, formatDuration(job.timeRemaining));
  drawCost(row, job);
  setText(row.gpu, formatMetric(job.gpuUtilization, "%"));
  setText(row.temperature, formatMetric(job.gpuTemperature, "°C"));
  setText(row.alerts, String(job.alerts || 0));
  row.alerts.dataset.alerts = job.alerts ? "some" : "none";
  drawAge(row, job, at);
}

function drawAge(row, job, at) {
  const updated = parseTime(job.updatedAt);
  setText(row.updated, updated === null ? DASH : `${formatDuration(at - updated)} ago`);
  row.updated.title = job.updatedAt || "";
}

// -- the table -----------------------------------------------------------------------

function drawTotals(at) {
  const totals = fleet.totals();
  const running = totals.counts.running || 0;
  const stalled = totals.stalled ? ` (${totals.stalled} stalled)` : "";
  setText(
    $(".jobwatch-total-jobs"),
    `${totals.jobs} job${totals.jobs === 1 ? "" : "s"}: ${running} running${stalled}`,
  );
  setText($(".jobwatch-total-running"), formatMoney(totals.running));
  const spent = spend.spent(at, fleet.burnRate());
  setText($(".jobwatch-total-today"), spent ? formatMoney(spent.today) : DASH);
  setText($(".jobwatch-total-month"), spent ? formatMoney(spent.month) : DASH);
}

// The browser's time zone by name (days follow its daylight saving), else its offset now.
function timeZone() {
  const named = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (named) return named;
  const minutes = -new Date().getTimezoneOffset();
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${minutes < 0 ? "-" : "+"}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}

async function fetchSpend() {
  const zone = timeZone();
  try {
    const report = await getJson(`api/costs?since=month&tz=${encodeURIComponent(zone)}`);
    spend.take(report, now());
  } catch {
    // a server without /api/costs, or a zone it does not know: the totals stay as they were
    return;
  }
  drawTotals(now());
}

function draw() {
  frame = 0;
  const at = now();
  const rows = fleet.view(options);
  rows.forEach((job, index) => {
    let row = drawn.get(job.id);
    if (!row) {
      row = newRow(job.id);
      drawn.set(job.id, row);
    }
    drawRow(row, job, at);
    const here = body.children[index];
    if (here !== row.tr) body.insertBefore(row.tr, here || null);
  });
  while (body.children.length > rows.length) body.lastElementChild.remove();
  empty.hidden = rows.length > 0;
  setText(empty, fleet.rows.size ? "No job matches the filter." : "No jobs yet.");
  setText(shown, fleet.rows.size ? `showing ${rows.length} of ${fleet.rows.size}` : "");
  drawTotals(at);
}

function redraw() {
  if (!frame) frame = requestAnimationFrame(draw);
}

function tick() {
  const at = now();
  fleet.tick(at);
  for (const job of fleet.rows.values()) {
    const row = drawn.get(job.id);
    if (!row || !row.tr.isConnected) continue;
    if (job.status === "running") drawCost(row, job);
    drawAge(row, job, at);
  }
  drawTotals(at);
}

// -- sorting and filtering, kept in the URL so a link shows the same view ------------------

function readOptions() {
  const query = new URLSearchParams(location.search);
  const status = query.get("status") || "";
  options.status = Array.from(statusFilter.options).some((o) => o.value === status) ? status : "";
  options.text = query.get("q") || "";
  const sort = query.get("sort") || "status";
  options.sort = sort in SORT_KEYS ? sort : "status";
  options.descending = query.get("desc") === "1";
  statusFilter.value = options.status;
  nameFilter.value = options.text;
}

function writeOptions() {
  const query = new URLSearchParams();
  if (options.status) query.set("status", options.status);
  if (options.text) query.set("q", options.text);
  if (options.sort !== "status") query.set("sort", options.sort);
  if (options.descending) query.set("desc", "1");
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const sorted = th.dataset.sort === options.sort;
    th.setAttribute("aria-sort", sorted ? (options.descending ? "descending" : "ascending") : "none");
  }
  redraw();
}

function listen() {
  statusFilter.addEventListener("change", () => {
    options.status = statusFilter.value;
    writeOptions();
  });
  nameFilter.addEventListener("input", () => {
    options.text = nameFilter.value.trim();
    writeOptions();
  });
  $(".jobwatch-filters").addEventListener("submit", (event) => event.preventDefault());
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.tabIndex = 0;
    const sortBy = () => {
      const key = th.dataset.sort;
      options.descending = options.sort === key ? !options.descending : false;
      options.sort = key;
      writeOptions();
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortBy();
      }
    });
  }
}

// -- the feed ------------------------------------------------------------------------

function onMessage(message) {
  if (typeof message.seq === "number") serverOffset = message.seq - Date.now();
  if (message.type === "subscribed") {
    showError(errorBox, "");
    redraw(); // "No jobs yet." when none come
  } else if (message.type === "JOBS_CHANGED") {
    since = message.seq;
    fleet.update((message.data && message.data.jobs) || [], now());
    redraw();
  } else if (message.type === "error") {
    showError(errorBox, `The server refused the job list: ${message.error?.message ?? "unknown error"}`);
  }
}

async function main() {
  readOptions();
  writeOptions();
  listen();
  const check = () => getJson("api/jobs?limit=1"); // asks for the token on 401
  try {
    await check();
  } catch (error) {
    showError(errorBox, `Cannot reach the jobwatch server: ${error.message}`);
  }
  const stream = new Stream({
    subscribe: () => (since === null ? { type: "subscribe:jobs" } : { type: "subscribe:jobs", since }),
    onMessage,
    onState: (state) => showConnection(connection, state),
    check,
  });
  stream.start();
  setInterval(tick, TICK_MS);
  fetchSpend();
  setInterval(fetchSpend, SPEND_MS);
}

main();
