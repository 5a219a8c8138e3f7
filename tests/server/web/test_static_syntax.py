"""Every ES module the pages and widgets ship parses: a merge that declares one name
twice breaks a whole page, and only the browser tests would say so. One Node.js
process parses them all (``vm.SourceTextModule`` parses without running or linking)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.paths import REPO

MODULES = sorted(
    str(path)
    for folder in ("jobwatch/server/web/static", "jobwatch/notebook/static")
    for path in (REPO / folder).glob("*.js")
)
PARSE_ALL = """
const { readFileSync } = require("node:fs");
const vm = require("node:vm");
const bad = [];
for (const file of JSON.parse(process.argv[1])) {
  try {
    new vm.SourceTextModule(readFileSync(file, "utf8"), { identifier: file });
  } catch (error) {
    bad.push(`${file}: ${error}`);
  }
}
console.log(JSON.stringify(bad));
"""


def test_every_shipped_module_parses() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed: CI must check the pages' JavaScript")
        pytest.skip("node is not installed")
    assert len(MODULES) >= 10, MODULES
    checked = subprocess.run(
        [node, "--experimental-vm-modules", "--no-warnings", "-e", PARSE_ALL, json.dumps(MODULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == []
