// The workers of a distributed job (anywidget ES module, no build step): a heat strip of
// every GPU's utilization grouped by node, and a table of the ranks (node, rank, status,
// last seen, progress, step rate, straggler). The notebook monitor draws it from its
// WorkersView widget (jobwatch/notebook/workers.py); the job page serves this file
// unchanged at /assets/widgets/workers.js and feeds it the same traits from its own
// model (server/web/static/widget_model.js), so both draw the same.
//
// Reads the synced traits:
//   world_size  the job's ranks (null: a job of one worker, and nothing is shown),
//   rows        one list of texts per rank, by rank: [node, rank, status, last seen,
//               progress, step rate, straggler, current operation],
//   heat        one entry per node, in order: [node, [label, ...], [utilization % or null, ...]].
// Each side writes the texts with its own formatting rules (jobwatch/view/formatting.py,
// server/web/static/format.js, which follow each other). Remote text only ever goes in
// through textContent; a status goes into an attribute only after it was checked against
// a fixed list. One small cell per GPU, a node's cells side by side and the nodes
// wrapping, stays readable from 1 GPU to 64 nodes of 8 GPUs.

const STATUSES = ["running", "silent", "left", "finished"];
const HEADERS = ["node", "rank", "status", "last seen", "progress", "step rate", "straggler"];
const STATUS = 2; // the status column of a row
const STRAGGLER = 6; // the straggler column ("straggler" or "")
const OPERATION = 7; // the current operation: the row's tooltip

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function setText(node, text) {
  const value = String(text ?? "");
  if (node.textContent !== value) node.textContent = value;
}

/** A heat cell's background for a utilization in % (null: not reported). */
export function heatColor(utilization) {
  if (typeof utilization !== "number" || !Number.isFinite(utilization)) return "transparent";
  const share = Math.round(Math.max(0, Math.min(100, utilization)));
  return `color-mix(in srgb, var(--jobwatch-heat-hot) ${share}%, var(--jobwatch-heat-cold))`;
}

/** "512 of 512 ranks on 64 nodes · 1 silent · 2 stragglers" of a world size and its rows. */
export function summary(worldSize, rows) {
  const nodes = new Set(rows.map((row) => row[0])).size;
  const silent = rows.filter((row) => row[STATUS] === "silent").length;
  const stragglers = rows.filter((row) => row[STRAGGLER]).length;
  return (
    `${rows.length} of ${worldSize} ranks on ${nodes} node${nodes === 1 ? "" : "s"}` +
    (silent ? ` · ${silent} silent` : "") +
    (stragglers ? ` · ${stragglers} straggler${stragglers === 1 ? "" : "s"}` : "")
  );
}

function heatLegend() {
  const legend = element("span", "jobwatch-heat-legend");
  legend.append("GPU utilization 0 %");
  for (const share of [0, 50, 100]) {
    const swatch = element("span", "jobwatch-heat-swatch");
    swatch.style.background = heatColor(share);
    legend.append(swatch);
  }
  legend.append("100 %");
  return legend;
}

function render({ model, el }) {
  const root = element("section", "jobwatch-workers");
  root.setAttribute("aria-label", "Workers");
  const head = element("div", "jobwatch-workers-head");
  const count = element("span", "jobwatch-workers-summary");
  head.append(element("b", "", "Workers"), " ", count, heatLegend());
  const heat = element("div", "jobwatch-heat");
  heat.setAttribute("aria-label", "GPU utilization by node");
  const details = element("details", "jobwatch-workers-details");
  details.open = true;
  const table = element("table", "jobwatch-workers-table");
  const header = element("tr");
  header.append(...HEADERS.map((text) => element("th", "", text)));
  const thead = element("thead");
  thead.append(header);
  const body = element("tbody");
  table.append(thead, body);
  details.append(element("summary", "", "ranks"), table);
  root.append(head, heat, details);
  el.append(root);

  function drawRows() {
    const worldSize = model.get("world_size");
    root.hidden = worldSize === null || worldSize === undefined;
    if (root.hidden) return;
    const rows = model.get("rows") || [];
    setText(count, summary(worldSize, rows));
    // Rows are reused in place (a redraw of 512 ranks sets only the texts that changed).
    while (body.rows.length > rows.length) body.lastChild.remove();
    while (body.rows.length < rows.length) {
      const row = element("tr", "jobwatch-worker");
      for (let i = 0; i < HEADERS.length; i++) row.append(element("td"));
      body.append(row);
    }
    rows.forEach((cells, index) => {
      const row = body.rows[index];
      const status = STATUSES.includes(cells[STATUS]) ? cells[STATUS] : "running";
      if (row.dataset.status !== status) row.dataset.status = status;
      if (cells[STRAGGLER]) row.dataset.straggler = "true";
      else delete row.dataset.straggler;
      for (let i = 0; i < HEADERS.length; i++) setText(row.cells[i], cells[i]);
      const operation = String(cells[OPERATION] ?? "");
      if (row.title !== operation) row.title = operation;
    });
  }

  let heatShape = ""; // the nodes and GPUs drawn: cells are rebuilt only when they change
  let heatValues = []; // the utilization drawn in each cell, in order

  function cellTitle(node, label, utilization) {
    const value = typeof utilization === "number" ? `${Math.round(utilization)} %` : "not reported";
    return `${node} ${label}: ${value}`;
  }

  function drawHeat() {
    const nodes = model.get("heat") || [];
    heat.hidden = nodes.length === 0;
    const shape = JSON.stringify(nodes.map(([node, labels]) => [node, labels]));
    const values = nodes.flatMap(([, , utilizations]) => utilizations);
    if (shape === heatShape) {
      // The same GPUs: only the colours (and tooltips) of those that changed; a colour
      // change repaints, it lays out nothing.
      const cells = heat.getElementsByClassName("jobwatch-heat-cell");
      let i = 0;
      for (const [node, labels, utilizations] of nodes) {
        labels.forEach((label, k) => {
          if (utilizations[k] !== heatValues[i]) {
            cells[i].style.background = heatColor(utilizations[k]);
            cells[i].title = cellTitle(node, label, utilizations[k]);
          }
          i += 1;
        });
      }
      heatValues = values;
      return;
    }
    heatShape = shape;
    heatValues = values;
    heat.replaceChildren(
      ...nodes.map(([node, labels, utilizations]) => {
        const group = element("div", "jobwatch-heat-node");
        group.append(element("span", "jobwatch-heat-label", node || "?"));
        labels.forEach((label, k) => {
          const cell = element("span", "jobwatch-heat-cell");
          cell.style.background = heatColor(utilizations[k]);
          cell.title = cellTitle(node, label, utilizations[k]);
          group.append(cell);
        });
        return group;
      }),
    );
  }

  model.on("change:rows", drawRows);
  model.on("change:world_size", drawRows);
  model.on("change:heat", drawHeat);
  drawRows();
  drawHeat();
  return () => {
    model.off("change:rows", drawRows);
    model.off("change:world_size", drawRows);
    model.off("change:heat", drawHeat);
  };
}

export default { render };
