// A job's page: progress, time remaining, cost, GPU, system and training-metric charts,
// the log view and the alert banner, live.
//
// As the notebook monitor does (jobwatch/notebook/monitor.py): start from /monitor,
// then follow the WebSocket from that snapshot's seq (nothing missed, nothing twice;
// reconnects resume with the newest seq). A job that does not exist yet is waited
// for. Events are applied to JobState at once and drawn at most 4 times a second.

import { ApiError, Stream, getJson } from "./api.js";
import { GpuCharts, SCALAR_AXES, ScalarChart, SystemCharts } from "./charts.js";
import {
  alertLevel,
  element,
  setProgress,
  setText,
  showConnection,
  showError,
  stalledBadge,
  statusBadge,
} from "./dom.js";
import {
  configRows,
  formatCost,
  formatDuration,
  formatMemory,
  formatMetric,
  formatNumber,
  formatPercent,
  formatSystem,
  parseTime,
} from "./format.js";
import { JobState } from "./job_state.js";
import { LogModel } from "./log_model.js";
import { REFRESH_MS as WORKERS_MS, WorkersView } from "./workers.js";
import { budgetState, budgetWords } from "./widgets/jobstable.js";

const REFRESH_MS = 250; // at most 4 draws a second, as the notebook monitor
const TICK_MS = 1000; // elapsed time moves on between updates
const WAIT_MS = 1000; // between two looks for a job that does not exist yet
const HISTORY_POINTS = 500; // maxPoints asked for a time range
const SCALAR_POINTS = 2000; // points per training metric loaded at start
const ALL_HISTORY = 30 * 24 * 3600; // "all": the server's longest window (s)
const LATEST_SHOWN = 6; // training metrics named in the line of latest values
const NEWEST = "4611686018427387904"; // 2**62, the largest line id: beforeId for the newest
// A job id as the contract allows (jobwatch.contract.requests.valid_job_id): the server answers
// any other with 404, which would have the page wait for a job that can never exist.
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

const $ = (selector) => document.querySelector(selector);
const jobId = decodeURIComponent(location.pathname.slice(location.pathname.lastIndexOf("/jobs/") + 6));
const jobPath = `api/jobs/${encodeURIComponent(jobId)}`;
const state = new JobState();
const connection = $(".jobwatch-connection");
const errorBox = $(".jobwatch-error");
const gpuCharts = new GpuCharts({
  utilization: $(".jobwatch-chart-utilization"),
  memory: $(".jobwatch-chart-memory"),
  power: $(".jobwatch-chart-power"),
});
const systemCharts = new SystemCharts($(".jobwatch-chart-row-system"));
const scalarChart = new ScalarChart($(".jobwatch-chart-scalars"));
const logs = new LogModel(loadOlder);
const workersView = new WorkersView($(".jobwatch-workers"));
let workersAt = 0; // when /workers was last asked for (ms, performance.now())
let link = "connecting"; // the stream's state
let waiting = false;
let stream = null;
let drawn = { samples: -1, range: "", kind: "", scalars: -1, scale: "", axis: "" };
let kindPicked = false; // the person chose GPU or system charts; until then GPU when there is one
let lastDraw = 0;
let drawTimer = 0;
let newestCounted = null; // the newest line id counted in the server's total (logs.total)

function pageNow() {
  return Date.now() / 1000;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -- drawing -----------------------------------------------------------------------

function drawHeader(job) {
  const name = job.name && job.name !== job.id ? job.name : "";
  setText($(".jobwatch-name"), name);
  setText($(".jobwatch-id"), jobId);
  document.title = `${name || jobId} · jobwatch`;
  const status = waiting ? "waiting" : job.status || "pending";
  const badges = $(".jobwatch-badges");
  const key = `${status}|${state.stalled}`;
  if (badges.dataset.key !== key) {
    badges.dataset.key = key;
    badges.replaceChildren(statusBadge(status));
    if (state.stalled) badges.append(" ", stalledBadge());
  }
  setProgress($(".jobwatch-bar"), $(".jobwatch-bar-fill"), job.progress, job.status);
  setText($(".jobwatch-percent"), formatPercent(job.progress ?? 0));
  setText(
    $(".jobwatch-operation"),
    waiting
      ? `waiting for job ${jobId}: it shows here as soon as it is created`
      : job.currentOperation || "",
  );
  setText($(".jobwatch-elapsed"), formatDuration(state.elapsed(pageNow())));
  setText($(".jobwatch-eta"), formatDuration(state.timeRemaining));
  setText($(".jobwatch-cost"), formatCost(state.costSoFar, state.currency));
  setText($(".jobwatch-estimate"), formatCost(state.estimatedTotalCost, state.currency));
  drawBudget(job);
}

// The budget beside the cost; the figure that is over in its colour (data-over on the line).
function drawBudget(job) {
  const over = budgetState(job.budget, state.costSoFar, state.estimatedTotalCost);
  const words = budgetWords(job.budget, state.currency, over);
  setText($(".jobwatch-budget-words"), words ? ` · ${words}` : "");
  const line = $(".jobwatch-spend");
  if (line.dataset.over !== (over || "none")) line.dataset.over = over || "none";
}

function drawGpuLine() {
  const latest = state.samples[state.samples.length - 1];
  const system = $(".jobwatch-system");
  system.hidden = !state.hasSystem;
  if (latest && state.hasSystem) setText(system, formatSystem(latest.flat));
  if (!latest || !state.hasGpu) {
    setText($(".jobwatch-gpu"), "no GPU metrics reported");
    return;
  }
  const flat = latest.flat;
  const several = Object.keys(latest.gpus).length > 1; // the flat fields aggregate them
  const [mean, total, hottest] = several ? [" mean", " total", " hottest"] : ["", "", ""];
  setText(
    $(".jobwatch-gpu"),
    `GPU ${formatMetric(flat.gpuUtilization, "%")}${mean}` +
      ` · memory ${formatMemory(flat.gpuMemoryUsed, flat.gpuMemoryTotal)}${total}` +
      ` · ${formatMetric(flat.gpuTemperature, "°C")}${hottest}` +
      ` · ${formatMetric(flat.powerUsage, " W")}${total}` +
      (several ? ` (${Object.keys(latest.gpus).length} GPUs)` : ""),
  );
}

// Which charts show: GPU, system (a job without a GPU), or the person's pick when there are both.
function chartKind() {
  const picker = $(".jobwatch-chart-kind");
  $(".jobwatch-chart-kind-label").hidden = !(state.hasGpu && state.hasSystem);
  if (!kindPicked) picker.value = state.hasGpu || !state.hasSystem ? "gpu" : "system";
  return picker.value;
}

function drawCharts() {
  const section = $(".jobwatch-charts");
  section.hidden = !(state.hasGpu || state.hasSystem); // no empty charts
  const range = $(".jobwatch-range").value;
  const kind = chartKind();
  $(".jobwatch-chart-row-gpu").hidden = kind !== "gpu";
  $(".jobwatch-chart-row-system").hidden = kind !== "system";
  const changed = drawn.samples !== state.samplesVersion || drawn.range !== range || drawn.kind !== kind;
  if (!section.hidden && changed) {
    const charts = kind === "gpu" ? gpuCharts : systemCharts;
    charts.update(state.samples, range === "all" ? null : Number(range), pageNow());
    drawn = { ...drawn, samples: state.samplesVersion, range, kind };
  }
  const training = $(".jobwatch-training");
  training.hidden = state.scalars.size === 0;
  const scale = $(".jobwatch-y-scale").value;
  const axis = $(".jobwatch-x-axis").value;
  const scalarsChanged =
    drawn.scalars !== state.scalarsVersion || drawn.scale !== scale || drawn.axis !== axis;
  if (!training.hidden && scalarsChanged) {
    scalarChart.update(state.scalars, scale === "log", axis, {
      currency: state.currency,
      started: parseTime(state.job.startedAt),
    });
    drawn = { ...drawn, scalars: state.scalarsVersion, scale, axis };
  }
  const latest = Array.from(state.latestScalars.entries()).sort(([a], [b]) => a.localeCompare(b));
  const shown = latest.slice(0, LATEST_SHOWN).map(([name, p]) => `${name} ${formatNumber(p.value)}`);
  const more = latest.length > LATEST_SHOWN ? ` (+${latest.length - LATEST_SHOWN} more)` : "";
  setText($(".jobwatch-scalars-latest"), shown.length ? `${shown.join(" · ")}${more} at step ${Math.max(...latest.map(([, p]) => p.step))}` : "");
}

function drawAlerts() {
  const banner = $(".jobwatch-alert");
  const alert = state.alerts[state.alerts.length - 1];
  banner.hidden = !alert;
  if (!alert) return;
  banner.dataset.level = alertLevel(alert.level);
  setText($(".jobwatch-alert-title"), alert.title);
  setText($(".jobwatch-alert-text"), alert.text ? `: ${alert.text}` : "");
  const count = Math.max(Number(state.job.alerts) || 0, state.alerts.length);
  setText($(".jobwatch-alert-count"), count > 1 ? ` (${count} alerts)` : "");
  const list = $(".jobwatch-alert-list");
  if (list.childElementCount !== state.alerts.length || list.dataset.newest !== String(alert.seq)) {
    list.dataset.newest = String(alert.seq);
    list.replaceChildren(
      ...state.alerts
        .slice()
        .reverse()
        .map((a) => {
          const item = element("li", `jobwatch-alert-item`);
          item.dataset.level = alertLevel(a.level);
          const when = new Date(a.timestamp);
          const time = Number.isNaN(when.getTime()) ? "" : `${when.toLocaleTimeString()} `;
          item.textContent = `${time}[${alertLevel(a.level)}] ${a.title}${a.text ? `: ${a.text}` : ""} (${a.source ?? "?"})`;
          return item;
        }),
    );
  }
}

let configShown = "";

function drawConfig(job) {
  const text = JSON.stringify(job.config ?? null);
  if (text === configShown) return; // a config changes seldom: redraw only then
  configShown = text;
  const rows = configRows(job.config);
  const box = $(".jobwatch-config");
  box.hidden = rows.length === 0;
  setText(box.querySelector("summary"), `config (${rows.length} keys)`);
  box.querySelector("tbody").replaceChildren(
    ...rows.map(([key, value]) => {
      const row = element("tr");
      row.append(element("td", "jobwatch-config-key", key), element("td", "jobwatch-config-value", value));
      return row;
    }),
  );
}

function drawFinal(job) {
  const final = $(".jobwatch-final");
  final.hidden = !state.finished;
  if (!state.finished) return;
  final.dataset.status = job.status;
  if (job.status === "completed") {
    const result = job.result === null || job.result === undefined ? "" : ` — result: ${JSON.stringify(job.result, null, 1).slice(0, 2000)}`;
    setText(final, `✔ completed${result}`);
  } else {
    setText(final, `✘ ${job.status}: ${job.error || "no error message"}`);
  }
}

function draw() {
  drawTimer = 0;
  lastDraw = performance.now();
  const job = state.job;
  drawHeader(job);
  drawGpuLine();
  if (job.worldSize) workersView.drawGpus(state.samples);
  drawCharts();
  drawAlerts();
  drawConfig(job);
  drawFinal(job);
  const fresh = state.takeNewLogs();
  if (fresh.length) {
    const counted = newestCounted === null ? [] : fresh.filter((line) => line.id > newestCounted);
    logs.set("total", logs.get("total") + counted.length);
    logs.append(fresh);
  }
  showConnection(connection, waiting ? "waiting" : state.finished && link !== "live" ? "ended" : link);
}

function schedule() {
  if (drawTimer) return;
  drawTimer = setTimeout(draw, Math.max(0, lastDraw + REFRESH_MS - performance.now()));
}

// -- loading -------------------------------------------------------------------------

// The job's /monitor answer; waits while the job does not exist. Null if it never can.
async function snapshot() {
  for (;;) {
    try {
      const answer = await getJson(`${jobPath}/monitor`);
      waiting = false;
      return answer;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        waiting = true;
        state.job = { id: jobId };
        schedule();
      } else if (error instanceof ApiError) {
        showError(errorBox, error.message); // e.g. a malformed job id: nothing to wait for
        showConnection(connection, "closed");
        return null;
      } else {
        showError(errorBox, `Cannot reach the jobwatch server: ${error.message}`);
      }
    }
    await sleep(WAIT_MS);
  }
}

// How many log lines the job has (the newest's id with it), before the snapshot:
// every line the snapshot or the stream adds after that newest one is counted on top.
async function countLines() {
  const answer = await getJson(`${jobPath}/logs?beforeId=${NEWEST}&limit=1`);
  const newest = answer.logs[answer.logs.length - 1];
  return { total: answer.total, newest: newest ? newest.id : 0 };
}

async function loadHistory() {
  const range = $(".jobwatch-range").value;
  const window = range === "all" ? ALL_HISTORY : Number(range);
  try {
    const answer = await getJson(`${jobPath}/metrics?timeRange=${window}&maxPoints=${HISTORY_POINTS}`);
    state.replaceSamples(answer.metrics);
    schedule();
  } catch (error) {
    showError(errorBox, `Could not load the GPU metrics: ${error.message}`);
  }
}

async function loadScalars() {
  try {
    const answer = await getJson(`${jobPath}/scalars?maxPoints=${SCALAR_POINTS}`);
    state.mergeScalars(answer.scalars);
    schedule();
  } catch (error) {
    showError(errorBox, `Could not load the training metrics: ${error.message}`);
  }
}

// The ranks of a distributed job: on load, every WORKERS_MS while it runs, and at once
// after a worker alert (a rank fell silent, straggles or caught up).
async function loadWorkers(force = false) {
  if (!state.job.worldSize) return;
  if (!force && performance.now() - workersAt < WORKERS_MS) return;
  workersAt = performance.now();
  try {
    workersView.setWorkers(await getJson(`${jobPath}/workers`), pageNow());
  } catch (error) {
    showError(errorBox, `Could not load the workers: ${error.message}`);
  }
}

async function loadOlder(beforeId, room) {
  if (room <= 0) {
    logs.prepend([], false);
    return;
  }
  const limit = Math.min(room, 1000);
  try {
    const answer = await getJson(`${jobPath}/logs?beforeId=${beforeId}&limit=${limit}`);
    logs.set("total", Math.max(logs.get("total"), answer.total));
    logs.prepend(answer.logs, answer.logs.length === limit);
  } catch (error) {
    logs.failed();
    showError(errorBox, `Could not load older log lines: ${error.message}`);
  }
}

function onMessage(message) {
  if (message.type === "error") {
    showError(errorBox, message.error?.message ?? "the server refused the subscription");
    return;
  }
  if (!state.apply(message, pageNow())) return;
  const source = message.type === "JOB_ALERT" ? message.data?.alert?.source : null;
  if (source === "worker_silent" || source === "straggler" || message.type === "JOB_COMPLETED") {
    loadWorkers(true);
  }
  if (state.finished) stream.close(); // nothing more comes
  schedule();
}

async function main() {
  if (!JOB_ID.test(jobId)) {
    setText($(".jobwatch-id"), jobId);
    showError(
      errorBox,
      `${JSON.stringify(jobId)} is not a job id: job ids are 1-128 characters of letters,` +
        " digits and . _ : @ -, starting with a letter or digit.",
    );
    showConnection(connection, "closed");
    return;
  }
  logs.mount($(".jobwatch-logs-host"));
  $(".jobwatch-range").addEventListener("change", loadHistory);
  $(".jobwatch-y-scale").addEventListener("change", schedule);
  const asked = new URLSearchParams(location.search).get("x");
  if (SCALAR_AXES.includes(asked)) $(".jobwatch-x-axis").value = asked;
  $(".jobwatch-x-axis").addEventListener("change", () => {
    // kept in the URL (?x=cost), so a link opens the chart against the same axis
    const query = new URLSearchParams(location.search);
    const axis = $(".jobwatch-x-axis").value;
    if (axis === "step") query.delete("x");
    else query.set("x", axis);
    const search = query.toString();
    history.replaceState(null, "", search ? `?${search}${location.hash}` : location.pathname);
    schedule();
  });
  $(".jobwatch-chart-kind").addEventListener("change", () => {
    kindPicked = true;
    schedule();
  });
  draw();
  const counted = await countLines().catch(() => null); // waited for below if the job is missing
  const first = await snapshot();
  if (first === null) return;
  showError(errorBox, "");
  state.loadSnapshot(first, pageNow());
  // If even this fails, the lines held are the total until "Load older lines" answers.
  const count = counted ?? (await countLines().catch(() => ({ total: 0, newest: 0 })));
  newestCounted = count.newest;
  const held = state.newLogs.filter((line) => line.id > count.newest).length;
  logs.set("total", count.total + held);
  logs.set("has_older", count.total + held > state.newLogs.length);
  await loadHistory();
  await loadWorkers(true);
  stream = new Stream({
    subscribe: () => ({ type: "subscribe:job", subscriptionId: jobId, since: state.seq }),
    onMessage,
    onState: (value) => {
      link = value;
      // A resumed stream replays only the newest progress event: the training
      // metrics of earlier ones come from /scalars, each time the stream is live.
      if (value === "live") loadScalars();
      schedule();
    },
    check: () => getJson(`${jobPath}`),
  });
  if (state.finished) loadScalars(); // no stream: its history is all there is
  else stream.start();
  draw();
  setInterval(() => {
    if (state.finished) return;
    schedule();
    loadWorkers();
  }, TICK_MS);
}

main();
