// The notebook's log view (notebook/static/logview.js, served unchanged) on a web
// page: the widget model it expects from anywidget (widget_model.js), fed by the page
// instead of a kernel.
//
// Lines reach the view as the kernel sends them, "lines" messages {revision, add},
// drawn with the same ANSI rules as Python (ansi.js). The view asks for older lines
// with {type: "load_older", before_id}; the page answers through prepend().

import logview from "./widgets/logview.js";
import { drawnLine } from "./ansi.js";
import { WidgetModel } from "./widget_model.js";

const MAX_LINES = 1000; // as the notebook's LogView (jobwatch.notebook.logview.DEFAULT_MAX_LINES)

export class LogModel extends WidgetModel {
  /**
   * @param onLoadOlder called with the id of the oldest line held and how many
   *   lines there is room for, when the person asks for older lines.
   */
  constructor(onLoadOlder) {
    super({
      _key: `page-${Math.random().toString(16).slice(2)}`,
      lines: [],
      revision: 0,
      max_lines: MAX_LINES,
      level_filter: "all",
      has_older: false,
      total: 0,
      loading: false,
      world_size: null, // a distributed job's ranks: shows the rank and node filter
      nodes: [],
      rank_filter: null,
      node_filter: null,
    });
    this.held = 0; // lines the view holds (at most max_lines)
    this.onLoadOlder = onLoadOlder;
  }

  send(message) {
    // Only load_older can come: "sync" is asked for when a revision is skipped,
    // and the page never skips one.
    if (message && message.type === "load_older" && Number.isInteger(message.before_id)) {
      this.set("loading", true);
      this.onLoadOlder(message.before_id, this.state.max_lines - this.held);
    }
  }

  // -- fed by the page --------------------------------------------------------------

  /** Draw the view into `el`; returns a function that removes it. */
  mountView(el) {
    return this.mount(logview, el);
  }

  /** New lines from the API or the stream ({id, level, timestamp, message}). */
  append(lines) {
    if (!lines.length) return;
    this.held = Math.min(this.state.max_lines, this.held + lines.length);
    this.lines(lines.map(drawnLine));
    if (this.held >= this.state.max_lines) this.set("has_older", false); // no room for more
  }

  /** Whether a wire log line is of the rank and node picked (jobwatch/view/log_filter.py). */
  matches(line) {
    const { rank_filter: rank, node_filter: node } = this.state;
    return (rank === null || line.rank === rank) && (node === null || line.node === node);
  }

  /** The query parameters of GET /logs for the rank and node picked ("" for all). */
  whereQuery() {
    const { rank_filter: rank, node_filter: node } = this.state;
    return (
      (rank === null ? "" : `&rank=${rank}`) +
      (node === null ? "" : `&node=${encodeURIComponent(node)}`)
    );
  }

  /** Forget every line held (a new rank or node was picked). */
  clearLines() {
    this.held = 0;
    this.state.revision += 1;
    this.emit("msg:custom", { type: "lines", revision: this.state.revision, reset: true, add: [] });
    this.set("has_older", false);
    this.set("total", 0);
  }

  /** Older lines fetched on demand, and whether still older ones exist. */
  prepend(lines, hasOlder) {
    const room = this.state.max_lines - this.held;
    const kept = lines.slice(Math.max(0, lines.length - room));
    this.held += kept.length;
    if (kept.length) this.lines(kept.map(drawnLine));
    this.set("has_older", hasOlder && this.held < this.state.max_lines);
    this.set("loading", false);
  }

  /** The loading of older lines failed: the button works again for a retry. */
  failed() {
    this.set("loading", false);
  }

  lines(add) {
    this.state.revision += 1;
    this.emit("msg:custom", { type: "lines", revision: this.state.revision, add });
  }
}
