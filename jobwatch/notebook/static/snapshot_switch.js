// The browser side of jobwatch's SnapshotSwitch (anywidget ES module, no build step).
//
// A monitor's output holds its live widget and, beside it, a static snapshot
// for pages without a kernel. While a view of the monitor is on the page this
// module hides that monitor's snapshot (by its marker class, and the output
// area around it in JupyterLab and Notebook 7); when the view goes, the
// snapshot shows again. The marker is checked before it goes into CSS.

function render({ model, el }) {
  const marker = String(model.get("marker"));
  el.style.display = "none";
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) return undefined;
  const style = document.createElement("style");
  style.dataset.jobwatchSnapshotSwitch = marker;
  style.textContent =
    `.${marker} { display: none !important; }\n` +
    `.jp-OutputArea-child:has(.${marker}) { display: none !important; }`;
  document.head.appendChild(style);
  return () => style.remove();
}

export default { render };
