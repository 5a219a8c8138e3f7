"""``import jobwatch.compat.wandb as wandb``: a script written for W&B runs unchanged
(but for that import) against a real server, and what jobwatch cannot do says so."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import jobwatch.compat.wandb as wandb  # noqa: PLR0402  # the documented spelling
from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.paths import REPO

# A W&B quickstart-style script, as a user would have it (argparse config, a loop of
# wandb.log calls with commit=False, summary, alert, a histogram, finish).
W_AND_B_SCRIPT = """
import argparse
import math
import random

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

run = wandb.init(project="quickstart", entity="my-team", id=RUN_ID, config=args)
wandb.config.update({"architecture": "mlp", "dataset": {"name": "toy", "size": 100}})
wandb.config.batch_size = 32
random.seed(0)
loss = 1.0
for epoch in range(wandb.config.epochs):
    loss *= 0.5
    wandb.log({"loss": loss, "epoch": epoch}, commit=False)
    wandb.log({"val/acc": 1 - loss, "note": "a string is left out"})
if wandb.run is not None:
    wandb.run.summary["best_acc"] = 1 - loss
wandb.alert(title="done soon", text="loss below 0.1", level=wandb.AlertLevel.INFO)
wandb.finish()
print("finished", run.id)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def test_an_unchanged_wandb_script_reports_to_jobwatch(
    server: EmbeddedServer, tmp_path: Any
) -> None:
    run_id = f"wb-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "train.py"
    source = W_AND_B_SCRIPT.replace("import wandb", "import jobwatch.compat.wandb as wandb")
    script.write_text(f"RUN_ID = {run_id!r}\n" + source)
    env = {**os.environ, "JOBWATCH_URL": server.url, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), "--lr", "0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"finished {run_id}" in done.stdout
    assert "init(entity=...) is not supported; ignored" in done.stderr
    assert "'note' is a str, not a number: left out" in done.stderr
    with Client(server.url) as client:
        job = client.get_job(run_id)
        assert job["status"] == "completed"
        assert job["config"] == {
            "lr": 0.1,
            "epochs": 5,
            "architecture": "mlp",
            "dataset": {"name": "toy", "size": 100},
            "batch_size": 32,
        }
        assert job["result"]["best_acc"] == pytest.approx(1 - 0.5**5)
        assert job["result"]["loss"] == pytest.approx(0.5**5)
        scalars = client.scalars(run_id)
        assert set(scalars) == {"loss", "epoch", "val/acc"}
        assert [p["step"] for p in scalars["loss"]] == [0, 1, 2, 3, 4]
        assert [p["value"] for p in scalars["epoch"]] == [0, 1, 2, 3, 4]
        assert [p["step"] for p in scalars["val/acc"]] == [0, 1, 2, 3, 4]
        (alert,) = client.alerts(run_id)["alerts"]
        assert (alert["title"], alert["level"]) == ("done soon", "info")


def test_what_jobwatch_cannot_do_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotImplementedError, match=r"wandb.watch"):
        wandb.watch(object())
    with pytest.raises(NotImplementedError, match=r"wandb.Image"):
        wandb.Image("x.png")
    with pytest.raises(NotImplementedError, match="log_artifact"):
        wandb.log_artifact("model.pt")
    with pytest.raises(AttributeError, match=r"does not support wandb.Molecule"):
        wandb.Molecule  # noqa: B018
    with pytest.raises(NotImplementedError, match="does not support magic_words"):
        wandb.init(magic_words=1)
    with pytest.raises(RuntimeError, match=r"wandb.init"):
        wandb.log({"loss": 1.0})
    with pytest.raises(ValueError, match="resume"):
        wandb.init(resume="sometimes")


def test_resume_must_and_never(server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    run_id = f"wb-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError, match="does not exist"):
        wandb.init(id=run_id, resume="must")
    run = wandb.init(id=run_id, resume="never", config={"a": 1})
    run.log({"x": 1.0}, step=3)
    assert run.step == 4
    with pytest.raises(ValueError, match="below the run's step"):
        run.log({"x": 2.0}, step=1)
    wandb.finish(exit_code=2)
    assert wandb.run is None
    with Client(server.url) as client:
        job = client.get_job(run_id)
    assert (job["status"], job["error"]) == ("failed", "exit code 2")
    with pytest.raises(ValueError, match="exists already"):
        wandb.init(id=run_id, resume="never")


def test_a_config_too_large_is_left_out_with_a_warning(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    run = wandb.init(id=f"wb-{uuid.uuid4().hex[:8]}", config={"small": 1})
    with caplog.at_level(logging.WARNING, "jobwatch.compat.wandb"):
        wandb.config.update({"huge": "x" * 70_000})
    assert "config left out" in caplog.text
    assert run.reporter.config == {"small": 1}
    wandb.finish()
    assert wandb.run is None
