"""LogFilter: which lines of a distributed job a log view shows; rank and node as typed."""

from __future__ import annotations

import pytest

from jobwatch.view.log_filter import LogFilter, filter_problem, parse_filter, parse_node, parse_rank

LINES = [
    {"id": 1, "level": "info", "message": "a", "rank": 0, "node": "n1"},
    {"id": 2, "level": "info", "message": "b", "rank": 1, "node": "n1"},
    {"id": 3, "level": "info", "message": "c", "rank": 2, "node": "n2"},
    {"id": 4, "level": "info", "message": "one worker's line"},
]


@pytest.mark.parametrize(
    ("shown", "ids", "words"),
    [
        (LogFilter(), [1, 2, 3, 4], "all ranks"),
        (LogFilter(rank=1), [2], "rank 1"),
        (LogFilter(node="n1"), [1, 2], "node n1"),
        (LogFilter(rank=2, node="n2"), [3], "rank 2 on node n2"),
        (LogFilter(rank=2, node="n1"), [], "rank 2 on node n1"),
    ],
)
def test_a_filter_keeps_the_lines_of_its_rank_and_node(
    shown: LogFilter, ids: list[int], words: str
) -> None:
    assert [line["id"] for line in LINES if shown.matches(line)] == ids
    assert shown.describe() == words
    assert shown.active == (ids != [1, 2, 3, 4])
    assert shown.params() == {"rank": shown.rank, "node": shown.node}


def test_rank_zero_is_a_rank_not_all_ranks() -> None:
    assert LogFilter(rank=0).active and [
        line["id"] for line in LINES if LogFilter(rank=0).matches(line)
    ] == [1]


@pytest.mark.parametrize("text", ["0", "7", " 12 ", "65535"])
def test_ranks_as_typed(text: str) -> None:
    assert parse_rank(text) == int(text)


@pytest.mark.parametrize("text", ["-1", "", "x", "1.5", "65536", "٣", "1e3"])
def test_a_bad_rank_says_what_a_rank_is(text: str) -> None:
    with pytest.raises(ValueError, match="a rank is a whole number from 0 to 65535"):
        parse_rank(text)


def test_nodes_as_typed() -> None:
    assert parse_node("gpu-node-2") == "gpu-node-2"
    for bad in ("", "   ", "a\x00b", "n" * 1025):
        with pytest.raises(ValueError, match="a node is the name of a machine"):
            parse_node(bad)


@pytest.mark.parametrize(
    ("text", "rank", "node"),
    [
        ("", None, None),
        ("all", None, None),
        ("3", 3, None),
        ("rank=0", 0, None),
        ("node=gpu-2", None, "gpu-2"),
        (" rank=2  node=gpu-1 ", 2, "gpu-1"),
    ],
)
def test_a_filter_as_typed_in_one_line(text: str, rank: int | None, node: str | None) -> None:
    assert parse_filter(text) == LogFilter(rank, node)


@pytest.mark.parametrize("text", ["rank=", "rank=-1", "host=a", "rank=1 rank=2", "all rank=1"])
def test_a_line_that_is_no_filter_says_what_is_understood(text: str) -> None:
    with pytest.raises(ValueError, match="rank"):
        parse_filter(text)


def test_a_filter_that_can_show_nothing_says_why() -> None:
    ddp = {"id": "ddp", "worldSize": 4, "workerId": "n0/0"}
    assert filter_problem(ddp, LogFilter(rank=3, node="anything")) is None
    assert filter_problem(ddp, LogFilter(rank=4)) == (
        "job 'ddp' has 4 ranks (0 to 3): there is no rank 4"
    )
    single = {"id": "one", "worldSize": None, "workerId": "w"}
    assert "is not a distributed job" in (filter_problem(single, LogFilter(node="n")) or "")
    assert filter_problem(single, LogFilter()) is None
    unbound = {"id": "new", "worldSize": None, "workerId": None}  # its ranks may come yet
    assert filter_problem(unbound, LogFilter(rank=7)) is None
