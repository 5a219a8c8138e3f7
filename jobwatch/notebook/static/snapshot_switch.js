// The browser side of jobwatch's SnapshotSwitch (anywidget ES module, no build step).
//
// A monitor's output holds its live widget and, beside it, a static snapshot
// for pages without a kernel. While a view of the monitor is on the page this
// module hides that monitor's snapshot (by its marker class, and the output
// area around it in JupyterLab and Notebook 7); when the view goes, the
// snapshot shows again. The marker is checked before it goes into CSS.
//
// It also watches the kernel: while the monitor follows its job the kernel
// moves `beat` on every `beat_every` seconds. When `missed_beats` of them do
// not come (the kernel restarted, died or lost its connection), the monitor's
// connection label says so, with the time of the last beat, instead of a
// stale "live"; the label is put back as soon as a beat comes again.

const NOT_ANSWERING = "jobwatch-kernel-not-answering";

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function watchKernel(model, el) {
  let lastBeat = Date.now();
  let saved = null; // the label's own content while ours shows
  const label = () => el.closest(".jobwatch-monitor")?.querySelector(".jobwatch-connection");
  const restore = () => {
    const node = label();
    if (saved !== null && node) {
      node.replaceChildren(...saved);
      node.classList.remove(NOT_ANSWERING);
    }
    saved = null;
  };
  const mark = () => {
    const node = label();
    if (!node || saved !== null) return;
    saved = Array.from(node.childNodes);
    const words = document.createElement("span");
    words.style.color = "#b45309";
    words.textContent = `● kernel not answering since ${clock(lastBeat)}: run the cell again to follow the job`;
    node.replaceChildren(words);
    node.classList.add(NOT_ANSWERING);
  };
  const onBeat = () => {
    lastBeat = Date.now();
    restore();
  };
  model.on("change:beat", onBeat);
  const timer = setInterval(() => {
    const every = Number(model.get("beat_every")) * 1000;
    const missed = Number(model.get("missed_beats"));
    if (!model.get("watching") || !(every > 0)) return restore();
    if (Date.now() - lastBeat > every * missed) mark();
  }, 500);
  return () => {
    clearInterval(timer);
    model.off("change:beat", onBeat);
  };
}

function render({ model, el }) {
  const marker = String(model.get("marker"));
  el.style.display = "none";
  const stopWatching = watchKernel(model, el);
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) return stopWatching;
  const style = document.createElement("style");
  style.dataset.jobwatchSnapshotSwitch = marker;
  style.textContent =
    `.${marker} { display: none !important; }\n` +
    `.jp-OutputArea-child:has(.${marker}) { display: none !important; }`;
  document.head.appendChild(style);
  return () => {
    stopWatching();
    style.remove();
  };
}

export default { render };
