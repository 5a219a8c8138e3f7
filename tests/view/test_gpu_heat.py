"""GpuHeat: each GPU's newest utilization, grouped by node, as samples arrive."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch.contract.basics import format_ts
from jobwatch.view.gpu_heat import GPU_WINDOW, GpuHeat, node_order
from jobwatch.view.state import MonitorState

T0 = 1_800_000_000.0


def sample(
    t: float, node: str, utils: list[float | None], name: str | None = "H100"
) -> dict[str, Any]:
    return {
        "timestamp": format_ts(T0 + t),
        "gpuUtilization": None,
        "gpus": [
            {"index": i, "uuid": f"GPU-{node}-{i}", "name": name, "gpuUtilization": u, "node": node}
            for i, u in enumerate(utils)
        ],
    }


def shown(heat: GpuHeat, state: MonitorState) -> list[tuple[str, list[tuple[str, float | None]]]]:
    return [(n.node, [(c.label, c.utilization) for c in n.gpus]) for n in heat.nodes(state)]


def state_of(*rows: dict[str, Any]) -> MonitorState:
    state = MonitorState(clock=lambda: T0 + 1000)
    state.replace_samples(rows)
    return state


def test_each_gpu_shows_its_newest_value_grouped_by_node_in_numeric_order() -> None:
    state = state_of(
        sample(0, "n10", [1.0, 2.0]),
        sample(1, "n2", [3.0, None]),
        sample(2, "n10", [5.0, 6.0]),
    )
    assert shown(GpuHeat(), state) == [
        ("n2", [("GPU 0 (H100)", 3.0), ("GPU 1 (H100)", None)]),
        ("n10", [("GPU 0 (H100)", 5.0), ("GPU 1 (H100)", 6.0)]),
    ]


def test_a_node_quiet_for_longer_than_the_window_drops_out() -> None:
    state = state_of(sample(0, "n1", [10.0]), sample(GPU_WINDOW + 1, "n2", [20.0], name=None))
    assert shown(GpuHeat(), state) == [("n2", [("GPU 0", 20.0)])]


def test_a_job_of_one_worker_has_one_group_without_a_name() -> None:
    row = sample(0, "x", [50.0])
    for gpu in row["gpus"]:
        del gpu["node"]
    assert shown(GpuHeat(), state_of(row)) == [("", [("GPU 0 (H100)", 50.0)])]


def test_nodes_sort_by_their_numbers() -> None:
    names = ["node-10", "node-9", "a", "node-100", "B"]
    assert sorted(names, key=node_order) == ["a", "B", "node-9", "node-10", "node-100"]


rows = st.lists(
    st.tuples(
        st.floats(0, 5),  # seconds after the previous sample
        st.sampled_from(["n1", "n2", "n3"]),
        st.lists(st.one_of(st.none(), st.floats(0, 100)), min_size=1, max_size=3),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(rows, min_size=1, max_size=5), replace_at=st.integers(0, 5))
def test_following_the_samples_gives_what_reading_them_all_gives(
    batches: list[list[tuple[float, str, list[float | None]]]], replace_at: int
) -> None:
    """Samples arrive in batches (some of them replacing the history); each time, the
    heat that followed them equals the heat of a fresh reader of the same state."""
    state = MonitorState(clock=lambda: T0 + 1000)
    follower = GpuHeat()
    t = 0.0
    for index, batch in enumerate(batches):
        wire = []
        for gap, node, utils in batch:
            t += gap
            wire.append(sample(t, node, utils))
        if index == replace_at:
            state.replace_samples(wire)
        else:
            for row in wire:
                state._add_sample(row)
                state.samples_version += 1
        assert shown(follower, state) == shown(GpuHeat(), state)
