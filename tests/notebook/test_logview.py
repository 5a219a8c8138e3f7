"""LogView without a kernel or a browser: trait state, the load_older message,
and the ES module run by Node against a small fake DOM."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import traitlets
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch.notebook.logview import LogView
from tests.paths import REPO

STATIC = REPO / "jobwatch" / "notebook" / "static"
JS = STATIC / "logview.js"
CSS = STATIC / "logview.css"
CLASS_NAMES = (
    "jobwatch-logview",
    "jobwatch-log-line",
    "jobwatch-log-filter",
    "jobwatch-log-older",
    "jobwatch-log-count",
    "jobwatch-log-newpill",
)


def make_lines(ids: range | list[int], level: str = "info") -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "level": level,
            "timestamp": f"2026-11-29T10:31:{i % 60:02d}.123Z",
            "message": f"line {i}",
        }
        for i in ids
    ]


def ids(view: LogView) -> list[int]:
    return [line["id"] for line in view.lines]


def count_changes(view: LogView, name: str) -> list[Any]:
    changes: list[Any] = []
    view.observe(changes.append, names=name)
    return changes


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is required in CI to check logview.js")
        pytest.skip("node is not installed; logview.js is not checked")
    return node


# -- lines: bound, order, duplicates, validation ---------------------------------------------


def test_append_keeps_the_newest_max_lines_in_id_order() -> None:
    view = LogView()
    view.append(make_lines(range(1, 1501)))
    assert len(view.lines) == 1000
    assert ids(view) == list(range(501, 1501))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(
        st.tuples(st.booleans(), st.lists(st.integers(0, 40), max_size=8)),
        max_size=12,
    ),
)
def test_any_appends_and_prepends_hold_the_newest_lines_in_id_order_once_each(
    max_lines: int, calls: list[tuple[bool, list[int]]]
) -> None:
    # live lines mostly come in order after the ones held; older ones, repeats and
    # lines out of order may come too: the same result whatever the order
    view = LogView(max_lines=max_lines)
    held: list[int] = []
    for prepend, line_ids in calls:
        if prepend:
            view.prepend(make_lines(line_ids), has_older=True)
        else:
            view.append(make_lines(line_ids))
        if set(line_ids) - set(held):
            held = sorted(set(held) | set(line_ids))[-max_lines:]
        assert ids(view) == held
        assert view.lines == [make_lines([i])[0] for i in held]


def test_lines_given_out_of_order_are_held_in_id_order_once_each() -> None:
    view = LogView(lines=make_lines([5, 1, 5, 3]))
    assert ids(view) == [1, 3, 5]
    view.append(make_lines([5, 6]))
    assert ids(view) == [1, 3, 5, 6]


def test_lines_without_an_int_id_are_refused() -> None:
    with pytest.raises(traitlets.TraitError, match="id"):
        LogView(lines=[{"level": "info", "timestamp": "t", "message": "no id"}])


def test_append_in_batches_drops_the_oldest() -> None:
    view = LogView(max_lines=5)
    view.append(make_lines(range(1, 4)))
    view.append(make_lines(range(4, 8)))
    assert ids(view) == [3, 4, 5, 6, 7]


def test_append_ignores_ids_already_present_and_sorts_by_id() -> None:
    view = LogView()
    view.append(make_lines([1, 2, 3]))
    again = make_lines([2, 3, 4])
    again[0]["message"] = "changed"
    view.append([*reversed(again), *make_lines([4])])
    assert ids(view) == [1, 2, 3, 4]
    assert view.lines[1]["message"] == "line 2"


def test_append_syncs_lines_once_per_call() -> None:
    view = LogView(max_lines=100)
    changes = count_changes(view, "lines")
    view.append(make_lines(range(1, 151)))
    assert len(changes) == 1
    view.append(make_lines(range(151, 160)))
    assert len(changes) == 2


def test_append_of_nothing_new_does_not_sync() -> None:
    view = LogView()
    view.append(make_lines([1, 2]))
    changes = count_changes(view, "lines")
    view.append(make_lines([1, 2]))
    view.append([])
    assert changes == []


def test_append_keeps_only_the_contract_keys_and_lowers_the_level() -> None:
    view = LogView()
    view.append([{"id": 7, "level": "WARNING", "timestamp": "t", "message": "m", "extra": 1}])
    assert view.lines == [{"id": 7, "level": "warning", "timestamp": "t", "message": "m"}]


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ({"id": 1, "level": "info", "timestamp": "t"}, "lacks 'message'"),
        ({"level": "info", "message": "m"}, "lacks 'id', 'timestamp'"),
        ({"id": "1", "level": "info", "timestamp": "t", "message": "m"}, "id must be an int"),
        ({"id": 1, "level": "debug", "timestamp": "t", "message": "m"}, "unknown level 'debug'"),
        ({"id": 1, "level": "info", "timestamp": None, "message": "m"}, "must be strings"),
    ],
)
def test_bad_lines_raise_value_error_and_add_nothing(line: dict[str, Any], text: str) -> None:
    view = LogView()
    with pytest.raises(ValueError, match=re.escape(text)):
        view.append([*make_lines([5]), line])
    assert view.lines == []


def test_lowering_max_lines_trims_the_oldest() -> None:
    view = LogView()
    view.append(make_lines(range(1, 11)))
    view.max_lines = 3
    assert ids(view) == [8, 9, 10]


# -- level filter --------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["all", "info", "warning", "error"])
def test_level_filter_accepts_the_known_levels(level: str) -> None:
    assert LogView(level_filter=level).level_filter == level


@pytest.mark.parametrize("level", ["debug", "ERROR", ""])
def test_level_filter_refuses_other_values(level: str) -> None:
    view = LogView()
    with pytest.raises(traitlets.TraitError, match=r"unknown level_filter .*allowed: all, info"):
        view.level_filter = level
    assert view.level_filter == "all"


# -- prepend, has_older, clear ------------------------------------------------------------


def test_prepend_puts_older_lines_on_top_and_sets_has_older() -> None:
    view = LogView(has_older=True, loading=True)
    view.append(make_lines(range(101, 111)))
    view.prepend(make_lines(range(91, 101)), has_older=True)
    assert ids(view) == list(range(91, 111))
    assert view.has_older is True
    assert view.loading is False
    view.prepend(make_lines(range(81, 91)), has_older=False)
    assert ids(view)[:3] == [81, 82, 83]
    assert view.has_older is False


def test_prepend_stops_at_max_lines_and_offers_no_more() -> None:
    view = LogView(max_lines=10)
    view.append(make_lines(range(51, 57)))
    view.prepend(make_lines(range(41, 51)), has_older=True)
    assert ids(view) == list(range(47, 57))
    assert view.has_older is False


def test_prepend_of_nothing_still_updates_has_older_and_loading() -> None:
    view = LogView(has_older=True, loading=True)
    view.append(make_lines([5]))
    view.prepend([], has_older=False)
    assert (view.has_older, view.loading, ids(view)) == (False, False, [5])


def test_a_full_buffer_offers_no_older_lines() -> None:
    view = LogView(max_lines=3, has_older=True)
    view.append(make_lines([1, 2]))
    assert view.has_older is True
    view.append(make_lines([3, 4]))
    assert view.has_older is False


def test_clear_forgets_everything() -> None:
    view = LogView(total=50, has_older=True, loading=True)
    view.append(make_lines([1, 2]))
    view.clear()
    assert (view.lines, view.total, view.has_older, view.loading) == ([], 0, False, False)


def test_traits_are_synced_and_documented() -> None:
    view = LogView()
    state = view.get_state()
    for name in (
        *("lines", "max_lines", "level_filter", "has_older", "total", "loading"),
        *("world_size", "nodes", "rank_filter", "node_filter"),
    ):
        assert name in state
        assert view.traits()[name].help
    assert state["max_lines"] == 1000


# -- load_older message -------------------------------------------------------------------


def test_load_older_message_calls_the_callbacks_with_before_id() -> None:
    view = LogView()
    calls: list[int] = []
    view.on_load_older(calls.append)
    view._handle_custom_msg({"type": "load_older", "before_id": 5}, [])
    assert calls == [5]
    assert view.loading is True


def test_a_callback_that_prepends_clears_loading() -> None:
    view = LogView(has_older=True)
    view.append(make_lines(range(10, 20)))

    def fetch(before_id: int) -> None:
        assert before_id == 10
        view.prepend(make_lines(range(5, 10)), has_older=False)

    view.on_load_older(fetch)
    view._handle_custom_msg({"type": "load_older", "before_id": 10}, [])
    assert ids(view)[0] == 5
    assert view.loading is False


def test_removed_callbacks_and_other_messages_are_not_called() -> None:
    view = LogView()
    calls: list[int] = []
    view.on_load_older(calls.append)
    view.on_load_older(calls.append, remove=True)
    view._handle_custom_msg({"type": "load_older", "before_id": 5}, [])
    view.on_load_older(calls.append)
    view._handle_custom_msg({"type": "something_else"}, [])
    view._handle_custom_msg({"type": "load_older", "before_id": "5"}, [])
    view._handle_custom_msg({"type": "load_older", "before_id": None}, [])
    view._handle_custom_msg({"type": "load_older", "before_id": True}, [])
    assert calls == []
    assert view.loading is False


def test_a_failing_callback_clears_loading_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    view = LogView()

    def broken(before_id: int) -> None:
        raise RuntimeError("server gone")

    view.on_load_older(broken)
    # ipywidgets' message dispatcher logs what a handler raises, as in a kernel
    view._handle_custom_msg({"type": "load_older", "before_id": 1}, [])
    assert view.loading is False
    assert "server gone" in caplog.text


# -- static files ---------------------------------------------------------------------------


def test_esm_and_css_are_real_files_holding_the_class_names() -> None:
    assert JS.is_file() and CSS.is_file()
    state = LogView().get_state()
    assert state["_esm"] == JS.read_text(encoding="utf-8")
    assert state["_css"] == CSS.read_text(encoding="utf-8")
    source = JS.read_text(encoding="utf-8")
    for name in CLASS_NAMES:
        assert f'"{name}"' in source, name
    assert "innerHTML" not in source


def test_logview_js_parses_as_an_es_module() -> None:
    # Plain `node --check file.js` lets ESM syntax errors pass on Node 20 (the
    # file is read as CommonJS); reading stdin as a module checks for real.
    node = node_or_skip()
    result = subprocess.run(
        [node, "--input-type=module", "--check"],
        input=JS.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_syntax_error_would_be_caught() -> None:
    node = node_or_skip()
    result = subprocess.run(
        [node, "--input-type=module", "--check"],
        input="export default { render( };",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0


# -- the ES module against a fake DOM --------------------------------------------------------

# A fake DOM just big enough for logview.js: rows are 10 px high, the list
# shows 100 px; innerHTML throws so that any use of it fails the run.
FAKE_DOM = r"""
class Node {
  constructor(tag) {
    this.tagName = tag.toUpperCase(); this.children = []; this.parentNode = null;
    this.attributes = {}; this.listeners = {}; this.className = ""; this.text = "";
    this.hidden = false; this.disabled = false; this.title = ""; this.value = "";
    this._scrollTop = 0; this.clientHeight = 100; this.style = {};
  }
  set innerHTML(_) { throw new Error("innerHTML used"); }
  get textContent() { return this.text + this.children.map((c) => c.textContent).join(""); }
  set textContent(v) { this.children = []; this.text = String(v); }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; }
  append(...nodes) { for (const n of nodes) this.insertBefore(n, null); }
  insertBefore(node, ref) {
    if (node.parentNode) node.remove();
    const at = ref === null ? this.children.length : this.children.indexOf(ref);
    if (at < 0) throw new Error("ref is not a child");
    this.children.splice(at, 0, node); node.parentNode = this; return node;
  }
  remove() {
    if (!this.parentNode) return;
    const siblings = this.parentNode.children;
    siblings.splice(siblings.indexOf(this), 1); this.parentNode = null;
  }
  get firstChild() { return this.children[0] || null; }
  get nextSibling() {
    if (!this.parentNode) return null;
    const s = this.parentNode.children; return s[s.indexOf(this) + 1] || null;
  }
  get offsetHeight() { return this.className === "jobwatch-log-line" ? 10 : 0; }
  get offsetTop() { return this.parentNode ? this.parentNode.children.indexOf(this) * 10 : 0; }
  get scrollHeight() { return this.children.length * 10; }
  get scrollTop() { return this._scrollTop; }
  set scrollTop(v) {
    this._scrollTop = Math.max(0, Math.min(v, this.scrollHeight - this.clientHeight));
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type) { for (const fn of this.listeners[type] || []) fn({ target: this }); }
  find(cls) {
    if (this.className.split(" ").includes(cls)) return this;
    for (const c of this.children) { const hit = c.find(cls); if (hit) return hit; }
    return null;
  }
}
globalThis.document = { createElement: (tag) => new Node(tag) };
globalThis.requestAnimationFrame = (fn) => fn();

class Model {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; this.saves = 0; }
  get(k) { return this.state[k]; }
  set(k, v) { this.state[k] = v; for (const fn of this.handlers["change:" + k] || []) fn(); }
  on(ev, fn) { (this.handlers[ev] ||= []).push(fn); }
  off(ev, fn) { this.handlers[ev] = (this.handlers[ev] || []).filter((f) => f !== fn); }
  send(msg) { this.sent.push(msg); }
  save_changes() { this.saves += 1; }
  emit(msg) { for (const fn of this.handlers["msg:custom"] || []) fn(msg, []); }
}
"""

SCENARIO = r"""
const lines = (from, to, level = "info") => Array.from({ length: to - from + 1 }, (_, i) => ({
  id: from + i, level, timestamp: `2026-11-29T10:31:${String((from + i) % 60).padStart(2, "0")}.123Z`,
  message: `line ${from + i}`,
}));
const out = {};
const model = new Model({ lines: lines(1, 3), level_filter: "all", has_older: false, total: 12345,
                          loading: false });
const el = document.createElement("div");
const cleanup = widget.render({ model, el });
const root = el.find("jobwatch-logview");
const list = root.find("jobwatch-log-list");
const rowIds = () => list.children.map((r) => Number(r.getAttribute("data-id")));
out.initial = rowIds();
const first = list.children[0];
out.time = first.find("jobwatch-log-time").textContent;
out.title = first.title;
out.level = [first.getAttribute("data-level"), first.find("jobwatch-log-level").textContent];
out.count = root.find("jobwatch-log-count").textContent;
out.olderHidden = root.find("jobwatch-log-older").hidden;

// append two, then drop the oldest two: existing rows are kept, not rebuilt
model.set("lines", lines(1, 5));
out.kept = list.children[0] === first;
model.set("lines", lines(3, 5));
out.afterDrop = rowIds();

// message text goes in as text
const evil = "<img src=x onerror=alert(1)>\n  indented";
model.set("lines", [...lines(3, 5), { id: 6, level: "error", timestamp: "x", message: evil }]);
const evilRow = list.children[3];
out.evil = evilRow.find("jobwatch-log-message").textContent === evil;
out.badTime = evilRow.find("jobwatch-log-time").textContent;

// stick to the bottom while there; pause and count when scrolled up
model.set("lines", lines(1, 30));
out.stuck = list.scrollTop === list.scrollHeight - list.clientHeight;
list.scrollTop = 50; list.dispatch("scroll");
model.set("lines", [...lines(1, 30), ...lines(31, 33, "warning")]);
const pill = root.find("jobwatch-log-newpill");
out.pausedTop = list.scrollTop;
out.pill = [pill.hidden, pill.textContent];
pill.dispatch("click");
out.resumed = [pill.hidden, list.scrollTop === list.scrollHeight - list.clientHeight];

// older lines on top keep the row being read in place
list.scrollTop = 0; list.dispatch("scroll");
model.set("lines", lines(-4, 33));
out.anchored = list.scrollTop;
out.pillAfterPrepend = pill.hidden;

// filter control writes the trait; the root carries it for the CSS
const filter = root.find("jobwatch-log-filter");
filter.value = "error"; filter.dispatch("change");
out.filter = [model.get("level_filter"), model.saves, root.getAttribute("data-filter")];
out.filteredCount = root.find("jobwatch-log-count").textContent;

// load older button: offered only with lines to be older than
model.set("has_older", true);
const savedLines = model.get("lines");
model.set("lines", []);
out.olderHiddenWhenEmpty = root.find("jobwatch-log-older").hidden;
model.set("lines", savedLines);
const older = root.find("jobwatch-log-older");
out.olderShown = !older.hidden;
older.dispatch("click");
model.set("loading", true);
older.dispatch("click");
out.sent = model.sent;
out.olderDisabled = older.disabled;

cleanup();
out.handlersLeft = Object.values(model.handlers).reduce((n, fns) => n + fns.length, 0);
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the scenario above observed, run once for the tests below."""
    node = node_or_skip()
    tmp = tmp_path_factory.mktemp("logview")
    # A .mjs copy, so that Node reads the module as ESM whatever its version.
    module = tmp / "logview.mjs"
    shutil.copy(JS, module)
    harness = tmp / "harness.mjs"
    harness.write_text(
        f"{FAKE_DOM}\nconst widget = (await import({module.as_uri()!r})).default;\n{SCENARIO}",
        encoding="utf-8",
    )
    result = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_the_module_renders_and_diffs_rows_in_a_fake_dom(scenario: dict[str, Any]) -> None:
    out = scenario
    assert out["initial"] == [1, 2, 3]
    assert re.fullmatch(r"\d\d:\d\d:01", out["time"])
    assert out["title"] == "2026-11-29T10:31:01.123Z"
    assert out["level"] == ["info", "INFO"]
    assert re.fullmatch(r"showing 3 of 12\D?345", out["count"])
    assert out["olderHidden"] is True
    assert out["kept"] is True
    assert out["afterDrop"] == [3, 4, 5]
    assert out["evil"] is True
    assert out["badTime"] == "x"


def test_the_module_follows_the_bottom_and_pauses_when_scrolled_up(
    scenario: dict[str, Any],
) -> None:
    out = scenario
    assert out["stuck"] is True
    assert out["pausedTop"] == 50
    assert out["pill"] == [False, "↓ 3 new lines"]
    assert out["resumed"] == [True, True]
    # five rows of 10 px went in above the top row
    assert out["anchored"] == 50
    assert out["pillAfterPrepend"] is True


def test_the_module_writes_the_filter_and_asks_for_older_lines(scenario: dict[str, Any]) -> None:
    out = scenario
    assert out["filter"] == ["error", 1, "error"]
    assert re.fullmatch(r"showing 0 error of 38 loaded \(12\D?345 in all\)", out["filteredCount"])
    assert out["olderHiddenWhenEmpty"] is True
    assert out["olderShown"] is True
    assert out["sent"] == [{"type": "load_older", "before_id": -4}]
    assert out["olderDisabled"] is True
    assert out["handlersLeft"] == 0


MESSAGES_SCENARIO = r"""
const lines = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => ({
  id: from + i, level: "info", timestamp: "2026-11-29T10:31:00.000Z", message: `line ${from + i}`,
}));
const out = {};
const model = new Model({ _key: "k1", lines: lines(1, 3), revision: 1, level_filter: "all",
                          has_older: false, total: 3, loading: false, max_lines: 5 });
const stop = widget.initialize({ model });
const el = document.createElement("div");
const cleanup = widget.render({ model, el });
const list = el.find("jobwatch-log-list");
const rowIds = (of) => of.children.map((r) => Number(r.getAttribute("data-id")));
out.initial = rowIds(list);
model.emit({ type: "lines", revision: 2, add: lines(4, 4), first: 1 });
out.appended = rowIds(list);
model.emit({ type: "lines", revision: 2, add: lines(4, 4), first: 1 });
out.again = rowIds(list);
model.emit({ type: "lines", revision: 3, add: lines(5, 6), first: 2 });
out.dropped = rowIds(list);
// a second view draws from the model's store, not from the state it was created with
const el2 = document.createElement("div");
const cleanup2 = widget.render({ model, el: el2 });
out.second = rowIds(el2.find("jobwatch-log-list"));
// a skipped revision asks the kernel for everything; the reset answer replaces all
model.emit({ type: "lines", revision: 5, add: lines(8, 8), first: 4 });
out.gap = [rowIds(list), model.sent];
model.emit({ type: "lines", revision: 5, reset: true, add: lines(4, 8) });
out.reset = [rowIds(list), rowIds(el2.find("jobwatch-log-list"))];
// colours: one span per run, text through textContent, colours checked
model.emit({ type: "lines", revision: 6, first: 5, add: [{ id: 9, level: "info", timestamp: "x",
  message: "red on", spans: [{ text: "red", fg: 1, bold: true }, { text: " " },
  { text: "on", fg: "#ff8800", bg: "inverse" }, { text: "<b>x</b>", fg: "red;x:url(y)" }] }] });
const row = list.children[list.children.length - 1];
out.spans = row.find("jobwatch-log-message").children.map(
  (node) => [node.textContent, node.className, node.style.color || ""]);
out.count = el.find("jobwatch-log-count").textContent;
cleanup();
cleanup2();
stop();
out.handlersLeft = Object.values(model.handlers).reduce((n, fns) => n + fns.length, 0);
console.log(JSON.stringify(out));
"""


def test_the_module_applies_line_messages_to_one_store_per_model(
    tmp_path: Path,
) -> None:
    node = node_or_skip()
    module = tmp_path / "logview.mjs"
    shutil.copy(JS, module)
    harness = tmp_path / "harness.mjs"
    harness.write_text(
        f"{FAKE_DOM}\nconst widget = (await import({module.as_uri()!r})).default;\n"
        f"{MESSAGES_SCENARIO}",
        encoding="utf-8",
    )
    result = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["initial"] == [1, 2, 3]
    assert out["appended"] == [1, 2, 3, 4]
    assert out["again"] == [1, 2, 3, 4]
    assert out["dropped"] == [2, 3, 4, 5, 6]
    assert out["second"] == [2, 3, 4, 5, 6]
    assert out["gap"] == [[4, 5, 6, 8], [{"type": "sync"}]]
    assert out["reset"] == [[4, 5, 6, 7, 8], [4, 5, 6, 7, 8]]
    assert out["spans"] == [
        ["red", "jobwatch-ansi-bold jobwatch-ansi-fg-1", ""],
        [" ", "", ""],
        ["on", "jobwatch-ansi-bg-inverse", "#ff8800"],
        ["<b>x</b>", "", ""],
    ]
    assert out["count"] == "showing 5 of 5"
    assert out["handlersLeft"] == 0


# -- only what changed travels once shown ----------------------------------------------------


def shown_view(**kwargs: Any) -> tuple[LogView, list[dict[str, Any]]]:
    view = LogView(**kwargs)
    sent: list[dict[str, Any]] = []
    view.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    view.shown()
    return view, sent


def test_once_shown_new_lines_go_as_one_message_and_the_list_is_not_resynced() -> None:
    view, sent = shown_view(max_lines=5)
    changes = count_changes(view, "lines")
    view.append(make_lines(range(1, 4)))
    view.append(make_lines([3, 4]))
    assert changes == []  # changed in place: ipywidgets does not send the list
    assert [m["add"] for m in sent] == [make_lines(range(1, 4)), make_lines([4])]
    assert [(m["type"], m["revision"], m["first"]) for m in sent] == [
        ("lines", 1, 1),
        ("lines", 2, 1),
    ]
    assert view.revision == 2
    view.append(make_lines(range(5, 8)))
    assert sent[-1]["first"] == 3 and ids(view) == [3, 4, 5, 6, 7]


def test_a_page_created_later_gets_the_whole_list_with_the_state() -> None:
    view, _ = shown_view()
    view.append(make_lines(range(1, 4)))
    state = view.get_state()
    assert [line["id"] for line in state["lines"]] == [1, 2, 3] and state["revision"] == 1
    assert state["lines"] is not view.lines  # a copy: the renderer thread may append meanwhile


def test_a_page_that_missed_a_change_gets_everything_again() -> None:
    view, sent = shown_view()
    view.append(make_lines(range(1, 4)))
    view._handle_custom_msg({"type": "sync"}, [])
    assert sent[-1] == {
        "type": "lines",
        "revision": 2,
        "reset": True,
        "add": make_lines(range(1, 4)),
    }


def test_prepend_and_clear_once_shown() -> None:
    view, sent = shown_view(max_lines=4)
    view.append(make_lines([10, 11]))
    view.prepend(make_lines(range(5, 10)), has_older=True)
    assert sent[-1]["add"] == make_lines([8, 9]) and sent[-1]["first"] == 8
    view.clear()
    assert sent[-1] == {"type": "lines", "revision": 3, "reset": True, "add": []}


def test_terminal_text_is_held_as_a_terminal_shows_it() -> None:
    view = LogView()
    view.append(
        [
            {"id": 1, "level": "info", "timestamp": "t", "message": " 10%|#\r 20%|##"},
            {
                "id": 2,
                "level": "error",
                "timestamp": "t",
                "message": "\x1b[1;31mboom\x1b[0m!\x1b[2K",
            },
        ]
    )
    assert view.lines[0] == {"id": 1, "level": "info", "timestamp": "t", "message": " 20%|##"}
    assert view.lines[1]["message"] == "boom!"
    assert view.lines[1]["spans"] == [{"text": "boom", "fg": 9, "bold": True}, {"text": "!"}]


# -- a distributed job's rank and node filter ------------------------------------------------


def rank_lines(ids: range | list[int], ranks: int = 2) -> list[dict[str, Any]]:
    return [
        {**line, "rank": line["id"] % ranks, "node": f"n{line['id'] % ranks}"}
        for line in make_lines(ids)
    ]


def test_a_filtered_view_keeps_only_its_ranks_live_lines() -> None:
    view = LogView(world_size=2, rank_filter=1)
    view.append(rank_lines(range(1, 7)))
    assert ids(view) == [1, 3, 5]
    assert {line["rank"] for line in view.lines} == {1}
    view.node_filter = "n0"  # rank 1 on node n0: none
    view.clear()
    view.append(rank_lines(range(7, 11)))
    assert ids(view) == []


def test_the_filters_history_replaces_the_lines_and_counts_from_the_servers_total() -> None:
    view = LogView(world_size=2)
    view.append(rank_lines(range(1, 5)))
    picked: list[Any] = []
    view.on_filter(picked.append)
    view.rank_filter = 0
    assert [(f.rank, f.node) for f in picked] == [(0, None)]
    view.clear()
    view.append(rank_lines([12, 13, 14]))  # live lines while the history loads
    assert ids(view) == [12, 14]
    # the server had 40 lines of rank 0 up to line 10; the newest page is 6, 8, 10
    view.show_filtered(rank_lines([6, 8, 10]), total=40, has_older=True)
    assert ids(view) == [6, 8, 10, 12, 14]
    assert view.total == 42 and view.has_older and view.counts_itself
    view.append(rank_lines([14, 15, 16]))  # 14 again: counted once
    assert ids(view)[-1] == 16 and view.total == 43
    view.rank_filter = None
    view.node_filter = "n1"
    assert [(f.rank, f.node) for f in picked][-1] == (None, "n1")


def test_a_filter_is_a_rank_or_a_node_name() -> None:
    view = LogView()
    with pytest.raises(traitlets.TraitError):
        view.rank_filter = -1
    with pytest.raises(traitlets.TraitError):
        view.node_filter = ""
    view.node_filter = "gpu-node-2"
    view.node_filter = None
    assert view.filter.active is False
