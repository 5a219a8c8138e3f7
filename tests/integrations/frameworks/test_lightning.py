"""JobwatchCallback and JobwatchLogger in a real Lightning ``Trainer.fit`` (a small
MLP on synthetic data, CPU) against a real server: progress, operation,
metrics, hyperparameters, completion and failure, as stored."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch

from jobwatch.client.rest import Client
from jobwatch.integrations.lightning import JobwatchCallback, JobwatchLogger
from jobwatch.server import EmbeddedServer

pytestmark = pytest.mark.frameworks

SAMPLES, BATCH, EPOCHS = 128, 16, 3  # 8 steps per epoch, 24 in all


class MLP(lightning.LightningModule):  # type: ignore[misc]
    def __init__(self, hidden: int = 16, lr: float = 0.1, crash_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.hparams.crash_at == self.global_step:
            raise RuntimeError("out of memory")
        if self.hparams.get("ctrl_c_at") == self.global_step:
            raise KeyboardInterrupt
        x, y = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(x).squeeze(1), y)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        accuracy = ((self.net(x).squeeze(1) > 0).float() == y).float().mean()
        self.log("val/accuracy", accuracy)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(seed: int, count: int = SAMPLES) -> Any:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, generator=generator)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 1.0]) > 0).float()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)


def trainer(tmp_path: Path, callbacks: list[Any], logger: Any = False, **options: Any) -> Any:
    lightning.seed_everything(0, verbose=False)
    options = {"max_epochs": EPOCHS, **options}
    return lightning.Trainer(
        accelerator="cpu", devices=1, default_root_dir=str(tmp_path),
        callbacks=callbacks, logger=logger, log_every_n_steps=4, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **options,
    )  # fmt: skip


class Probe(lightning.Callback):  # type: ignore[misc]
    def __init__(self, callback: JobwatchCallback, url: str, steps: set[int]) -> None:
        self.callback, self.client, self.steps = callback, Client(url), steps
        self.seen: list[tuple[int, float, str]] = []

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step in self.steps:
            reporter = self.callback.reporter
            assert reporter is not None and reporter.flush(5)
            job = self.client.get_job(reporter.job_id)
            self.seen.append((trainer.global_step, job["progress"], job["currentOperation"]))


def test_callback_and_logger_report_one_job(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_JOB", "pl-mlp")
    callback = JobwatchCallback()
    logger = JobwatchLogger(gpu=False, interval=0.05)
    probe = Probe(callback, server.url, {6, 12})
    fit = trainer(tmp_path, [callback, probe], logger)
    fit.fit(MLP(), loader(0), loader(1, 32))

    assert probe.seen == [(6, 25.0, "epoch 1/3, step 6/24"), (12, 50.0, "epoch 2/3, step 12/24")]
    assert logger.version == "pl-mlp"
    client = Client(server.url)
    job = client.get_job("pl-mlp")
    assert job["status"] == "completed"
    assert job["progress"] == 100
    assert set(job["result"]) == {"loss", "val/accuracy"}
    scalars = client.scalars("pl-mlp")
    # at Lightning's own steps (as its CSVLogger writes them): every log_every_n_steps batches
    assert [p["step"] for p in scalars["loss"]] == [3, 7, 11, 15, 19, 23]
    assert [p["step"] for p in scalars["val/accuracy"]] == [7, 15, 23]
    assert scalars["val/accuracy"][-1]["value"] > 0.7  # it learns
    assert job["config"] == {"crash_at": None, "hidden": 16, "lr": 0.1}


def test_callback_alone_logs_epoch_metrics(server: EmbeddedServer, tmp_path: Path) -> None:
    callback = JobwatchCallback("pl-alone", url=server.url, gpu=False, interval=0.05)
    trainer(tmp_path, [callback]).fit(MLP(), loader(0), loader(1, 32))
    client = Client(server.url)
    assert client.get_job("pl-alone")["status"] == "completed"
    scalars = client.scalars("pl-alone")
    assert [p["step"] for p in scalars["val/accuracy"]] == [7, 15, 23]


def test_a_crash_in_fit_fails_the_job(server: EmbeddedServer, tmp_path: Path) -> None:
    callback = JobwatchCallback("pl-crash", url=server.url, gpu=False, interval=0.05)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer(tmp_path, [callback]).fit(MLP(crash_at=10), loader(0), loader(1, 32))
    job = Client(server.url).get_job("pl-crash")
    assert job["status"] == "failed"
    assert job["error"] == "RuntimeError: out of memory"
    assert job["progress"] == pytest.approx(100 * 10 / 24)


def test_logger_alone_completes_and_fails(server: EmbeddedServer, tmp_path: Path) -> None:
    logger = JobwatchLogger("pl-logger", url=server.url, gpu=False, interval=0.05)
    trainer(tmp_path, [], logger, max_epochs=1).fit(MLP(), loader(0))
    assert Client(server.url).get_job("pl-logger")["status"] == "completed"

    logger = JobwatchLogger("pl-logger-crash", url=server.url, gpu=False, interval=0.05)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer(tmp_path, [], logger).fit(MLP(crash_at=5), loader(0))
    assert Client(server.url).get_job("pl-logger-crash")["status"] == "failed"


def test_max_steps_stops_early_at_100_percent(server: EmbeddedServer, tmp_path: Path) -> None:
    callback = JobwatchCallback("pl-steps", url=server.url, gpu=False, interval=0.05)
    trainer(tmp_path, [callback], max_steps=10).fit(MLP(), loader(0))
    job = Client(server.url).get_job("pl-steps")
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert job["currentOperation"] == "epoch 2/3, step 10/10"


class CtrlC(MLP):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.hparams.ctrl_c_at = at


@pytest.fixture
def sigint() -> Iterator[None]:
    """Lightning ignores SIGINT after a Ctrl-C (to shut down in peace): put it back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_ctrl_c_cancels_the_job_as_the_reporter_does(
    server: EmbeddedServer, tmp_path: Path, sigint: None
) -> None:
    callback = JobwatchCallback("pl-ctrl-c", url=server.url, gpu=False, interval=0.05)
    with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C: sys.exit(1)
        trainer(tmp_path, [callback]).fit(CtrlC(at=5), loader(0))
    job = Client(server.url).get_job("pl-ctrl-c")
    assert (job["status"], job["error"]) == ("cancelled", "interrupted (KeyboardInterrupt)")

    logger = JobwatchLogger("pl-ctrl-c-logger", url=server.url, gpu=False, interval=0.05)
    with pytest.raises(SystemExit):
        trainer(tmp_path, [], logger).fit(CtrlC(at=5), loader(0))
    job = Client(server.url).get_job("pl-ctrl-c-logger")
    assert (job["status"], job["error"]) == ("cancelled", "interrupted (KeyboardInterrupt)")


def test_the_logger_alone_fails_the_job_with_the_exception(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logger = JobwatchLogger("pl-logger-why", url=server.url, gpu=False, interval=0.05)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer(tmp_path, [], logger).fit(MLP(crash_at=5), loader(0))
    assert Client(server.url).get_job("pl-logger-why")["error"] == "RuntimeError: out of memory"


def test_a_second_fit_with_the_same_callback_warns_that_it_is_not_reported(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    callback = JobwatchCallback("pl-twice", url=server.url, gpu=False, interval=0.05)
    trainer(tmp_path, [callback], max_epochs=1).fit(MLP(), loader(0))
    with pytest.warns(UserWarning, match="pl-twice.*already finished.*a new JobwatchCallback"):
        trainer(tmp_path, [callback], max_epochs=1).fit(MLP(), loader(0))
    assert Client(server.url).get_job("pl-twice")["status"] == "completed"
