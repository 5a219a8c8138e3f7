"""The XGBoost and LightGBM callbacks in real training (scikit-learn's bundled
breast-cancer data, CPU) against a real server: progress, operation, metrics,
completion, early stopping included."""

from __future__ import annotations

from typing import Any

import lightgbm
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from jobwatch.client.rest import Client
from jobwatch.integrations import lightgbm as jw_lightgbm
from jobwatch.integrations import xgboost as jw_xgboost
from jobwatch.server import EmbeddedServer

pytestmark = pytest.mark.frameworks

OPTIONS: dict[str, Any] = {"gpu": False, "interval": 0.05}


def split() -> tuple[Any, Any, Any, Any]:
    x, y = load_breast_cancer(return_X_y=True)
    return train_test_split(x, y, random_state=0)  # type: ignore[no-any-return]


def probe_xgboost(callback: Any, url: str, at: int) -> Any:
    class Probe(xgboost.callback.TrainingCallback):  # type: ignore[misc]
        seen: list[tuple[float, str]] = []

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch + 1 == at:
                assert callback.reporter.flush(5)
                job = Client(url).get_job(callback.reporter.job_id)
                self.seen.append((job["progress"], job["currentOperation"]))
            return False

    return Probe()


def test_xgboost_train_reads_its_rounds(server: EmbeddedServer) -> None:
    x_train, x_valid, y_train, y_valid = split()
    train = xgboost.DMatrix(x_train, label=y_train)
    valid = xgboost.DMatrix(x_valid, label=y_valid)
    callback = jw_xgboost.JobwatchCallback("xgb-train", url=server.url, **OPTIONS)
    probe = probe_xgboost(callback, server.url, 5)
    xgboost.train(
        {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 2},
        train, num_boost_round=20, evals=[(train, "train"), (valid, "eval")],
        verbose_eval=False, callbacks=[callback, probe],
    )  # fmt: skip
    assert probe.seen == [(25.0, "round 5/20")]
    client = Client(server.url)
    job = client.get_job("xgb-train")
    assert (job["status"], job["progress"]) == ("completed", 100)
    scalars = client.scalars("xgb-train")
    assert set(scalars) == {"train/logloss", "train/auc", "eval/logloss", "eval/auc"}
    assert [p["step"] for p in scalars["eval/logloss"]] == list(range(1, 21))
    assert job["result"]["eval/logloss"] == scalars["eval/logloss"][-1]["value"]


def test_xgboost_estimator_stopping_early_completes_at_100(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_JOB", "xgb-early")
    x_train, x_valid, y_train, y_valid = split()
    callback = jw_xgboost.JobwatchCallback(**OPTIONS)
    probe = probe_xgboost(callback, server.url, 10)
    model = xgboost.XGBClassifier(
        n_estimators=1000, learning_rate=0.5, early_stopping_rounds=5, callbacks=[callback, probe]
    )
    model.fit(x_train, y_train, eval_set=[(x_valid, y_valid)], verbose=False)
    assert probe.seen == [(1.0, "round 10/1000")]  # n_estimators is the count of rounds
    job = Client(server.url).get_job("xgb-early")
    rounds = model.get_booster().num_boosted_rounds()
    assert rounds < 1000  # it stopped early
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert job["currentOperation"] == f"round {rounds}/1000"
    assert job["result"]["best_iteration"] == model.best_iteration
    assert set(Client(server.url).scalars("xgb-early")) == {"validation_0/logloss"}


def test_lightgbm_train_completes_after_its_last_round(server: EmbeddedServer) -> None:
    x_train, x_valid, y_train, y_valid = split()
    train = lightgbm.Dataset(x_train, label=y_train)
    valid = lightgbm.Dataset(x_valid, label=y_valid, reference=train)
    callback = jw_lightgbm.jobwatch_callback("lgb-train", url=server.url, **OPTIONS)
    lightgbm.train(
        {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_leaves": 4},
        train, num_boost_round=20, valid_sets=[valid], callbacks=[callback],
    )  # fmt: skip
    client = Client(server.url)
    job = client.get_job("lgb-train")
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert job["currentOperation"] == "round 20/20"
    scalars = client.scalars("lgb-train")
    assert [p["step"] for p in scalars["valid_0/binary_logloss"]] == list(range(1, 21))


def test_lightgbm_early_stopping_completes_at_the_end_of_with(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_JOB", "lgb-early")
    x_train, x_valid, y_train, y_valid = split()
    model = lightgbm.LGBMClassifier(n_estimators=1000, learning_rate=0.5, verbose=-1)
    with jw_lightgbm.jobwatch_callback(**OPTIONS) as callback:
        model.fit(
            x_train, y_train, eval_set=[(x_valid, y_valid)],
            callbacks=[lightgbm.early_stopping(5, verbose=False), callback],
        )  # fmt: skip
        assert callback.reporter is not None and callback.reporter.flush(5)
        job = Client(server.url).get_job("lgb-early")
        assert job["status"] == "running"  # LightGBM said nothing of stopping
    rounds = model.best_iteration_ + 5  # the best round, then 5 without progress
    assert rounds < 1000
    job = Client(server.url).get_job("lgb-early")
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert job["currentOperation"] == f"round {rounds}/1000"
    steps = [p["step"] for p in Client(server.url).scalars("lgb-early")["valid_0/binary_logloss"]]
    assert steps == list(range(1, rounds + 1))


def test_lightgbm_failure_in_with_fails_the_job(server: EmbeddedServer) -> None:
    x_train, _, y_train, _ = split()

    def crash(env: Any) -> None:
        if env.iteration == 3:
            raise RuntimeError("out of memory")

    with (
        pytest.raises(RuntimeError, match="out of memory"),
        jw_lightgbm.jobwatch_callback("lgb-crash", url=server.url, **OPTIONS) as callback,
    ):
        lightgbm.train(
            {"objective": "binary", "verbose": -1}, lightgbm.Dataset(x_train, label=y_train),
            num_boost_round=10, callbacks=[callback, crash],
        )  # fmt: skip
    job = Client(server.url).get_job("lgb-crash")
    assert (job["status"], job["error"]) == ("failed", "RuntimeError: out of memory")
