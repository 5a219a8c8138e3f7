"""JobwatchTracker in a real Accelerate training loop (a small MLP on synthetic
data, CPU) against a real server: configuration, metrics, progress, completion."""

from __future__ import annotations

import accelerate
import pytest
import torch

from jobwatch.client.rest import Client
from jobwatch.integrations.accelerate import JobwatchTracker
from jobwatch.server import EmbeddedServer

pytestmark = pytest.mark.frameworks

EPOCHS, BATCHES = 2, 8


def test_tracker_reports_config_metrics_progress_and_completion(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    torch.manual_seed(0)
    x = torch.randn(BATCHES * 16, 4)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 1.0]) > 0).float()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    tracker = JobwatchTracker("acc-mlp", total_steps=EPOCHS * len(data), gpu=False, interval=0.05)
    accelerator = accelerate.Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("mlp", config={"lr": 0.1, "epochs": EPOCHS})
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    client = Client(server.url)
    step = 0
    seen = []
    for _ in range(EPOCHS):
        for xb, yb in data:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb).squeeze(1), yb)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            accelerator.log({"loss": loss.item(), "note": "text is left out"}, step=step)
            if step == 4:
                assert tracker.tracker is not None and tracker.tracker.flush(5)
                job = client.get_job("acc-mlp")
                seen.append((job["progress"], job["currentOperation"]))
    accelerator.end_training()

    assert seen == [(25.0, "step 4/16")]
    job = client.get_job("acc-mlp")
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert set(job["result"]) == {"loss"}
    scalars = client.scalars("acc-mlp")
    assert set(scalars) == {"loss"}
    assert [p["step"] for p in scalars["loss"]] == list(range(1, 17))
    assert job["config"] == {"epochs": EPOCHS, "lr": 0.1}


def test_bad_total_steps_raise() -> None:
    with pytest.raises(ValueError, match="total_steps must be an integer >= 1"):
        JobwatchTracker("acc-bad", total_steps=0)
