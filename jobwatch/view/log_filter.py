"""Which log lines of a distributed job a viewer shows: one rank, one node, or both.

A distributed job's log lines carry the ``rank`` and ``node`` that wrote them
(docs/api.md "Distributed jobs"). Every log view (the notebook's, the job
page's, ``jobwatch watch`` and the watches ``jobwatch top`` opens) filters them
the same way: the server's ``GET /logs?rank=&node=`` gives the history, and a
:class:`LogFilter` keeps the live lines of the stream that match (the stream
itself carries every line). No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobwatch.contract.basics import MAX_TEXT, MAX_WORLD_SIZE

__all__ = ["LogFilter", "filter_problem", "parse_filter", "parse_node", "parse_rank"]


@dataclass(frozen=True)
class LogFilter:
    """Log lines of one rank and/or one node; ``None`` for either means any.

    Parameters
    ----------
    rank:
        The global rank (0 to ``worldSize`` - 1) whose lines are shown.
    node:
        The node (machine) whose lines are shown, as the workers name it.
    """

    rank: int | None = None
    node: str | None = None

    @property
    def active(self) -> bool:
        """Whether some lines are left out (a rank or a node is set)."""
        return self.rank is not None or self.node is not None

    def matches(self, line: Mapping[str, Any]) -> bool:
        """Whether the wire log line ``line`` is shown. With a filter set, a line
        without a rank or node (a job of one worker) is not."""
        if self.rank is not None and line.get("rank") != self.rank:
            return False
        return self.node is None or line.get("node") == self.node

    def params(self) -> dict[str, Any]:
        """The query parameters of ``GET /logs`` that give the same lines."""
        return {"rank": self.rank, "node": self.node}

    def describe(self) -> str:
        """``"rank 3 on node n1"``, ``"rank 3"``, ``"node n1"``, or ``"all ranks"``."""
        if self.rank is not None and self.node is not None:
            return f"rank {self.rank} on node {self.node}"
        if self.rank is not None:
            return f"rank {self.rank}"
        if self.node is not None:
            return f"node {self.node}"
        return "all ranks"


def parse_rank(text: str) -> int:
    """A rank as a person types it: a whole number from 0 to 65,535.

    Raises
    ------
    ValueError
        With a sentence saying what a rank is, for anything else.
    """
    value = text.strip()
    if not value.isdigit() or not value.isascii() or int(value) >= MAX_WORLD_SIZE:
        raise ValueError(
            f"a rank is a whole number from 0 to {MAX_WORLD_SIZE - 1} "
            f"(a process's global rank, RANK under torchrun), got {text!r}"
        )
    return int(value)


def parse_node(text: str) -> str:
    """A node name as a person types it: 1-1024 characters, not only spaces, no NUL.

    Raises
    ------
    ValueError
        For an empty or blank name, a NUL, or a name over 1024 characters.
    """
    if not text.strip() or "\x00" in text or len(text) > MAX_TEXT:
        raise ValueError(
            f"a node is the name of a machine of the job as its workers report it "
            f"(1-{MAX_TEXT} characters, by default its hostname), got {text!r}"
        )
    return text


def parse_filter(text: str) -> LogFilter:
    """A filter as typed in one line: ``rank=N`` and/or ``node=NAME`` (a bare number is
    a rank); empty or ``all`` for every line.

    Raises
    ------
    ValueError
        For anything else, saying what is understood.
    """
    rank: int | None = None
    node: str | None = None
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals and key.isdigit():
            key, value = "rank", key
        elif not equals and key.lower() == "all" and len(text.split()) == 1:
            return LogFilter()
        if key == "rank" and rank is None:
            rank = parse_rank(value)
        elif key == "node" and node is None:
            node = parse_node(value)
        else:
            raise ValueError(
                "say rank=N and/or node=NAME (e.g. 'rank=0 node=gpu-2'), or nothing for "
                f"every line; got {text!r}"
            )
    return LogFilter(rank, node)


def filter_problem(job: Mapping[str, Any], shown: LogFilter) -> str | None:
    """Why ``shown`` can never show a line of ``job`` (a job object), or ``None``.

    A job bound to one worker without a ``worldSize`` never becomes distributed, so
    its lines have no rank or node; a rank must be below the job's ``worldSize``. A
    node is not checked: nodes may join later.
    """
    if not shown.active:
        return None
    world_size = job.get("worldSize")
    if not isinstance(world_size, int):
        if job.get("workerId") is None:  # no one reported yet: it may still be distributed
            return None
        return (
            f"job {job.get('id')!r} is not a distributed job (one worker, no worldSize): its "
            "log lines have no rank or node; leave out the rank and the node"
        )
    if shown.rank is not None and shown.rank >= world_size:
        return (
            f"job {job.get('id')!r} has {world_size} rank{'' if world_size == 1 else 's'} "
            f"(0 to {world_size - 1}): there is no rank {shown.rank}"
        )
    return None
