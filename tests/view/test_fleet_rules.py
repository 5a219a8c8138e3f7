"""The fleet's sort and filter rules are one set: the Python of ``jobwatch top`` and the
notebook (jobwatch/view/fleet.py) and the JavaScript of the notebook's table and the
server's fleet page (jobwatch/notebook/static/jobstable.js, which the page imports)
order and filter the same generated rows alike, tricky values included."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jobwatch.contract.basics import JOB_STATUSES
from jobwatch.server.web.pages import WIDGET_FILES
from jobwatch.view.fleet import SORT_KEYS, STATUS_ORDER, FleetState, has_status, matches, sort_rows
from tests.notebook.test_logview import node_or_skip
from tests.paths import REPO

WIDGETS = REPO / "jobwatch" / "notebook" / "static"
PAGES = REPO / "jobwatch" / "server" / "web" / "static"
# Names and ids that tell apart case rules and string orders: upper and lower case,
# accents, a final sigma, a fullwidth letter (U+FF21, above the surrogates) and an
# emoji (outside the BMP: two UTF-16 code units in JavaScript).
WORDS = ["ResNet", "resnet", "BERT", "bert", "Évian", "éclair", "ΟΔΟΣ", "\uff21lpha", "😀run", "z"]
NEEDLES = ["", "res", "RESN", "é", "\u03c3", "\uff41", "😀", "x-none"]
STATUS_FILTERS = [None, "", "all", "stalled", *JOB_STATUSES, "bogus"]
ODD_STATUSES = ["bogus", "toString", "constructor", None]
NUMBERS: list[Any] = [0, -0.0, 1, 2, 2.5, -3.25, 99.9, 1e9, True, False, "7", None]


def random_row(rng: random.Random, i: int) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"{rng.choice(WORDS)}-{rng.randrange(5)}-{i}"}
    if rng.random() < 0.8:
        row["name"] = rng.choice([*WORDS, None, ""])
    row["status"] = rng.choice([*JOB_STATUSES, *JOB_STATUSES, *ODD_STATUSES])
    for key in SORT_KEYS:
        if key in ("status", "name", "updatedAt") or rng.random() < 0.15:
            continue
        row[key] = rng.choice(NUMBERS)
    if rng.random() < 0.9:  # few distinct times, so ties are common
        row["updatedAt"] = rng.choice(
            ["2026-11-29T10:00:00.000Z", "2026-11-29T10:00:01.000Z", "2026-11-28T23:59:59.999Z"]
        )
    if rng.random() < 0.5:
        row["stalled"] = rng.choice([True, False, 1, 0])
    return row


def cases(count: int, seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [[random_row(rng, i) for i in range(rng.randrange(0, 25))] for _ in range(count)]


def test_python_and_javascript_order_and_filter_alike(tmp_path: Path) -> None:
    node = node_or_skip()
    sets = cases(150, seed=26)
    shutil.copy(WIDGETS / "jobstable.js", tmp_path / "jobstable.mjs")
    harness = tmp_path / "harness.mjs"
    harness.write_text(
        "import * as m from './jobstable.mjs';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const { sets, keys, statuses, needles } = JSON.parse(readFileSync(process.argv[2], 'utf8'));\n"
        "const ids = (rows) => rows.map((r) => r.id);\n"
        "console.log(JSON.stringify({\n"
        "  keys: Object.keys(m.SORT_KEYS),\n"
        "  numeric: Object.keys(m.SORT_KEYS).filter((k) => m.SORT_KEYS[k]),\n"
        "  statusOrder: m.STATUS_ORDER,\n"
        "  orders: sets.map((rows) => keys.flatMap((k) =>\n"
        "    [false, true].map((d) => ids(m.sortRows(rows, k, d))))),\n"
        "  statuses: sets.map((rows) => statuses.map((s) =>\n"
        "    ids(rows.filter((r) => m.hasStatus(r, s))))),\n"
        "  matches: sets.map((rows) => needles.map((n) =>\n"
        "    ids(rows.filter((r) => m.matches(r, n))))),\n"
        "}));\n",
        encoding="utf-8",
    )
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "sets": sets,
                "keys": list(SORT_KEYS),
                "statuses": STATUS_FILTERS,
                "needles": NEEDLES,
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness), str(inputs)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)

    assert js["keys"] == list(SORT_KEYS)
    assert js["statusOrder"] == STATUS_ORDER
    assert set(js["numeric"]) == set(SORT_KEYS) - {"status", "name", "updatedAt"}
    for rows, orders, statuses, found in zip(
        sets, js["orders"], js["statuses"], js["matches"], strict=True
    ):
        python = [
            [row["id"] for row in sort_rows(rows, key, descending)]
            for key in SORT_KEYS
            for descending in (False, True)
        ]
        assert orders == python, rows
        assert statuses == [
            [row["id"] for row in rows if has_status(row, status)] for status in STATUS_FILTERS
        ], rows
        assert found == [
            [row["id"] for row in rows if matches(row, needle)] for needle in NEEDLES
        ], rows


def test_the_fleet_view_is_filter_then_sort() -> None:
    rows = cases(1, seed=3)[0] + [
        {"id": "s", "status": "running", "stalled": True, "updatedAt": "2026-11-29T10:00:00.000Z"}
    ]
    state = FleetState(clock=lambda: 0.0, wall=lambda: 0.0)
    state.apply_summaries(rows)
    shown = state.view("progress", True, "stalled", "")
    kept = [r for r in rows if has_status(r, "stalled")]
    assert [r["id"] for r in shown] == [r["id"] for r in sort_rows(kept, "progress", True)]
    assert "s" in {r["id"] for r in shown}


def test_the_fleet_page_imports_the_notebooks_rules(tmp_path: Path) -> None:
    """The page's fleet_rows.js has no rules of its own: it re-exports jobstable.js's,
    served to it at /assets/widgets/jobstable.js."""
    node = node_or_skip()
    assert "jobstable.js" in WIDGET_FILES
    (tmp_path / "widgets").mkdir()
    for name in ("fleet_rows.js", "format.js"):
        shutil.copy(PAGES / name, tmp_path / name)
    shutil.copy(WIDGETS / "jobstable.js", tmp_path / "widgets" / "jobstable.js")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    (tmp_path / "widgets" / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(
        "import * as page from './fleet_rows.js';\n"
        "import * as widget from './widgets/jobstable.js';\n"
        "const same = ['SORT_KEYS', 'sortRows', 'matches', 'hasStatus', 'budgetState',\n"
        "  'projectionText'].map((name) => page[name] === widget[name]);\n"
        "const fleet = new page.FleetRows();\n"
        "const t0 = Date.parse('2026-11-29T10:10:00.000Z') / 1000;\n"
        "fleet.update([\n"
        "  {id: 'a', status: 'running', pricePerHour: 36, costSoFar: 0,\n"
        "   startedAt: '2026-11-29T10:00:00.000Z'},\n"
        "  {id: 'b', status: 'completed', costSoFar: 5},\n"
        "  {id: 'c', status: 'running', pricePerHour: 36, costSoFar: 4.5,\n"
        "   startedAt: '2026-11-29T09:00:00.000Z'},\n"
        "], t0);\n"
        "const at = (id) => fleet.rows.get(id).cost;\n"
        "const first = [at('a'), at('c')];\n"
        "fleet.tick(t0 + 600);\n"
        "const order = fleet.view({status: '', text: '', sort: 'costSoFar', descending: true});\n"
        "console.log(JSON.stringify({same, first, later: [at('a'), at('c')], rate:\n"
        "  fleet.burnRate(), order: order.map((r) => r.id)}));\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["same"] == [True] * 6
    # A running job's cost is its summary's (the server's integral over its prices, which
    # a repriced job's elapsed time at its newest price is not), moved on at its current
    # price from when the summary came: 36/h for 10 min adds 6.
    assert out["first"] == [0, 4.5]
    assert out["later"] == [6, 10.5]
    assert out["rate"] == {"": 72}
    assert out["order"] == ["c", "a", "b"]


BUDGETS: list[Any] = [None, 0, 0.5, 50, 50.0, 1e9, True, "50", -1]
FIGURES: list[Any] = [None, 0, 10, 49.99, 50, 50.01, 61.2, 1234.5, True, "61"]


def test_python_and_javascript_show_a_budget_alike(tmp_path: Path) -> None:
    """budgetState, projectionText and budgetWords (jobstable.js) against jobwatch.view.budget
    on every combination of odd and ordinary budgets, costs and estimates."""
    from jobwatch.view.budget import budget_state, budget_words, projection_text

    node = node_or_skip()
    shutil.copy(WIDGETS / "jobstable.js", tmp_path / "jobstable.mjs")
    combos = [[b, c, p] for b in BUDGETS for c in FIGURES for p in FIGURES]
    harness = tmp_path / "budget.mjs"
    harness.write_text(
        "import * as m from './jobstable.mjs';\n"
        "const combos = JSON.parse(process.argv[2]);\n"
        "console.log(JSON.stringify(combos.map(([b, c, p]) => {\n"
        "  const state = m.budgetState(b, c, p);\n"
        "  return [state, m.projectionText(p, b, 'QUBIC'), m.budgetWords(b, 'QUBIC', state)];\n"
        "})));\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness), json.dumps(combos)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    python = []
    for budget, cost, projected in combos:
        state = budget_state(budget, cost, projected)
        python.append(
            [
                state,
                projection_text(projected, budget, "QUBIC"),
                budget_words(budget, "QUBIC", state),
            ]
        )
    assert json.loads(done.stdout) == python


def test_a_distributed_job_shows_its_workers_and_nodes() -> None:
    from jobwatch.view.fleet_text import cells, format_workers

    row = {"id": "ddp", "status": "running", "worldSize": 16, "workers": 15, "nodes": 2}
    assert format_workers(row) == "15 workers on 2 nodes"
    assert cells(row, None, 0.0)[1] == "running 15w/2n"
    single = {"id": "one", "status": "running", "worldSize": None, "workers": 1, "nodes": 1}
    assert format_workers(single) == "" and cells(single, None, 0.0)[1] == "running"
