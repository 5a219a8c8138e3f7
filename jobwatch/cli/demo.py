"""A real training job to watch: a small neural network on scikit-learn's
bundled digits (1,797 8x8 images of handwritten digits, shipped with the
library: nothing is downloaded).

Used by ``jobwatch demo``, the quickstart notebook and the remote-worker
example. Needs scikit-learn (``pip install "jobwatch[demo]"``).
"""

from __future__ import annotations

import time
from typing import Any

from jobwatch.report.reporter import Reporter

BATCH_SIZE = 64

__all__ = ["run_demo", "train_digits"]


def train_digits(
    reporter: Reporter, *, epochs: int = 30, pace: float = 0.0, seed: int = 0
) -> dict[str, Any]:
    """Train an MLP (64 hidden units) on the digits for ``epochs`` epochs, reporting each.

    Each epoch runs mini-batches of 64 through ``partial_fit``, then reports
    progress (``"Epoch i/N"``) and two log lines: the epoch, and the validation
    loss and accuracy. A validation loss that rises for 3 epochs running is
    logged as a warning.

    Parameters
    ----------
    reporter:
        Where progress and log lines go.
    epochs:
        Number of passes over the training set (1-1000).
    pace:
        Seconds to wait after each epoch, so that a person can watch (the
        whole training takes about a second on a laptop CPU).
    seed:
        Random seed of the split and the network.

    Returns
    -------
    dict
        ``{"testAccuracy": float 0-1, "testLoss": float, "epochs": int,
        "trainSamples": int, "testSamples": int}``.

    Raises
    ------
    ValueError
        ``epochs`` or ``pace`` out of range.
    ImportError
        scikit-learn is not installed.
    """
    if not 1 <= epochs <= 1000:
        raise ValueError(f"epochs must be 1-1000, got {epochs!r}")
    if not 0 <= pace <= 60:
        raise ValueError(f"pace must be 0-60 seconds, got {pace!r}")
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    features = features / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=seed, stratify=labels
    )
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=0.15, random_state=seed, stratify=y_train
    )
    model = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=0.005, random_state=seed)
    classes = np.arange(10)
    rng = np.random.default_rng(seed)
    reporter.log(
        f"digits: {len(x_fit)} train, {len(x_val)} validation, {len(x_test)} test images; "
        f"MLP 64-64-10, batch {BATCH_SIZE}"
    )
    best, rising = float("inf"), 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_fit))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            model.partial_fit(x_fit[batch], y_fit[batch], classes=classes)
        loss = float(log_loss(y_val, model.predict_proba(x_val), labels=classes))
        accuracy = float(accuracy_score(y_val, model.predict(x_val)))
        reporter.update(100.0 * epoch / epochs, f"Epoch {epoch}/{epochs}")
        reporter.log(f"Epoch {epoch}/{epochs} completed")
        reporter.log(f"Loss: {loss:.4f}, Accuracy: {accuracy:.2%}")
        rising = rising + 1 if loss > best else 0
        best = min(best, loss)
        if rising == 3:
            reporter.log(f"validation loss rose for 3 epochs (best {best:.4f})", level="warning")
        if pace:
            time.sleep(pace)
    test_loss = float(log_loss(y_test, model.predict_proba(x_test), labels=classes))
    test_accuracy = float(accuracy_score(y_test, model.predict(x_test)))
    reporter.log(f"test accuracy {test_accuracy:.2%}, test loss {test_loss:.4f}")
    return {
        "testAccuracy": round(test_accuracy, 4),
        "testLoss": round(test_loss, 4),
        "epochs": epochs,
        "trainSamples": len(x_fit),
        "testSamples": len(x_test),
    }


def run_demo(*, epochs: int = 30, pace: float = 0.2, price_per_hour: float = 2.5) -> int:
    """``jobwatch demo``: the digits training against an embedded server, watched in the terminal.

    Starts the server in this process (SQLite in memory), trains in a
    background thread with a :class:`Reporter`, and shows the job with the
    live terminal view until it ends.

    Returns
    -------
    int
        0 when the job completed, 4 when it failed.
    """
    import threading
    import uuid

    from jobwatch.client.rest import Client
    from jobwatch.server.deploy.run import EmbeddedServer
    from jobwatch.terminal.watch import Watcher

    server = EmbeddedServer(config={"DATABASE": ":memory:"})
    job_id = f"digits-{uuid.uuid4().hex[:6]}"
    client = Client(server.url)
    client.create_job(job_id=job_id, name="digits MLP (demo)", price_per_hour=price_per_hour)
    print(f"jobwatch demo: server {server.url}, job {job_id}, {epochs} epochs\n")

    def train() -> None:
        with Reporter(
            job_id, url=server.url, interval=0.2, price_per_hour=price_per_hour
        ) as reporter:
            reporter.complete(train_digits(reporter, epochs=epochs, pace=pace))

    trainer = threading.Thread(target=train, name="jobwatch-demo-training", daemon=True)
    trainer.start()
    try:
        state = Watcher(client, job_id).run()
    finally:
        trainer.join(10)
        client.close()
        server.stop()
    return 0 if state.job.get("status") == "completed" else 4
