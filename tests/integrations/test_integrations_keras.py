"""JobwatchCallback in a real Keras 3 ``model.fit`` (JAX backend, CPU) against a
real server: progress, operation, training metrics, completion and failure as
stored."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer

os.environ["KERAS_BACKEND"] = "jax"  # read once, when keras is first imported

EPOCHS, STEPS = 4, 6  # 256 samples, a quarter for validation, batches of 32


@pytest.fixture(scope="module")
def keras() -> Any:
    """Keras 3 (JAX backend), imported by the first test that needs it: with JAX,
    scikit-learn and SciPy that takes seconds, which every xdist worker would
    spend collecting if the module imported it."""
    return importlib.import_module("keras")


def jobwatch_callback(*args: Any, **options: Any) -> Any:
    """``JobwatchCallback(*args, **options)`` (its module imports Keras, when first called)."""
    from jobwatch.integrations.keras import JobwatchCallback

    return JobwatchCallback(*args, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def toy_data() -> tuple[np.ndarray, np.ndarray]:
    """A linearly separable problem a logistic regression learns in a few epochs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.0]) > 0).astype("float32")
    return x, y


def toy_model(keras: Any, *metrics: Any) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss="binary_crossentropy",
        metrics=["accuracy", *metrics],
    )
    return model


@pytest.fixture(scope="module")
def probe(keras: Any) -> Any:
    """The class of a Keras callback that reads the job from the server at chosen
    points of training: ``probe(reporter, url, when)``, put after the jobwatch
    callback (which comes first in the list)."""

    class Probe(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self, reporter: Reporter, url: str, when: Callable[[str, int, int], bool]):
            super().__init__()
            self.reporter, self.client, self.when = reporter, Client(url), when
            self.epoch = 0
            self.seen: list[tuple[float, str]] = []

        def look(self, hook: str, index: int) -> None:
            if self.when(hook, self.epoch, index):
                assert self.reporter.flush(5)
                job = self.client.get_job(self.reporter.job_id)
                self.seen.append((job["progress"], job["currentOperation"]))

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            self.look("epoch_begin", epoch)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.look("batch", batch)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.look("epoch_end", epoch)

    return Probe


def series(server: EmbeddedServer, job_id: str) -> dict[str, list[tuple[int, float]]]:
    got = Client(server.url).scalars(job_id)
    return {name: [(p["step"], p["value"]) for p in points] for name, points in got.items()}


def test_fit_reports_progress_metrics_and_completion(
    server: EmbeddedServer, keras: Any, probe: Any
) -> None:
    x, y = toy_data()
    model = toy_model(keras)
    callback = jobwatch_callback("keras-fit", url=server.url, gpu=False, interval=0.05)
    seen = probe(
        callback.reporter,
        server.url,
        lambda hook, epoch, i: epoch == 1 and (hook == "epoch_end" or (hook, i) == ("batch", 2)),
    )
    history = model.fit(
        x, y, batch_size=32, epochs=EPOCHS, validation_split=0.25, verbose=0,
        callbacks=[callback, seen],
    )  # fmt: skip

    # mid-run, as the server held it: epoch 2 of 4, batch 3 of 6, then the epoch's end
    assert seen.seen == [(37.5, "epoch 2/4, batch 3/6"), (50.0, "epoch 2/4")]
    job = Client(server.url).get_job("keras-fit")
    assert job["status"] == "completed"
    assert job["progress"] == 100
    got = series(server, "keras-fit")
    assert set(got) == {
        "loss", "accuracy", "val_loss", "val_accuracy", "batch/loss", "batch/accuracy",
    }  # fmt: skip
    epoch_ends = [STEPS * (e + 1) for e in range(EPOCHS)]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):  # Keras's names and values
        assert [s for s, _ in got[name]] == epoch_ends
        assert [v for _, v in got[name]] == pytest.approx(history.history[name])
    losses = [v for _, v in got["loss"]]
    assert losses == sorted(losses, reverse=True)  # it learns
    assert [s for s, _ in got["batch/loss"]] == list(range(1, EPOCHS * STEPS + 1))
    # the running mean at an epoch's last batch is the epoch's loss
    assert got["batch/loss"][STEPS - 1][1] == pytest.approx(got["loss"][0][1])
    assert job["result"] == pytest.approx({k: v[-1] for k, v in history.history.items()})


def test_resumed_fit_starts_where_it_was_and_logs_every_n_batches(
    server: EmbeddedServer, keras: Any, probe: Any
) -> None:
    x, y = toy_data()
    with Reporter("keras-resume", url=server.url, gpu=False, interval=0.05) as report:
        callback = jobwatch_callback(report, update_freq=4)
        seen = probe(report, server.url, lambda hook, epoch, i: hook == "epoch_begin")
        toy_model(keras).fit(
            x, y, batch_size=32, initial_epoch=2, epochs=EPOCHS, validation_split=0.25,
            verbose=0, callbacks=[callback, seen],
        )  # fmt: skip
    assert seen.seen == [(50.0, "epoch 3/4"), (75.0, "epoch 4/4")]
    got = series(server, "keras-resume")
    assert [s for s, _ in got["batch/loss"]] == [16, 20, 24]  # batches 13-24, every 4th
    assert [s for s, _ in got["loss"]] == [18, 24]
    assert Client(server.url).get_job("keras-resume")["status"] == "completed"


def test_values_jobwatch_cannot_take_are_left_out_and_training_goes_on(
    server: EmbeddedServer, keras: Any, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = toy_data()
    y2 = np.stack([y, 1 - y], axis=1)  # two classes, for a per-class F1
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.MeanAbsoluteError(name="mean abs error"),  # a space: not allowed
            keras.metrics.F1Score(average=None, threshold=0.5, name="f1"),  # one per class
        ],
    )
    with caplog.at_level(logging.WARNING, "jobwatch.integrations"):
        model.fit(
            x, y2, batch_size=64, epochs=2, verbose=0,
            callbacks=[jobwatch_callback("keras-odd", url=server.url, gpu=False, interval=0.05)],
        )  # fmt: skip
    assert set(series(server, "keras-odd")) == {"loss", "batch/loss"}
    job = Client(server.url).get_job("keras-odd")
    assert job["status"] == "completed"
    assert set(job["result"]) == {"loss"}
    left_out = sorted(
        r.getMessage() for r in caplog.records if r.name.startswith("jobwatch.integrations")
    )
    assert len(left_out) == 4  # once per name, not once per batch
    assert "'batch/f1' is left out: its value" in left_out[0]
    assert "'batch/mean abs error' is left out: metric names are 1-64" in left_out[1]


def test_a_crash_in_fit_fails_the_job_through_the_reporters_context(
    server: EmbeddedServer, keras: Any
) -> None:
    class Crash(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                raise RuntimeError("out of memory")

    x, y = toy_data()
    with (
        pytest.raises(RuntimeError, match="out of memory"),
        Reporter("keras-crash", url=server.url, gpu=False, interval=0.05) as report,
    ):
        toy_model(keras).fit(
            x, y, batch_size=32, epochs=EPOCHS, verbose=0,
            callbacks=[jobwatch_callback(report), Crash()],
        )  # fmt: skip
    job = Client(server.url).get_job("keras-crash")
    assert job["status"] == "failed"
    assert job["error"] == "RuntimeError: out of memory"
    assert [s for s, _ in series(server, "keras-crash")["loss"]] == [8, 16]


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("job",), {"update_freq": 0}, "update_freq must be"),
        (("job",), {"update_freq": "step"}, "update_freq must be"),
        (("job",), {"update_freq": True}, "update_freq must be"),
        ((7,), {}, "reporter must be a Reporter or a job id"),
        (("bad id!",), {}, "job_id must be"),
        (("job",), {"price_per_hour": -1}, "price_per_hour must be"),
    ],
)
def test_bad_arguments_raise_before_training(
    server: EmbeddedServer, args: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        jobwatch_callback(*args, url=server.url, gpu=False, **options)


def test_options_with_a_reporter_raise(server: EmbeddedServer) -> None:
    report = Reporter("keras-opts", url=server.url, gpu=False)
    with pytest.raises(ValueError, match="options of a new Reporter are given with a Reporter"):
        jobwatch_callback(report, price_per_hour=2.0)
    report.close()


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # how Keras ends such an epoch
def test_batches_of_unknown_count_move_progress_per_epoch(
    server: EmbeddedServer, keras: Any, probe: Any
) -> None:
    x, y = toy_data()

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # no length: Keras cannot count
        for start in range(0, 256, 64):
            yield x[start : start + 64], y[start : start + 64]

    callback = jobwatch_callback("keras-stream", url=server.url, gpu=False, interval=0.05)
    seen = probe(callback.reporter, server.url, lambda hook, epoch, i: hook != "epoch_begin")
    toy_model(keras).fit(batches(), epochs=1, shuffle=False, verbose=0, callbacks=[callback, seen])
    assert seen.seen == [
        (0.0, "epoch 1/1, batch 1"),
        (0.0, "epoch 1/1, batch 2"),
        (0.0, "epoch 1/1, batch 3"),
        (0.0, "epoch 1/1, batch 4"),
        (100.0, "epoch 1/1"),
    ]
    assert [s for s, _ in series(server, "keras-stream")["loss"]] == [4]


def test_import_without_keras_backend_names_the_backend_not_keras() -> None:
    """Keras 3 installed, KERAS_BACKEND unset and no TensorFlow (Keras's default
    backend): the error says to pick a backend, not to install Keras."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('tensorflow') is None, 'TensorFlow is installed'\n"
        "import jobwatch.integrations.keras\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "needs Keras 3" not in last
    assert "KERAS_BACKEND" in last
    assert "tensorflow" in last
    assert "jax" in last
