"""A job's config as the viewers show it: flattened keys, values as JSON, cut."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jobwatch.view.config import MAX_SHOWN_VALUE, config_rows, flat_config, format_value
from tests.notebook.test_logview import node_or_skip
from tests.paths import REPO

STATIC = REPO / "jobwatch" / "server" / "web" / "static"


def test_nested_objects_flatten_to_dotted_keys() -> None:
    config = {"opt": {"name": "adam", "betas": [0.9, 0.99], "extra": {}}, "lr": 0.1}
    assert flat_config(config) == {
        "opt.name": "adam",
        "opt.betas": [0.9, 0.99],
        "opt.extra": {},
        "lr": 0.1,
    }
    assert flat_config(None) == {} and flat_config({}) == {}


def test_values_show_as_json_and_long_ones_are_cut() -> None:
    assert [format_value(v) for v in ("a b", True, None, [1, 2], 1e-4)] == [
        "a b",
        "true",
        "null",
        "[1, 2]",
        "0.0001",
    ]
    long = format_value("x" * 1000)
    assert len(long) == MAX_SHOWN_VALUE and long.endswith("…")


def test_rows_are_sorted_by_key() -> None:
    assert config_rows({"b": 1, "a": {"c": "d"}}) == [("a.c", "d"), ("b", "1")]


def test_the_pages_rows_are_the_same(tmp_path: Path) -> None:
    """format.js's configRows (the job page) writes what config_rows writes."""
    node = node_or_skip()
    shutil.copy(STATIC / "format.js", tmp_path / "format.js")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    configs: list[Any] = [
        None,
        {},
        {"lr": 0.001, "model": {"name": "mlp", "layers": [64, 64], "drop": {"p": 0.5}}},
        {"b": True, "a": None, "c": "x" * 500, "d": {}, "e": {"k": "ü" * 300}},
        {"nested": [{"a": 1}, "s"], "big": 2**60, "neg": -0.25, "u": "日本"},
    ]
    harness = tmp_path / "harness.js"
    harness.write_text(
        "import { configRows } from './format.js';\n"
        f"const configs = {json.dumps(configs)};\n"
        "console.log(JSON.stringify(configs.map(configRows)));\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[list(r) for r in config_rows(c)] for c in configs]
