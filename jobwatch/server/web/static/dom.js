// Building the pages' elements. Remote text only ever goes in through textContent
// (never parsed as HTML); a remote value goes into a class or an attribute only
// after it was checked against a fixed list.

export const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const ALERT_LEVELS = ["info", "warning", "error"];

/** A new `tag` element with `className` and, if given, `text` as its text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Set a node's text only when it changed (no needless layout). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** A status badge: the status as text, its colour from a class of a known status. */
export function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return element("span", `jobwatch-badge jobwatch-status-${known}`, status ?? "unknown");
}

/** The badge of a running job the server marked stalled (no update for too long). */
export function stalledBadge() {
  const badge = element("span", "jobwatch-badge jobwatch-stalled", "stalled");
  badge.title = "No update for longer than the server's stall threshold";
  return badge;
}

/** An alert's level if it is a known one, else "warning". */
export function alertLevel(level) {
  return ALERT_LEVELS.includes(level) ? level : "warning";
}

/** The connection indicator's words for a Stream state (or "ended"). */
export const CONNECTION_WORDS = {
  waiting: "waiting for the job",
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  offline: "offline",
  closed: "not live (closed)",
  ended: "not live (the job ended)",
};

/** Show a connection state in `node` (a span with a coloured dot from CSS). */
export function showConnection(node, state) {
  node.dataset.state = state in CONNECTION_WORDS ? state : "offline";
  setText(node, `● ${CONNECTION_WORDS[state] ?? state}`);
}

/** A progress bar (a track and its fill) with `progress` percent; returns [bar, fill]. */
export function progressBar() {
  const bar = element("div", "jobwatch-bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const fill = element("div", "jobwatch-bar-fill");
  bar.append(fill);
  return [bar, fill];
}

/** Set a bar from progressBar() to `progress` percent (clamped to 0-100). */
export function setProgress(bar, fill, progress, status) {
  const value = Number.isFinite(progress) ? Math.min(Math.max(progress, 0), 100) : 0;
  fill.style.width = `${value}%`;
  bar.setAttribute("aria-valuenow", String(value));
  bar.dataset.status = STATUSES.includes(status) ? status : "unknown";
}

/** Show an error message (text) in the page's message area. */
export function showError(node, message) {
  node.hidden = !message;
  setText(node, message || "");
}
