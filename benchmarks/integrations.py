"""What each framework integration costs a training step: the integration's work
per step against the step of a realistic small model trained by the same
framework (CPU), with the goal of at most 1 % (``python -m benchmarks --only integrations``;
needs ``pip install -e ".[frameworks]"``).

A step's time is the shortest time between consecutive steps of a real
training run without the integration (measured by a timing callback that does
nothing else): the step least slowed by other work, so that the share is an
upper bound on a shared machine. The integration's cost per step is measured on its own, best of 5
(:mod:`timeit`): the hooks the framework calls once a step, with the
framework's real objects, plus the metrics hook's cost over the steps between
two logs. The Reporter reports to an embedded server in this process, as a
notebook's would.

The same training with the integration attached as the docs show it
(``callbacks=[JobwatchCallback(...)]``, Lightning's logger too, Accelerate's
``log_with``) is also timed against the same training without it, in whole
runs (not with ``--quick``): :data:`PAIRS` pairs of runs, without and with,
alternating; each pair's ratio is the step with over the step without, and
the figure is their median, beside their range. On a shared machine steps swing by more
than 1 % from one run to the next, so this bounds the cost only as well as the
noise allows (the range says how well); the parts measure it. Those runs
report to ``jobwatch serve`` in another process, as a job reports to its
server.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess, serve_command

GROUP = "integrations"
LOG_EVERY = 10
"""Steps between two metric logs in every measured hook (transformers' ``logging_steps``,
Lightning's ``log_every_n_steps``): more often than any default, so the cost is an upper bound."""
PAIRS = 3
"""Pairs of whole runs, without and with the integration, per framework (not with ``--quick``)."""

Train = Callable[[int, "str | None"], "tuple[list[float], Any]"]
"""``train(steps, url)``: a real run of ``steps`` steps with the integration
reporting to ``url`` (``None``: without it); returns the times each step ended
(``time.perf_counter()``) and what the parts' measurement needs of the run."""


def _per_call(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def _step_time(stamps: list[float]) -> float:
    """The shortest time between two consecutive step ends (the first step, which
    warms up, left out): the step least slowed by other work on a shared
    machine, so the share it gives is an upper bound. (The median was no use
    here: on two loaded cores a 2-thread torch step swung from 0.13 s to 4 s
    between runs of the same model.)"""
    return min(b - a for a, b in itertools.pairwise(stamps[1:]))


def _job(framework: str) -> str:
    return f"bench-{framework}-{uuid.uuid4().hex[:6]}"


# -- transformers -------------------------------------------------------------


def _transformers_train(steps: int, url: str | None) -> tuple[list[float], Any]:
    import torch
    import transformers

    from jobwatch.integrations.transformers import JobwatchCallback

    class Stamps(transformers.TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.at: list[float] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.at.append(time.perf_counter())

    config = transformers.BertConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
        vocab_size=1000, max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    ids = torch.randint(1, 1000, (16 * steps, 64))
    data = [{"input_ids": row, "labels": int(row[0] > 500)} for row in ids]
    stamps = Stamps()
    callbacks: list[Any] = [stamps]
    if url is not None:
        callbacks.append(JobwatchCallback(_job("transformers"), url=url, gpu=False))
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            out, max_steps=steps, per_device_train_batch_size=16, logging_steps=LOG_EVERY,
            report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
        )  # fmt: skip
        trainer = transformers.Trainer(
            model=transformers.BertForSequenceClassification(config),
            args=args, train_dataset=data, callbacks=callbacks,
        )  # fmt: skip
        trainer.train()
    return stamps.at, args


def _transformers(url: str, steps: int) -> tuple[float, float, str]:
    import transformers

    from jobwatch.integrations.transformers import JobwatchCallback

    stamps, args = _transformers_train(steps, None)
    callback = JobwatchCallback("bench-transformers", url=url, gpu=False)
    state = transformers.TrainerState(max_steps=10**6, num_train_epochs=3)
    control = transformers.TrainerControl()
    callback.on_train_begin(args, state, control)

    def step() -> None:
        state.global_step += 1
        state.epoch = state.global_step / 1000
        callback.on_step_end(args, state, control)

    logs = {"loss": 0.5, "grad_norm": 1.2, "learning_rate": 1e-4, "epoch": 0.5}
    cost = (
        _per_call(step, 2000)
        + _per_call(lambda: callback.on_log(args, state, control, logs=logs), 200) / LOG_EVERY
    )
    callback.on_train_end(args, state, control)
    return _step_time(stamps), cost, "BERT 2x128, batch 16 x 64 tokens"


# -- Lightning ----------------------------------------------------------------


def _mlp(width: int = 512) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
        torch.nn.ReLU(), torch.nn.Linear(width, 10),
    )  # fmt: skip


def _mnist_like(batches: int) -> Any:
    import torch

    torch.manual_seed(0)
    x = torch.randn(128 * batches, 784)
    y = torch.randint(0, 10, (128 * batches,))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128)


def _lightning_train(steps: int, url: str | None) -> tuple[list[float], Any]:
    import lightning
    import torch

    from jobwatch.integrations.lightning import JobwatchCallback, JobwatchLogger

    class Model(lightning.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Stamps(lightning.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.at: list[float] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.at.append(time.perf_counter())

    stamps = Stamps()
    callbacks: list[Any] = [stamps]
    logger: Any = False
    if url is not None:
        logger = JobwatchLogger(_job("lightning"), url=url, gpu=False)
        callbacks.append(JobwatchCallback())  # finds the logger: one job, as the docs show
    with tempfile.TemporaryDirectory() as root:
        trainer = lightning.Trainer(
            max_epochs=1, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=root, log_every_n_steps=LOG_EVERY,
        )  # fmt: skip
        trainer.fit(Model(), _mnist_like(steps))
    return stamps.at, trainer


def _lightning(url: str, steps: int) -> tuple[float, float, str]:
    from jobwatch.integrations.lightning import JobwatchCallback, JobwatchLogger

    stamps, trainer = _lightning_train(steps, None)
    callback = JobwatchCallback("bench-lightning", url=url, gpu=False)
    logger = JobwatchLogger("bench-lightning-logger", url=url, gpu=False)
    callback.on_fit_start(trainer, None)
    cost = _per_call(lambda: callback.on_train_batch_end(trainer, None, None, None, 0), 2000)
    cost += _per_call(lambda: logger.log_metrics({"loss": 0.5}, 3), 200) / LOG_EVERY
    callback.on_fit_end(trainer, None)
    logger.finalize("success")
    return _step_time(stamps), cost, "MLP 784-512-512-10, batch 128"


# -- Accelerate ---------------------------------------------------------------


def _accelerate_train(steps: int, url: str | None) -> tuple[list[float], Any]:
    import accelerate
    import torch

    from jobwatch.integrations.accelerate import JobwatchTracker

    torch.manual_seed(0)
    model, data = _mlp(), _mnist_like(steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    tracker = None
    if url is not None:
        tracker = JobwatchTracker(_job("accelerate"), total_steps=steps, url=url, gpu=False)
    accelerator = accelerate.Accelerator(cpu=True, log_with=tracker)
    if tracker is not None:
        accelerator.init_trackers("bench")
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    stamps = []
    for step, (x, y) in enumerate(data, 1):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        value = loss.item()  # what a loop that logs its loss pays with or without a tracker
        if tracker is not None:
            accelerator.log({"loss": value}, step=step)
        stamps.append(time.perf_counter())
    if tracker is not None:
        accelerator.end_training()
    return stamps, None


def _accelerate(url: str, steps: int) -> tuple[float, float, str]:
    from jobwatch.integrations.accelerate import JobwatchTracker

    stamps, _ = _accelerate_train(steps, None)
    tracker = JobwatchTracker("bench-accelerate", total_steps=10**6, url=url, gpu=False)
    tracker.start()
    count = iter(range(1, 10**7))
    cost = _per_call(lambda: tracker.log({"loss": 0.5}, step=next(count)), 2000)
    tracker.finish()
    return _step_time(stamps), cost, "MLP 784-512-512-10, batch 128, accelerator.log each step"


# -- XGBoost and LightGBM -----------------------------------------------------


def _boosting_data() -> Any:
    from sklearn.datasets import make_classification

    return make_classification(n_samples=20_000, n_features=20, random_state=0)


def _xgboost_train(steps: int, url: str | None) -> tuple[list[float], Any]:
    import xgboost

    from jobwatch.integrations.xgboost import JobwatchCallback

    class Stamps(xgboost.callback.TrainingCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.at: list[float] = []

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.at.append(time.perf_counter())
            return False

    x, y = _boosting_data()
    train = xgboost.DMatrix(x[:16_000], label=y[:16_000])
    valid = xgboost.DMatrix(x[16_000:], label=y[16_000:])
    stamps = Stamps()
    callbacks: list[Any] = [stamps]
    if url is not None:
        callbacks.append(JobwatchCallback(_job("xgboost"), url=url, gpu=False))
    xgboost.train(
        {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 6, "nthread": 2},
        train, steps, evals=[(valid, "eval")], verbose_eval=False, callbacks=callbacks,
    )  # fmt: skip
    return stamps.at, None


def _xgboost(url: str, steps: int) -> tuple[float, float, str]:
    from jobwatch.integrations.xgboost import JobwatchCallback

    stamps, _ = _xgboost_train(steps, None)
    callback = JobwatchCallback("bench-xgboost", num_boost_round=10**6, url=url, gpu=False)
    callback.before_training(None)
    evals_log = {"eval": {"logloss": [0.5] * 50}}
    rounds = iter(range(10**7))
    cost = _per_call(lambda: callback.after_iteration(None, next(rounds), evals_log), 2000)
    callback.after_training(None)
    return _step_time(stamps), cost, "20,000 x 20, depth 6, 2 threads, one eval set"


def _lightgbm_train(steps: int, url: str | None) -> tuple[list[float], Any]:
    import lightgbm

    from jobwatch.integrations.lightgbm import jobwatch_callback

    stamps: list[float] = []

    def stamp(env: Any) -> None:
        stamps.append(time.perf_counter())

    x, y = _boosting_data()
    train = lightgbm.Dataset(x[:16_000], label=y[:16_000])
    valid = lightgbm.Dataset(x[16_000:], label=y[16_000:], reference=train)
    callbacks: list[Any] = [stamp]
    if url is not None:
        callbacks.append(jobwatch_callback(_job("lightgbm"), url=url, gpu=False))
    lightgbm.train(
        {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_threads": 2},
        train, steps, valid_sets=[valid], callbacks=callbacks,
    )  # fmt: skip
    return stamps, None


def _lightgbm(url: str, steps: int) -> tuple[float, float, str]:
    import lightgbm

    from jobwatch.integrations.lightgbm import jobwatch_callback

    stamps, _ = _lightgbm_train(steps, None)
    callback = jobwatch_callback("bench-lightgbm", url=url, gpu=False)
    env = lightgbm.callback.CallbackEnv(
        model=None, params={}, iteration=0, begin_iteration=0, end_iteration=10**7,
        evaluation_result_list=[("valid_0", "binary_logloss", 0.5, False)],
    )  # fmt: skip
    cost = _per_call(lambda: callback(env), 2000)
    callback.finish()
    return _step_time(stamps), cost, "20,000 x 20, 31 leaves, 2 threads, one eval set"


CASES: dict[str, Callable[[str, int], tuple[float, float, str]]] = {
    "transformers": _transformers,
    "lightning": _lightning,
    "accelerate": _accelerate,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
}
TRAIN: dict[str, Train] = {
    "transformers": _transformers_train,
    "lightning": _lightning_train,
    "accelerate": _accelerate_train,
    "xgboost": _xgboost_train,
    "lightgbm": _lightgbm_train,
}


def whole_runs(name: str, url: str, steps: int, pairs: int = PAIRS) -> tuple[float, list[float]]:
    """The step (:func:`_step_time`) of runs with the integration over the step of
    runs without it: the median of ``pairs`` pairs' ratios (alternating, every
    other pair the other way round), and each pair's ratio."""
    train = TRAIN[name]
    ratios = []
    for pair in range(pairs):
        order = [None, url] if pair % 2 == 0 else [url, None]
        gaps = {}
        for target in order:
            stamps, _ = train(steps, target)
            gaps[target] = _step_time(stamps)
        ratios.append(gaps[url] / gaps[None])
    return statistics.median(ratios), ratios


def run(quick: bool) -> list[Row]:
    """Rows per integration: its cost per step, as a share of the step; and (not
    with ``quick``) whole runs with it against whole runs without it."""
    steps = 12 if quick else 40
    rows = []
    server = EmbeddedServer(config={"DATABASE": ":memory:"})
    done = []
    try:
        for name, case in CASES.items():
            try:
                step, cost, model = case(server.url, steps)
            except ImportError as exc:
                rows.append(Row(GROUP, name, "not installed", None, "<= 1 % of a step", str(exc)))
                continue
            done.append(name)
            rows.append(
                Row(
                    GROUP,
                    f"{name}: {model}",
                    f"{cost * 1e6:.1f} us of a {step * 1e3:.2f} ms step = {100 * cost / step:.3f} %",
                    None,
                    "<= 1 % of a step",
                    "timeit best of 5; step: the shortest of a real run",
                )
            )
    finally:
        server.stop()
    if quick:
        return rows
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "integrations.db")) as served,
    ):
        for name in done:
            ratio, pairs = whole_runs(name, served.url, steps)
            rows.append(
                Row(
                    GROUP,
                    f"{name}: whole runs, the step with the integration / without",
                    f"{ratio:.3f}x (pairs {min(pairs):.3f}-{max(pairs):.3f}x)",
                    ratio,
                    "<= 1.01x, within the noise",
                    f"{PAIRS} pairs of {steps}-step runs, alternating; jobwatch serve in another process",
                )
            )
    return rows
