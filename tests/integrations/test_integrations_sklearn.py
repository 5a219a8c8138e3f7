"""A real scikit-learn ``partial_fit`` loop reported with ``Reporter.track(...,
metrics=...)`` against a real server: progress, operation, the metrics as the
loop computed them, and completion."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


# scikit-learn is imported by the tests that run, not by every xdist worker collecting
# this module (it takes a second or two, with SciPy).


def test_partial_fit_epochs_report_their_loss_and_accuracy(server: EmbeddedServer) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)  # shipped with scikit-learn
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, random_state=0)
    classes = np.unique(y)
    model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05, random_state=0)
    stats: dict[str, float] = {}
    computed: list[dict[str, float]] = []
    with Reporter("sgd-digits", url=server.url, gpu=False, interval=0.05) as report:
        for _ in report.track(range(8), description="epoch", metrics=stats):
            model.partial_fit(x_train, y_train, classes=classes)
            stats["loss"] = log_loss(y_train, model.predict_proba(x_train), labels=classes)
            stats["val/accuracy"] = model.score(x_val, y_val)
            computed.append(dict(stats))
        assert report.flush(5)
        job = Client(server.url).get_job("sgd-digits")
        assert (job["progress"], job["currentOperation"]) == (100, "epoch 8/8")

    assert Client(server.url).get_job("sgd-digits")["status"] == "completed"
    got = Client(server.url).scalars("sgd-digits")
    assert set(got) == {"loss", "val/accuracy"}
    for name in got:  # step = epochs done, the value as the loop computed it
        assert [(p["step"], p["value"]) for p in got[name]] == [
            (epoch, pytest.approx(values[name])) for epoch, values in enumerate(computed, 1)
        ]
    losses = [p["value"] for p in got["loss"]]
    assert losses == sorted(losses, reverse=True)  # it learns
    assert got["val/accuracy"][-1]["value"] > 0.9


def test_minibatches_with_a_metrics_function(server: EmbeddedServer) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    classes = np.unique(y)
    model = SGDClassifier(loss="log_loss", random_state=0)
    batches = np.array_split(np.arange(len(y)), 9)
    with Reporter("sgd-batches", url=server.url, gpu=False, interval=0.05) as report:
        for rows in report.track(
            batches, description="batch", metrics=lambda: {"accuracy": model.score(x, y)}
        ):
            model.partial_fit(x[rows], y[rows], classes=classes)
    got = Client(server.url).scalars("sgd-batches")
    assert [p["step"] for p in got["accuracy"]] == list(range(1, 10))
    job = Client(server.url).get_job("sgd-batches")
    assert (job["status"], job["currentOperation"]) == ("completed", "batch 9/9")
