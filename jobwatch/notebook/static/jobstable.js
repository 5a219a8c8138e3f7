// The browser side of jobwatch's JobsTable (anywidget ES module, no build step).
//
// The rows live in one store per widget model (job id -> summary): filled
// from the `rows` and `revision` state when the page creates the model, then
// changed by "rows" messages from the kernel ({revision, rows: [patch],
// remove: [id]} or {reset, rows}); a message whose revision skips one asks
// the kernel for everything again ({type: "sync"}).
// A view sorts and filters with the fleet's rules (below; the same as
// jobwatch/view/fleet.py, and imported by the server's fleet page), draws at most once per animation frame, keeps one <tr> per job
// and only rewrites the rows that changed. Reads and writes the traits
// sort_by, descending, status_filter, name_filter and selected; reads totals,
// connection and max_rows. Remote text is only ever set through textContent.

const STATUSES = ["all", "running", "pending", "completed", "failed", "cancelled"];
const COLUMNS = [
  ["name", "Name"],
  ["status", "Status"],
  ["progress", "Progress"],
  ["timeRemaining", "Remaining"],
  ["costSoFar", "Cost"],
  ["gpuUtilization", "GPU"],
  ["gpuTemperature", "Temp"],
  ["updatedAt", "Updated"],
];
const DASH = "-";
// Seconds between two redraws of what moves by itself (running costs, "ago").
const TICK_MS = 1000;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- formats (as jobwatch/view/formatting.py) -----------------------------------------------------

export function formatDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return DASH;
  if (seconds > 0 && seconds < 1) return "<1s"; // time remaining never reads 0 before the end
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total}s`;
  const minutes = Math.floor(total / 60);
  const pad = (n) => String(n).padStart(2, "0");
  if (minutes < 60) return `${minutes}m ${pad(total % 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${pad(minutes % 60)}m`;
  return `${Math.floor(hours / 24)}d ${pad(hours % 24)}h`;
}

// Three significant digits, two to eight decimals (format_cost).
export function formatCost(value, currency) {
  if (typeof value !== "number" || !Number.isFinite(value)) return DASH;
  let decimals = 2;
  if (value !== 0) {
    const rounded = Number(Math.abs(value).toExponential(2));
    decimals = Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(rounded))));
  }
  let text = value.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
  if (value !== 0 && Number(text.replace(/,/g, "")) === 0) text = "<0.00000001";
  return currency ? `${text} ${currency}` : text;
}

function formatPercent(progress) {
  const value = Number.isFinite(progress) ? Math.min(Math.max(progress, 0), 100) : 0;
  return `${(Math.floor(value * 10 + 1e-9) / 10).toFixed(1)}%`;
}

function formatMoney(amounts) {
  const entries = Object.entries(amounts || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? entries.map(([c, v]) => formatCost(v, c)).join(", ") : DASH;
}

// -- a job's budget: the rules of jobwatch/view/budget.py -------------------------------------------
// The server's fleet page imports these too; tests/view/test_fleet_rules.py checks both agree.

function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * "spent" once the cost so far reaches the budget, "projected" while the estimated total
 * is above it, else "within"; null without a budget (budget_state).
 */
export function budgetState(budget, cost, projected) {
  const limit = finite(budget);
  if (limit === null) return null;
  const spent = finite(cost);
  const total = finite(projected);
  if (spent !== null && spent >= limit) return "spent";
  if (total !== null && total > limit) return "projected";
  return "within";
}

/** "est. 61.20 / budget 50.00 QUBIC", either part left out when unknown (projection_text). */
export function projectionText(projected, budget, currency) {
  const total = finite(projected);
  const limit = finite(budget);
  if (total === null && limit === null) return DASH;
  if (limit === null) return `est. ${formatCost(total, currency)}`;
  if (total === null) return `budget ${formatCost(limit, currency)}`;
  return `est. ${formatCost(total, "")} / budget ${formatCost(limit, currency)}`;
}

const BUDGET_WORDS = { projected: "projected over budget", spent: "over budget" };

/** "budget 50.00 QUBIC", then ": projected over budget" or ": over budget"; "" without one. */
export function budgetWords(budget, currency, state) {
  const limit = finite(budget);
  if (limit === null || !state) return "";
  const words = BUDGET_WORDS[state];
  return `budget ${formatCost(limit, currency)}${words ? `: ${words}` : ""}`;
}

// -- order and filter: the fleet's one set of rules ----------------------------------------------
// The same rules as jobwatch/view/fleet.py (sort_rows, matches, has_status), which `jobwatch
// top` uses; the server's fleet page imports them from this file (/assets/widgets/jobstable.js),
// and tests/view/test_fleet_rules.py checks the two agree on generated rows.

/** Where each status sorts under "status": what needs a look first (htop's running first). */
export const STATUS_ORDER = { running: 0, pending: 1, failed: 2, cancelled: 3, completed: 4 };
/** Columns the fleet sorts by, and whether they are numbers (fleet.py SORT_KEYS). */
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
const FINISHED = new Set(["completed", "failed", "cancelled"]);

function sortKey(value, row, key) {
  if (key === "status") {
    // own keys only: a status such as "toString" must not find Object.prototype's
    return Object.hasOwn(STATUS_ORDER, row.status)
      ? STATUS_ORDER[row.status]
      : Object.keys(STATUS_ORDER).length;
  }
  if (key === "name") return String(row.name || row.id || "").toLowerCase();
  const field = value(row, key);
  if (SORT_KEYS[key]) return typeof field === "number" && Number.isFinite(field) ? field : null;
  return typeof field === "string" ? field : null;
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

const asStored = (row, key) => row[key];

/**
 * Rows sorted by `key` (one of SORT_KEYS; descending if asked), ties by newest update
 * then id; rows without a value last either way. `value(row, key)` reads a column
 * (the fleet page passes its running costs moved on to now).
 */
export function sortRows(rows, key, descending, value = asStored) {
  const tieBreak = (a, b) =>
    compare(String(b.updatedAt || ""), String(a.updatedAt || "")) ||
    compare(String(a.id || ""), String(b.id || ""));
  const present = [];
  const missing = [];
  const keys = new Map(rows.map((row) => [row, sortKey(value, row, key)]));
  for (const row of rows) (keys.get(row) === null ? missing : present).push(row);
  const sign = descending ? -1 : 1;
  present.sort((a, b) => sign * compare(keys.get(a), keys.get(b)) || tieBreak(a, b));
  missing.sort(tieBreak);
  return present.concat(missing);
}

/** Whether the job's name or id contains `name`, ignoring case ("" keeps every job). */
export function matches(row, name) {
  if (!name) return true;
  const needle = name.toLowerCase();
  return (
    String(row.id || "").toLowerCase().includes(needle) ||
    String(row.name || "").toLowerCase().includes(needle)
  );
}

/** Whether the job passes the status filter: "", "all" or null keep every job; "stalled"
 * a stalled job that has not finished; else one status. */
export function hasStatus(row, status) {
  if (!status || status === "all") return true;
  if (status === "stalled") return Boolean(row.stalled) && !FINISHED.has(row.status);
  return row.status === status;
}

// -- the store of one model's rows -------------------------------------------------------

const stores = new Map(); // the model's _key -> {rows, received, versions, revision, views}

function fillFromState(store, model) {
  store.version += 1;
  store.rows = new Map();
  for (const row of model.get("rows") || []) store.rows.set(row.id, { ...row, _version: store.version });
  store.received = new Map(Array.from(store.rows.keys(), (id) => [id, Date.now()]));
  store.revision = model.get("revision") || 0;
}

function createStore(model) {
  const store = { rows: new Map(), received: new Map(), version: 0, revision: 0, views: new Set() };
  fillFromState(store, model);
  return store;
}

function applyMessage(store, model, msg) {
  if (!msg || msg.type !== "rows" || !Array.isArray(msg.rows)) return;
  if (msg.reset) {
    store.rows = new Map();
    store.received = new Map();
  } else {
    if (msg.revision <= store.revision) return; // already in the state this page started from
    if (msg.revision > store.revision + 1) model.send({ type: "sync" }); // one went missing
  }
  const now = Date.now();
  store.version += 1;
  for (const patch of msg.rows) {
    const row = { ...(store.rows.get(patch.id) || {}), ...patch, _version: store.version };
    store.rows.set(patch.id, row);
    store.received.set(patch.id, now);
  }
  for (const id of msg.remove || []) {
    store.rows.delete(id);
    store.received.delete(id);
  }
  store.revision = Math.max(store.revision, msg.revision);
  for (const view of store.views) view();
}

function follow(store, model) {
  const onMessage = (msg) => applyMessage(store, model, msg);
  const onRows = () => {
    fillFromState(store, model);
    for (const view of store.views) view();
  };
  model.on("msg:custom", onMessage);
  model.on("change:rows", onRows);
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:rows", onRows);
  };
}

function initialize({ model }) {
  const key = model.get("_key");
  const store = createStore(model);
  stores.set(key, store);
  const unfollow = follow(store, model);
  return () => {
    unfollow();
    if (stores.get(key) === store) stores.delete(key);
  };
}

// A running job's cost grows with its price between two summaries.
function liveCost(store, row) {
  const cost = row.costSoFar;
  if (typeof cost !== "number" || row.status !== "running" || typeof row.pricePerHour !== "number") {
    return cost;
  }
  const since = (Date.now() - (store.received.get(row.id) || Date.now())) / 1000;
  return cost + (row.pricePerHour * Math.max(0, since)) / 3600;
}

function ago(timestamp) {
  const when = Date.parse(timestamp);
  return Number.isNaN(when) ? DASH : `${formatDuration((Date.now() - when) / 1000)} ago`;
}

// -- a view --------------------------------------------------------------------------------

function statusCell(cell, row) {
  cell.replaceChildren();
  const badge = element("span", "jobwatch-jobs-status", String(row.status || DASH));
  badge.setAttribute("data-status", String(row.status));
  cell.append(badge);
  if (row.stalled) cell.append(element("span", "jobwatch-jobs-stalled", "stalled"));
  if (Number.isInteger(row.worldSize) && Number.isInteger(row.workers)) {
    // a distributed job: how many workers report, on how many nodes
    const workers = element("span", "jobwatch-jobs-workers", `${row.workers}w/${row.nodes}n`);
    workers.title = `${row.workers} of ${row.worldSize} ranks reporting, on ${row.nodes} node${row.nodes === 1 ? "" : "s"}`;
    cell.append(workers);
  }
  if (Number.isInteger(row.alerts) && row.alerts > 0) {
    const alerts = element("span", "jobwatch-jobs-alerts", `${row.alerts} alert${row.alerts > 1 ? "s" : ""}`);
    cell.append(alerts);
  }
}

function nameCell(cell, row) {
  cell.replaceChildren();
  cell.append(element("span", "jobwatch-jobs-name", String(row.name || row.id)));
  if (row.name && row.name !== row.id) cell.append(element("span", "jobwatch-jobs-id", String(row.id)));
  if (row.currentOperation) cell.title = String(row.currentOperation);
}

function progressCell(cell, row) {
  cell.replaceChildren();
  const bar = element("span", "jobwatch-jobs-bar");
  const fill = element("span", "jobwatch-jobs-fill");
  const percent = typeof row.progress === "number" ? Math.min(Math.max(row.progress, 0), 100) : 0;
  fill.style.width = `${percent}%`;
  fill.setAttribute("data-status", String(row.status));
  bar.append(fill);
  cell.append(bar, element("span", "jobwatch-jobs-percent", formatPercent(row.progress)));
}

function metric(value, unit) {
  return typeof value === "number" && Number.isFinite(value) ? `${Math.round(value)}${unit}` : DASH;
}

function createRow(model, id) {
  const tr = element("tr", "jobwatch-jobs-row");
  tr.setAttribute("data-id", id);
  tr.cells_ = {};
  for (const [key] of COLUMNS) {
    const td = element("td", `jobwatch-jobs-col-${key}`);
    tr.cells_[key] = td;
    tr.append(td);
  }
  tr.addEventListener("click", () => {
    model.set("selected", model.get("selected") === id ? "" : id);
    model.save_changes();
  });
  return tr;
}

function fillRow(store, tr, row) {
  nameCell(tr.cells_.name, row);
  statusCell(tr.cells_.status, row);
  progressCell(tr.cells_.progress, row);
  tr.cells_.timeRemaining.textContent = formatDuration(row.timeRemaining);
  tr.cells_.gpuUtilization.textContent = metric(row.gpuUtilization, "%");
  tr.cells_.gpuTemperature.textContent = metric(row.gpuTemperature, "°C");
  tickRow(store, tr, row);
  tr.setAttribute("data-status", String(row.status));
  tr.classList.toggle("jobwatch-jobs-row-stalled", Boolean(row.stalled));
  tr.version_ = row._version;
}

// The cost so far, and under it the projected spend and the budget; the cell's data-over
// ("projected", "spent") colours the figure that is over.
function costCell(cell, row, cost) {
  const over = budgetState(row.budget, cost, row.estimatedTotalCost);
  const shown = element("span", "jobwatch-jobs-cost", formatCost(cost, row.currency));
  const projection = projectionText(row.estimatedTotalCost, row.budget, row.currency);
  cell.replaceChildren(shown);
  if (projection !== DASH) cell.append(element("span", "jobwatch-jobs-budget", projection));
  cell.setAttribute("data-over", over || "none");
}

function tickRow(store, tr, row) {
  costCell(tr.cells_.costSoFar, row, liveCost(store, row));
  tr.cells_.updatedAt.textContent = ago(row.updatedAt);
  tr.cells_.updatedAt.title = String(row.updatedAt || "");
}

function header(model) {
  const thead = element("thead");
  const tr = element("tr");
  const cells = {};
  for (const [key, label] of COLUMNS) {
    const th = element("th", "jobwatch-jobs-sort", label);
    th.setAttribute("data-sort", key);
    th.setAttribute("role", "button");
    th.addEventListener("click", () => {
      if (model.get("sort_by") === key) {
        model.set("descending", !model.get("descending"));
      } else {
        model.set("sort_by", key);
        model.set("descending", false);
      }
      model.save_changes();
    });
    cells[key] = th;
    tr.append(th);
  }
  thead.append(tr);
  return { thead, cells };
}

function controls(model) {
  const bar = element("div", "jobwatch-jobs-controls");
  const status = element("select", "jobwatch-jobs-filter");
  status.setAttribute("aria-label", "Status");
  for (const value of STATUSES) {
    const option = element("option", "", value === "all" ? "All statuses" : value);
    option.value = value;
    status.append(option);
  }
  status.addEventListener("change", () => {
    model.set("status_filter", status.value);
    model.save_changes();
  });
  const name = element("input", "jobwatch-jobs-search");
  name.type = "search";
  name.placeholder = "Filter by name or id";
  name.setAttribute("aria-label", "Filter by name or id");
  let typing = null;
  name.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      model.set("name_filter", name.value);
      model.save_changes();
    }, 150);
  });
  const totals = element("span", "jobwatch-jobs-totals");
  const connection = element("span", "jobwatch-jobs-connection");
  bar.append(status, name, totals, connection);
  return { bar, status, name, totals, connection };
}

function render({ model, el }) {
  let store = stores.get(model.get("_key"));
  const unfollow = store ? null : follow((store = createStore(model)), model);
  const root = element("div", "jobwatch-jobs");
  const ui = controls(model);
  const scroller = element("div", "jobwatch-jobs-scroll");
  const table = element("table", "jobwatch-jobs-table");
  const head = header(model);
  const tbody = element("tbody");
  table.append(head.thead, tbody);
  scroller.append(table);
  const footer = element("div", "jobwatch-jobs-footer");
  const empty = element("div", "jobwatch-jobs-empty", "No jobs");
  root.append(ui.bar, scroller, empty, footer);
  el.replaceChildren(root);

  const trs = new Map(); // job id -> its <tr>
  let frame = null;

  function draw() {
    frame = null;
    const key = model.get("sort_by");
    const descending = model.get("descending");
    const status = model.get("status_filter");
    const name = model.get("name_filter");
    const most = model.get("max_rows") || 1000;
    const shown = sortRows(
      Array.from(store.rows.values()).filter(
        (row) => hasStatus(row, status) && matches(row, name),
      ),
      key,
      descending,
    );
    const drawn = shown.slice(0, most);
    const keep = new Set(drawn.map((row) => row.id));
    for (const [id, tr] of trs) {
      if (!keep.has(id)) {
        tr.remove();
        trs.delete(id);
      }
    }
    const selected = model.get("selected");
    let before = tbody.firstChild;
    for (const row of drawn) {
      let tr = trs.get(row.id);
      if (!tr) {
        tr = createRow(model, row.id);
        trs.set(row.id, tr);
      }
      if (tr.version_ !== row._version) fillRow(store, tr, row);
      tr.classList.toggle("jobwatch-jobs-selected", row.id === selected);
      if (tr !== before) tbody.insertBefore(tr, before); // moves only rows out of place
      else before = before.nextSibling;
    }
    for (const [column, th] of Object.entries(head.cells)) {
      th.setAttribute("aria-sort", column === key ? (descending ? "descending" : "ascending") : "none");
    }
    empty.hidden = drawn.length > 0;
    footer.textContent =
      shown.length > drawn.length ? `showing ${drawn.length} of ${shown.length} jobs; filter to narrow` : "";
    drawTotals();
  }

  function drawTotals() {
    const totals = model.get("totals") || {};
    const counts = totals.counts || {};
    const jobs = Object.values(counts).reduce((a, b) => a + b, 0);
    const stalled = totals.stalled ? ` (${totals.stalled} stalled)` : "";
    ui.totals.textContent =
      `${jobs} jobs, ${counts.running || 0} running${stalled} · ` +
      `running ${formatMoney(totals.running)} · today ${formatMoney(totals.today)}`;
    const connection = model.get("connection");
    ui.connection.textContent = connection;
    ui.connection.setAttribute("data-connection", connection);
    ui.status.value = model.get("status_filter");
    if (document.activeElement !== ui.name) ui.name.value = model.get("name_filter");
  }

  function schedule() {
    if (frame === null) frame = requestAnimationFrame(draw);
  }

  function tick() {
    for (const [id, tr] of trs) {
      const row = store.rows.get(id);
      if (row) tickRow(store, tr, row);
    }
  }

  store.views.add(schedule);
  const traits = ["sort_by", "descending", "status_filter", "name_filter", "selected", "max_rows"];
  for (const name of traits) model.on(`change:${name}`, schedule);
  model.on("change:totals", drawTotals);
  model.on("change:connection", drawTotals);
  const timer = setInterval(tick, TICK_MS);
  draw();
  return () => {
    clearInterval(timer);
    if (frame !== null) cancelAnimationFrame(frame);
    store.views.delete(schedule);
    for (const name of traits) model.off(`change:${name}`, schedule);
    model.off("change:totals", drawTotals);
    model.off("change:connection", drawTotals);
    if (unfollow) unfollow();
  };
}

export default { initialize, render };
