"""JobwatchCallback in a real Hugging Face ``Trainer`` (a tiny BERT with random
weights, CPU, synthetic data, nothing downloaded) against a real server:
progress, operation, metrics, configuration, completion, as stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from jobwatch.client.rest import Client
from jobwatch.integrations.transformers import JobwatchCallback
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port

pytestmark = pytest.mark.frameworks

SAMPLES, BATCH, EPOCHS = 64, 8, 2  # 8 steps per epoch, 16 in all


class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """Sequences of 8 token ids; the label is whether token 1 occurs more than token 2."""

    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 5, (count, 8), generator=generator)
        self.labels = ((self.ids == 1).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert() -> Any:
    transformers.set_seed(0)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        vocab_size=100, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def arguments(tmp_path: Path, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "num_train_epochs": EPOCHS,
        "per_device_train_batch_size": BATCH,
        "per_device_eval_batch_size": BATCH,
        "learning_rate": 1e-3,
        "logging_steps": 4,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "run_name": "tiny-bert",
        **overrides,
    }
    return transformers.TrainingArguments(**options)


class Probe(transformers.TrainerCallback):  # type: ignore[misc]
    """Reads the job from the server after chosen optimizer steps (after the
    jobwatch callback, which comes first)."""

    def __init__(self, callback: JobwatchCallback, url: str, steps: set[int]) -> None:
        self.callback, self.client, self.steps = callback, Client(url), steps
        self.seen: list[tuple[int, float, str]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step in self.steps:
            reporter = self.callback.reporter
            assert reporter is not None and reporter.flush(5)
            job = self.client.get_job(reporter.job_id)
            self.seen.append((state.global_step, job["progress"], job["currentOperation"]))


def test_trainer_reports_progress_metrics_config_and_completion(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "JOBWATCH_URL": server.url,
        "JOBWATCH_JOB": "hf-bert",
        "JOBWATCH_JOB_NAME": "BERT, tiny",
        "JOBWATCH_PRICE_PER_HOUR": "2.5",
        "JOBWATCH_CURRENCY": "EUR",
    }.items():
        monkeypatch.setenv(name, value)
    callback = JobwatchCallback(gpu=False, interval=0.05)
    probe = Probe(callback, server.url, {4, 12})
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=arguments(tmp_path),
        train_dataset=Tokens(SAMPLES, 0),
        eval_dataset=Tokens(16, 1),
        callbacks=[callback, probe],
    )
    output = trainer.train()

    assert probe.seen == [(4, 25.0, "epoch 1/2, step 4/16"), (12, 75.0, "epoch 2/2, step 12/16")]
    client = Client(server.url)
    job = client.get_job("hf-bert")
    assert job["status"] == "completed"
    assert job["progress"] == 100
    assert (job["name"], job["pricePerHour"], job["currency"]) == ("BERT, tiny", 2.5, "EUR")
    assert job["result"]["train_loss"] == pytest.approx(output.training_loss)
    assert set(job["result"]) >= {"train_runtime", "train_samples_per_second"}
    scalars = client.scalars("hf-bert")
    assert [p["step"] for p in scalars["loss"]] == [4, 8, 12, 16]
    assert [p["step"] for p in scalars["eval_loss"]] == [8, 16]
    history = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert [p["value"] for p in scalars["loss"]] == pytest.approx(history)
    assert {"learning_rate", "grad_norm", "epoch"} <= set(scalars)
    config = job["config"]
    assert config["learning_rate"] == 1e-3
    assert config["num_train_epochs"] == EPOCHS


def test_the_class_itself_is_a_callback_configured_by_the_environment(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``callbacks=[JobwatchCallback]``, as ``report_to`` would register it: no
    arguments, a new job id each run, the run name as the job's name."""
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.delenv("JOBWATCH_JOB", raising=False)
    monkeypatch.delenv("JOBWATCH_JOB_NAME", raising=False)
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=arguments(tmp_path, num_train_epochs=1, eval_strategy="no"),
        train_dataset=Tokens(16, 0),
        callbacks=[JobwatchCallback],
    )
    trainer.train()
    jobs = [j for j in Client(server.url).list_jobs()["jobs"] if j["name"] == "tiny-bert"]
    assert len(jobs) == 1
    assert jobs[0]["id"].startswith("transformers-")
    assert jobs[0]["status"] == "completed"


def test_a_missing_server_never_stops_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens on it
    monkeypatch.setenv("JOBWATCH_URL", f"http://127.0.0.1:{port}")
    callback = JobwatchCallback("hf-nowhere", complete=False, gpu=False, timeout=0.5)
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=arguments(tmp_path, num_train_epochs=1, eval_strategy="no"),
        train_dataset=Tokens(16, 0),
        callbacks=[callback],
    )
    assert trainer.train().global_step == 2
    assert callback.reporter is not None
    assert not callback.reporter.close(timeout=0.5)  # nothing could be delivered


def test_other_ranks_make_no_job(server: EmbeddedServer, tmp_path: Path) -> None:
    callback = JobwatchCallback("hf-rank1", url=server.url, gpu=False)
    state = transformers.TrainerState(is_world_process_zero=False, max_steps=10)
    control = transformers.TrainerControl()
    args = arguments(tmp_path)
    callback.on_train_begin(args, state, control)
    callback.on_step_end(args, state, control)
    callback.on_log(args, state, control, logs={"loss": 1.0})
    callback.on_train_end(args, state, control)
    assert callback.reporter is None


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"JOBWATCH_PRICE_PER_HOUR": "cheap"}, (), r"\$JOBWATCH_PRICE_PER_HOUR must be"),
        ({"JOBWATCH_PRICE_PER_HOUR": "-1"}, (), r"\$JOBWATCH_PRICE_PER_HOUR must be"),
        ({"JOBWATCH_JOB": "bad id!"}, (), r"job id \(\$JOBWATCH_JOB\) must be"),
        ({}, ("bad id!",), "job id must be"),
        ({}, (7,), "reporter must be a Reporter, a job id or None"),
    ],
)
def test_bad_settings_raise_before_training(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: tuple[Any, ...], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        JobwatchCallback(*args)
