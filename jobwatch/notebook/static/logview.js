// The browser side of jobwatch's LogView (anywidget ES module, no build step).
//
// The lines live in one store per widget model: filled from the `lines` and
// `revision` state when the page creates the model, then changed by "lines"
// messages from the kernel ({revision, add, first} or {reset, add}); a
// message whose revision skips one asks the kernel for everything again
// ({type: "sync"}). Every view of the model draws from that store.
// Reads the synced traits level_filter, has_older, total, loading, max_lines and,
// for a distributed job, world_size, nodes, rank_filter and node_filter; writes
// level_filter, rank_filter and node_filter; sends {type: "load_older", before_id}.
// The level filter hides rows here; the rank and node filters are the model's: the
// kernel (or the page) loads that rank's or node's lines and keeps only those.
// Rows are keyed by log line id so that a change only adds and removes the
// rows that changed. Remote text is only ever set through textContent (never
// parsed as HTML); a colour goes into a style only as a checked #rrggbb.

const FILTERS = [
  ["all", "All"],
  ["info", "Info"],
  ["warning", "Warning"],
  ["error", "Error"],
];
const BADGES = { info: "INFO", warning: "WARN", error: "ERROR" };
// The traits of the rank and node filter (a distributed job's).
const WHERE_TRAITS = ["world_size", "nodes", "rank_filter", "node_filter"];
// Within this many pixels of the end the list counts as "at the bottom".
const BOTTOM_SLACK_PX = 4;

const numberFormat = new Intl.NumberFormat();

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

// "HH:MM:SS" in the viewer's time zone; the raw text if it is not a date.
function localTime(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

const HEX_COLOUR = /^#[0-9a-f]{6}$/;
const SPAN_FLAGS = ["bold", "dim", "italic", "underline"];

// One styled run of a line with colours: fg/bg a palette index 0-15 (a class,
// so the theme decides the shade), "#rrggbb", or "inverse" (the page's own
// background or text colour).
function spanElement(span) {
  const node = element("span", "", String(span.text));
  const classes = SPAN_FLAGS.filter((flag) => span[flag] === true).map((f) => `jobwatch-ansi-${f}`);
  for (const [key, property] of [["fg", "color"], ["bg", "backgroundColor"]]) {
    const colour = span[key];
    if (Number.isInteger(colour) && colour >= 0 && colour <= 15) {
      classes.push(`jobwatch-ansi-${key}-${colour}`);
    } else if (colour === "inverse") {
      classes.push(`jobwatch-ansi-${key}-inverse`);
    } else if (typeof colour === "string" && HEX_COLOUR.test(colour)) {
      node.style[property] = colour;
    }
  }
  node.className = classes.join(" ");
  return node;
}

function messageElement(line) {
  if (!Array.isArray(line.spans)) return element("span", "jobwatch-log-message", line.message);
  const message = element("span", "jobwatch-log-message");
  message.append(...line.spans.map(spanElement));
  return message;
}

// -- the store of one model's lines ---------------------------------------------------

const stores = new Map(); // the model's _key -> {lines, revision, views}

function createStore(model) {
  return {
    lines: Array.from(model.get("lines") || []),
    revision: model.get("revision") || 0,
    views: new Set(),
  };
}

// Lines ordered by id: the held ones and `add`, without those older than `first`.
function merged(held, add, first) {
  let lines = held;
  const newest = held.length ? held[held.length - 1].id : -Infinity;
  if (add.length && add[0].id > newest) {
    lines = held.concat(add); // the common case: new lines at the end
  } else if (add.length) {
    const byId = new Map(held.map((line) => [line.id, line]));
    for (const line of add) byId.set(line.id, line);
    lines = Array.from(byId.values()).sort((a, b) => a.id - b.id);
  }
  if (first !== null && first !== undefined) lines = lines.filter((line) => line.id >= first);
  return lines;
}

function applyMessage(store, model, msg) {
  if (!msg || msg.type !== "lines" || !Array.isArray(msg.add)) return;
  if (msg.reset) {
    store.lines = Array.from(msg.add);
  } else {
    if (msg.revision <= store.revision) return; // already in the state this page started from
    if (msg.revision > store.revision + 1) model.send({ type: "sync" }); // one went missing
    store.lines = merged(store.lines, msg.add, msg.first);
  }
  store.revision = Math.max(store.revision, msg.revision);
  const most = model.get("max_lines");
  if (most > 0 && store.lines.length > most) store.lines = store.lines.slice(-most);
  for (const view of store.views) view();
}

// Before the widget is first displayed the kernel changes the state itself.
function onState(store, model) {
  store.lines = Array.from(model.get("lines") || []);
  store.revision = model.get("revision") || 0;
  for (const view of store.views) view();
}

function follow(store, model) {
  const onMessage = (msg) => applyMessage(store, model, msg);
  const onLines = () => onState(store, model);
  model.on("msg:custom", onMessage);
  model.on("change:lines", onLines);
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:lines", onLines);
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

function lineRow(line) {
  const row = element("div", "jobwatch-log-line");
  row.setAttribute("data-id", String(line.id));
  row.setAttribute("data-level", line.level);
  const time = element("span", "jobwatch-log-time", localTime(line.timestamp));
  time.title = line.timestamp;
  row.title = line.timestamp;
  const badge = element("span", "jobwatch-log-level", BADGES[line.level] || String(line.level));
  row.append(time, badge);
  if (Number.isInteger(line.rank)) {
    // a distributed job's line: which rank (and node) wrote it
    const node = typeof line.node === "string" ? line.node : "";
    const where = element("span", "jobwatch-log-where", node ? `${node}/${line.rank}` : `rank ${line.rank}`);
    where.title = `rank ${line.rank}${node ? ` on node ${node}` : ""}`;
    row.setAttribute("data-rank", String(line.rank));
    row.append(where);
  }
  row.append(messageElement(line));
  return row;
}

function matches(filter, level) {
  return filter === "all" || filter === level;
}

/** A rank as typed in the filter: null for "all ranks", NaN when it is not one of the
 * job's ranks (a whole number from 0 to world size - 1). */
export function typedRank(text, worldSize) {
  const value = String(text).trim();
  if (value === "") return null;
  if (!/^\d+$/.test(value)) return NaN;
  const rank = Number(value);
  return Number.isInteger(worldSize) && rank >= worldSize ? NaN : rank;
}

// "rank 3 on node n1", "rank 3", "node n1", or "" (jobwatch/view/log_filter.py describe).
function whereWords(rank, node) {
  const words = [];
  if (Number.isInteger(rank)) words.push(`rank ${rank}`);
  if (typeof node === "string") words.push(`${words.length ? "on " : ""}node ${node}`);
  return words.join(" ");
}

function render({ model, el }) {
  // A host that does not call initialize: the view follows the messages itself.
  let store = stores.get(model.get("_key"));
  const unfollow = store ? null : follow((store = createStore(model)), model);
  const root = element("div", "jobwatch-logview");

  const header = element("div", "jobwatch-log-header");
  const filter = element("select", "jobwatch-log-filter");
  filter.setAttribute("aria-label", "Log level");
  for (const [value, label] of FILTERS) {
    const option = element("option", "", label);
    option.value = value;
    filter.append(option);
  }
  // A distributed job's lines of one rank and/or one node.
  const where = element("span", "jobwatch-log-where-filter");
  const rank = element("input", "jobwatch-log-rank");
  rank.type = "text";
  rank.inputMode = "numeric";
  rank.placeholder = "all ranks";
  rank.setAttribute("aria-label", "Rank");
  const node = element("select", "jobwatch-log-node");
  node.setAttribute("aria-label", "Node");
  where.append(rank, node);
  const count = element("span", "jobwatch-log-count");
  const older = element("button", "jobwatch-log-older", "Load older lines");
  older.type = "button";
  header.append(filter, where, count, older);

  const body = element("div", "jobwatch-log-body");
  const list = element("div", "jobwatch-log-list");
  list.setAttribute("role", "log");
  const empty = element("div", "jobwatch-log-empty", "No log lines");
  const pill = element("button", "jobwatch-log-newpill");
  pill.type = "button";
  pill.hidden = true;
  body.append(list, empty, pill);
  root.append(header, body);
  el.append(root);

  let rows = new Map(); // log line id -> row element, in list order
  let stick = true; // follow new lines while the user is at the bottom
  let unseen = 0; // matching lines that arrived while not sticking

  function atBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight <= BOTTOM_SLACK_PX;
  }

  function scrollToBottom() {
    list.scrollTop = list.scrollHeight;
  }

  function showPill() {
    pill.hidden = unseen === 0;
    pill.textContent = `↓ ${numberFormat.format(unseen)} new line${unseen === 1 ? "" : "s"}`;
  }

  function resume() {
    stick = true;
    unseen = 0;
    showPill();
    scrollToBottom();
  }

  function updateCount() {
    const lines = store.lines;
    const level = model.get("level_filter");
    const total = Math.max(model.get("total"), lines.length);
    const shown = lines.filter((line) => matches(level, line.level)).length;
    const of = whereWords(model.get("rank_filter"), model.get("node_filter"));
    const suffix = of ? ` of ${of}` : "";
    if (level === "all") {
      count.textContent =
        `showing ${numberFormat.format(shown)} of ${numberFormat.format(total)}` + suffix;
    } else {
      count.textContent =
        `showing ${numberFormat.format(shown)} ${level} of ${numberFormat.format(lines.length)}` +
        ` loaded (${numberFormat.format(total)} in all)` + suffix;
    }
    empty.hidden = shown > 0;
  }

  function updateWhere() {
    const worldSize = model.get("world_size");
    where.hidden = !Number.isInteger(worldSize);
    if (where.hidden) return;
    const chosen = model.get("rank_filter");
    if (document.activeElement !== rank || rank.getAttribute("aria-invalid") !== "true") {
      rank.value = Number.isInteger(chosen) ? String(chosen) : "";
      rank.removeAttribute("aria-invalid");
    }
    rank.title = `A rank from 0 to ${worldSize - 1}; empty for all ranks`;
    const nodes = Array.isArray(model.get("nodes")) ? model.get("nodes") : [];
    const picked = model.get("node_filter");
    const options = ["", ...nodes];
    if (typeof picked === "string" && !nodes.includes(picked)) options.push(picked);
    const labels = Array.from(node.options, (option) => option.value);
    if (labels.join("\n") !== options.join("\n")) {
      node.replaceChildren(
        ...options.map((value) => {
          const option = element("option", "", value === "" ? "all nodes" : value);
          option.value = value;
          return option;
        }),
      );
    }
    node.value = typeof picked === "string" ? picked : "";
    root.setAttribute("data-where", whereWords(chosen, picked));
    updateCount();
  }

  function updateOlder() {
    const loading = model.get("loading");
    // "older" needs a line to be older than
    older.hidden = !model.get("has_older") || store.lines.length === 0;
    older.disabled = loading;
    older.textContent = loading ? "Loading older lines…" : "Load older lines";
  }

  // The first held row at or below the top edge, and its distance from it,
  // so that rows added or dropped above it do not move what the user reads.
  function anchor(keep) {
    for (const [id, row] of rows) {
      const visible = row.offsetHeight > 0; // filtered-out rows have no box
      if (visible && keep.has(id) && row.offsetTop + row.offsetHeight > list.scrollTop) {
        return { row, offset: row.offsetTop - list.scrollTop };
      }
    }
    return null;
  }

  function updateRows() {
    const lines = store.lines;
    const keep = new Set(lines.map((line) => line.id));
    const hold = stick ? null : anchor(keep);
    const level = model.get("level_filter");
    const newest = rows.size ? Array.from(rows.keys()).pop() : -Infinity;

    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.remove();
        rows.delete(id);
      }
    }
    // Held rows are a subsequence of `lines` (both ordered by id): walk both
    // and insert each new row before the next held one.
    const ordered = new Map();
    let cursor = list.firstChild;
    let arrived = 0;
    for (const line of lines) {
      let row = rows.get(line.id);
      if (row) {
        cursor = row.nextSibling;
      } else {
        row = lineRow(line);
        list.insertBefore(row, cursor);
        if (line.id > newest && matches(level, line.level)) arrived += 1;
      }
      ordered.set(line.id, row);
    }
    rows = ordered;

    if (stick) {
      scrollToBottom();
    } else {
      if (hold) list.scrollTop = hold.row.offsetTop - hold.offset;
      unseen += arrived;
      showPill();
    }
    updateCount();
  }

  function updateFilter() {
    const level = model.get("level_filter");
    filter.value = level;
    root.setAttribute("data-filter", level);
    unseen = 0;
    showPill();
    if (stick) scrollToBottom();
    updateCount();
  }

  const onScroll = () => {
    stick = atBottom();
    if (stick && unseen) {
      unseen = 0;
      showPill();
    }
  };
  const onFilter = () => {
    model.set("level_filter", filter.value);
    model.save_changes();
  };
  const onRank = () => {
    const worldSize = model.get("world_size");
    const chosen = typedRank(rank.value, worldSize);
    if (Number.isNaN(chosen)) {
      rank.setAttribute("aria-invalid", "true");
      rank.title = `Not a rank of this job: a whole number from 0 to ${worldSize - 1}`;
      return;
    }
    rank.removeAttribute("aria-invalid");
    if (chosen === model.get("rank_filter")) return;
    model.set("rank_filter", chosen);
    model.save_changes();
  };
  const onNode = () => {
    const picked = node.value === "" ? null : node.value;
    if (picked === model.get("node_filter")) return;
    model.set("node_filter", picked);
    model.save_changes();
  };
  const onOlder = () => {
    const lines = store.lines;
    if (model.get("loading") || lines.length === 0) return;
    model.send({ type: "load_older", before_id: lines[0].id });
  };

  list.addEventListener("scroll", onScroll);
  filter.addEventListener("change", onFilter);
  rank.addEventListener("change", onRank);
  // Keys typed here are the input's: JupyterLab's shortcuts (Enter, "a", "d d") would
  // act on the notebook otherwise, as ipywidgets' own text boxes stop them too.
  rank.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (event.key === "Enter") onRank();
  });
  node.addEventListener("change", onNode);
  older.addEventListener("click", onOlder);
  pill.addEventListener("click", resume);
  const onLines = () => {
    updateRows();
    updateOlder();
  };
  store.views.add(onLines);
  model.on("change:level_filter", updateFilter);
  model.on("change:total", updateCount);
  model.on("change:has_older", updateOlder);
  model.on("change:loading", updateOlder);
  for (const name of WHERE_TRAITS) model.on(`change:${name}`, updateWhere);

  updateFilter();
  updateWhere();
  updateOlder();
  updateRows();
  // The element may not be attached yet; scroll once it has a layout.
  requestAnimationFrame(() => {
    if (stick) scrollToBottom();
  });

  return () => {
    store.views.delete(onLines);
    if (unfollow) unfollow();
    model.off("change:level_filter", updateFilter);
    model.off("change:total", updateCount);
    model.off("change:has_older", updateOlder);
    model.off("change:loading", updateOlder);
    for (const name of WHERE_TRAITS) model.off(`change:${name}`, updateWhere);
  };
}

export default { initialize, render };
