"""Which rank this process is, read from the launcher's environment.

A distributed job is one process per GPU (a rank), started by a launcher that
tells each process its place in variables. :func:`detect` reads them, so that
``Reporter(job_id, url=...)`` in every rank reports as that rank without an
argument. Launchers, in the order they are tried, with their documentation:

``torchrun`` / ``python -m torch.distributed.run`` (also behind ``accelerate launch``
and DeepSpeed)
    ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``
    (the node's rank). PyTorch, "torchrun (Elastic Launch)", section
    "Environment Variables": https://pytorch.org/docs/stable/elastic/run.html
SLURM ``srun``
    ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``, ``SLURM_NODEID``,
    ``SLURM_NTASKS_PER_NODE``. SLURM, ``srun`` man page, "OUTPUT ENVIRONMENT
    VARIABLES": https://slurm.schedmd.com/srun.html
Open MPI ``mpirun``
    ``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_LOCAL_RANK``,
    ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_LOCAL_SIZE``,
    ``OMPI_COMM_WORLD_NODE_RANK``. Open MPI, ``mpirun(1)`` man page,
    "Environment Variables": https://docs.open-mpi.org/en/main/man-openmpi/man1/mpirun.1.html
MPICH / Intel MPI (PMI)
    ``PMI_RANK``, ``PMI_SIZE``, ``MPI_LOCALRANKID``, ``MPI_LOCALNRANKS``. MPICH,
    "Frequently Asked Questions", and the Hydra process manager's environment:
    https://github.com/pmodels/mpich/blob/main/doc/wiki/how_to/Using_the_Hydra_Process_Manager.md

A process with none of these is a single worker (:data:`SINGLE`), as before
launchers were read. No I/O beyond reading ``os.environ``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace

from jobwatch.contract.basics import ascii_int

__all__ = ["SINGLE", "Placement", "detect", "node_name", "placement", "samples_gpus"]


@dataclass(frozen=True)
class Placement:
    """Where one process sits in a distributed job.

    Attributes
    ----------
    rank:
        Global rank, 0 to ``world_size - 1``; ``None`` for a single process.
    world_size:
        Number of ranks in the job; ``None`` for a single process.
    local_rank:
        Rank on this node, 0 to ``local_world_size - 1``; ``None`` if unknown.
    local_world_size:
        Ranks on this node; ``None`` if unknown.
    node_rank:
        The node's index among the job's nodes; ``None`` if unknown.
    launcher:
        Which launcher's variables were read (``"torchrun"``, ``"slurm"``,
        ``"openmpi"``, ``"pmi"``), or ``None``.
    """

    rank: int | None = None
    world_size: int | None = None
    local_rank: int | None = None
    local_world_size: int | None = None
    node_rank: int | None = None
    launcher: str | None = None

    @property
    def distributed(self) -> bool:
        """Whether this process is one rank of several."""
        return self.world_size is not None

    @property
    def is_local_leader(self) -> bool:
        """Whether this process is its node's local rank 0 (or the only process)."""
        return not self.local_rank

    def worker_id(self, node: str) -> str:
        """The default ``workerId``: ``node`` alone for a single process,
        ``node/rank`` for a rank (every rank of a node is its own worker)."""
        return node if self.rank is None else f"{node}/{self.rank}"


SINGLE = Placement()
"""A process that no launcher started."""

# (launcher, rank, world size, local rank, local world size, node rank)
_LAUNCHERS = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", None, "SLURM_NODEID"),
    (
        "openmpi",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "OMPI_COMM_WORLD_NODE_RANK",
    ),
    ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", None),
)


def _int(env: Mapping[str, str], name: str | None) -> int | None:
    if name is None:
        return None
    text = env.get(name, "").strip()
    try:
        value = ascii_int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _slurm_local_size(env: Mapping[str, str]) -> int | None:
    # SLURM_NTASKS_PER_NODE is "4" or "4(x2)" or "4,2": take this node's when uniform.
    text = env.get("SLURM_NTASKS_PER_NODE", "").split(",")[0].split("(")[0]
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def detect(env: Mapping[str, str] | None = None) -> Placement:
    """This process's :class:`Placement`, from the first launcher whose rank and
    world size are both set and consistent (``0 <= rank < world_size``).

    Parameters
    ----------
    env:
        The environment to read; default ``os.environ``.

    Returns
    -------
    Placement
        :data:`SINGLE` when no launcher's variables are set, or they are not
        numbers, or a world of one process (``WORLD_SIZE=1``): one process is
        one worker, exactly as without a launcher.
    """
    env = os.environ if env is None else env
    for launcher, rank_var, size_var, local_var, local_size_var, node_var in _LAUNCHERS:
        rank, size = _int(env, rank_var), _int(env, size_var)
        if rank is None or size is None or not 0 <= rank < size:
            continue
        if size == 1:
            return SINGLE
        local_size = _int(env, local_size_var)
        if launcher == "slurm":
            local_size = _slurm_local_size(env)
        return Placement(
            rank=rank,
            world_size=size,
            local_rank=_int(env, local_var),
            local_world_size=local_size,
            node_rank=_int(env, node_var),
            launcher=launcher,
        )
    return SINGLE


def placement(
    *,
    rank: int | None = None,
    world_size: int | None = None,
    local_rank: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Placement:
    """:func:`detect`'s placement with explicit arguments taking precedence.

    Raises
    ------
    ValueError
        ``rank`` or ``world_size`` is not a non-negative int, ``world_size`` is
        below 1, or ``rank`` is not below ``world_size``.
    """
    found = detect(env)
    for name, value in (("rank", rank), ("world_size", world_size), ("local_rank", local_rank)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if world_size is not None and world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    merged = replace(
        found,
        rank=found.rank if rank is None else rank,
        world_size=found.world_size if world_size is None else world_size,
        local_rank=found.local_rank if local_rank is None else local_rank,
    )
    if (merged.rank is None) != (merged.world_size is None):
        raise ValueError(
            "give rank and world_size together (or neither, to read them from the launcher): "
            f"rank={merged.rank!r}, world_size={merged.world_size!r}"
        )
    if merged.rank is not None and merged.world_size is not None:
        if merged.rank >= merged.world_size:
            raise ValueError(f"rank {merged.rank} must be below world_size {merged.world_size}")
        if merged.world_size == 1:
            return SINGLE
    return merged


def samples_gpus(place: Placement, env: Mapping[str, str] | None = None) -> bool:
    """Whether this process samples GPUs, so that each GPU of a node is sampled once.

    A single process samples. A rank samples when it is its node's local rank 0
    (it sees the node's GPUs), or when ``CUDA_VISIBLE_DEVICES`` names exactly one
    device, as launchers that pin one GPU per rank set it: then each rank
    samples its own device.
    """
    if not place.distributed:
        return True
    env = os.environ if env is None else env
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if len(visible) == 1 and place.local_world_size != 1:
        return True
    return place.is_local_leader


def node_name() -> str:
    """This node's name: the hostname (``"worker"`` if it has none)."""
    return socket.gethostname() or "worker"
