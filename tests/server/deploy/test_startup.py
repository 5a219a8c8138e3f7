"""What ``import jobwatch`` loads: a training script that only reports must not
pay for the client, server or notebook stacks. Each case runs in a fresh
interpreter, so that what other tests imported does not count. (The time it
takes is measured in ``benchmarks/startup.py``, not asserted here.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "requests", "urllib3", "flask", "sqlalchemy", "ipywidgets", "gevent")
"""Packages a reporting process loads only once it uses what needs them."""


def _loaded_after(statement: str) -> set[str]:
    """The top-level packages of :data:`HEAVY` in ``sys.modules`` after ``statement``."""
    probe = (
        f"{statement}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    "statement",
    ["import jobwatch", "from jobwatch import Reporter", "from jobwatch import Reporter, track"],
)
def test_importing_the_reporter_loads_no_client_server_or_notebook_stack(statement: str) -> None:
    assert _loaded_after(statement) == set()


def test_names_loaded_on_first_use_are_still_there() -> None:
    statement = (
        "import jobwatch\n"
        "assert set(jobwatch.__all__) <= set(dir(jobwatch))\n"
        "assert 'gpu' in dir(jobwatch) or jobwatch.gpu.sample\n"
        "from jobwatch import Client\n"
        "assert Client.__module__ == 'jobwatch.client.rest'"
    )
    assert "requests" in _loaded_after(statement)


def test_a_reporter_that_samples_loads_its_gpu_module_when_created() -> None:
    statement = (
        "import sys\n"
        "from jobwatch import Reporter\n"
        "assert 'jobwatch.report.gpu' not in sys.modules\n"
        "r = Reporter('startup-probe', url='http://127.0.0.1:9', gpu='auto')\n"
        "assert 'jobwatch.report.gpu' in sys.modules\n"
        "r.close(timeout=0)"
    )
    assert "requests" in _loaded_after(statement)


def test_a_monitor_loads_no_pydantic_and_no_bqplot_before_its_first_draw() -> None:
    """A notebook's first monitor cell pays for what it imports before the
    progress bar shows: pydantic (the server's validation, about 0.2 s) is not
    needed, and bqplot (about 0.4 s) comes with the charts, after the first draw."""
    probe = (
        "import json, sys\n"
        "import jobwatch.notebook.monitor\n"
        "from jobwatch.notebook.view import MonitorView\n"
        "MonitorView(lambda r: None, lambda b: None, '5 min')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'bqplot'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
