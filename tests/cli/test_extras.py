"""A missing extra: one line naming the pip install to run, never a traceback.

A module is made "not installed" the way importlib sees it: ``sys.modules[name] = None``.
"""

from __future__ import annotations

import sys

import pytest

import jobwatch
from jobwatch.cli.commands import main
from jobwatch.errors import MissingExtra
from tests.paths import REPO


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["serve"], "flask", "server"),
        (["prune", "--days", "1"], "sqlalchemy", "server"),
        (["demo"], "sklearn", "demo"),
        (["demo"], "flask", "demo"),  # jobwatch[demo] brings the server too
    ],
)
def test_the_cli_says_what_to_install_in_one_line(
    argv: list[str], module: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f'needs {module}, which is not installed: pip install "jobwatch[{extra}]"' in err


def test_serve_raises_one_line_that_ipython_shows_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(MissingExtra) as caught:
        jobwatch.serve()
    assert isinstance(caught.value, ImportError) and caught.value.extra == "server"
    assert caught.value._render_traceback_() == [
        "MissingExtra: jobwatch.serve() needs flask, which is not installed: "
        'pip install "jobwatch[server]"'
    ]


def test_the_demo_extra_brings_what_jobwatch_demo_needs() -> None:

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from jobwatch.extras import EXTRAS

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    assert "jobwatch[server]" in extras["demo"] and any("scikit-learn" in d for d in extras["demo"])
    assert {"jupyterlab", "notebook", "ipykernel"} <= {d.split(">")[0] for d in extras["lab"]}
    assert set(EXTRAS["server"]) <= set(EXTRAS["demo"])
