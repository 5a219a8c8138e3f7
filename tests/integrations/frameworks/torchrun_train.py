"""The training script of ``test_torchrun.py``: DDP on gloo, one Reporter line, no rank argument.

Started by ``python -m torch.distributed.run`` on each "node". Each node has
two fake GPUs (the fake NVML module stands in for ``pynvml``) whose name says
which rank sampled them, so the test sees that only a node's local rank 0
samples. Phase 1 trains a tiny model with DDP (gradients all-reduced across
both nodes); phase 2 goes on reporting without collectives until the test
writes ``stop`` into the run folder, so that the test can kill one rank and
watch the others carry on.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tests.fake_nvml import GIB, FakeGpu, FakeNvml

RUN = Path(os.environ["JOBWATCH_TEST_RUN"])
STEPS = 20
PHASE_2_LIMIT = 120.0  # seconds: the script ends by itself if the test never says stop


def main() -> None:
    rank = int(os.environ["RANK"])
    node = os.uname().nodename
    sys.modules["pynvml"] = FakeNvml(
        [
            FakeGpu(
                f"GPU-{node}-{i}",
                name=f"sampled-by-rank-{rank}",
                memory_total=16 * GIB,
                utilization=40 + 20 * i,
            )
            for i in range(2)
        ]
    )
    from jobwatch import Reporter

    dist.init_process_group("gloo")
    (RUN / f"pid-{rank}").write_text(str(os.getpid()))
    with Reporter(
        os.environ["JOBWATCH_JOB"], url=os.environ["JOBWATCH_URL"], interval=0.2
    ) as report:
        report.log(f"rank {rank} joined on {node}")
        torch.manual_seed(0)
        model = DistributedDataParallel(torch.nn.Linear(8, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for step in range(STEPS):
            x = torch.randn(16, 8)
            loss = model(x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()  # all-reduce across the 4 ranks
            optimizer.step()
            report.update(50.0 * (step + 1) / STEPS, f"rank {rank} step {step + 1}/{STEPS}")
            report.log_metrics({"loss": float(loss)}, step=step)
        dist.barrier()
        report.flush(timeout=30)  # "trained" says the steps reached the server too
        (RUN / f"trained-{rank}").write_text("")
        start = time.monotonic()
        progress = 50.0
        while not (RUN / "stop").exists() and time.monotonic() - start < PHASE_2_LIMIT:
            progress = min(99.0, progress + 0.1)
            report.update(progress, f"rank {rank} evaluating")
            time.sleep(0.1)
    # no destroy_process_group: a peer may have been killed, and gloo would wait for it
    os._exit(0)


if __name__ == "__main__":
    main()
