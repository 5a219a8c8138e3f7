"""Numbers that people, queries and variables type are read in ASCII digits only.

Python's ``int()``/``float()``, regex ``\\d`` and ``str.isdigit`` also take other
scripts' digits: U+FF17 (a full-width 7) then d was read as seven days, CUDA_VISIBLE_DEVICES=U+FF17
as GPU 7, ``"²"`` crashed ``int()`` after passing ``isdigit``. Each parser below is
given such text and must refuse it the way it refuses any non-number.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest

from jobwatch.cli import commands, tenancy
from jobwatch.contract.basics import ascii_float, ascii_int
from jobwatch.contract.costs import CostsQuery, parse_tz
from jobwatch.errors import ValidationError
from jobwatch.report import cuda_visible, env_defaults, launcher
from jobwatch.server.core.alerts.alert_rules import parse_rule
from jobwatch.server.deploy.settings import SETTINGS, SettingsError

SEVEN = "\uff17"  # FULLWIDTH DIGIT SEVEN: int() reads 7
THREE = "\u0663"  # ARABIC-INDIC DIGIT THREE: int() reads 3
SQUARED = "\u00b2"  # SUPERSCRIPT TWO: isdigit() is True, int() raises


def _setting(kind: type) -> Any:
    return next(s for s in SETTINGS if s.kind is kind and not s.many)


GPUS = [cuda_visible.Device(index=i, uuid=f"GPU-{i}") for i in range(8)]

# (what, parse, text, the exception it must raise)
REFUSING: list[tuple[str, Callable[[str], object], str, type[Exception]]] = [
    ("ascii_int", ascii_int, SEVEN, ValueError),
    ("ascii_float", ascii_float, f"{THREE}.5", ValueError),
    ("costs since", lambda t: CostsQuery(since=t), f"{SEVEN}d", ValueError),
    ("costs tz offset", parse_tz, f"+0{SEVEN}:00", ValueError),
    ("tokens --expires", tenancy._duration, f"{SEVEN}d", argparse.ArgumentTypeError),
    ("tenants --max-jobs", tenancy._count, SEVEN, argparse.ArgumentTypeError),
    ("serve --port", commands._port, f"80{SEVEN}0", argparse.ArgumentTypeError),
    ("report --progress", commands._percent, SEVEN, argparse.ArgumentTypeError),
    ("list --limit", commands._count, SEVEN, argparse.ArgumentTypeError),
    ("prune --days", commands._days, SEVEN, argparse.ArgumentTypeError),
    ("logs --rank", commands._rank, SEVEN, argparse.ArgumentTypeError),
    ("a whole-number setting", lambda t: _setting(int).parse(t, "x"), SEVEN, SettingsError),
    ("a number setting", lambda t: _setting(float).parse(t, "x"), SEVEN, SettingsError),
    (
        "$JOBWATCH_PRICE_PER_HOUR",
        lambda t: env_defaults.price_from_env({env_defaults.PRICE_VARIABLE: t}),
        SEVEN,
        ValueError,
    ),
    ("alert rule threshold", parse_rule, f"gpuTemperature>{SEVEN}0 for 60s", ValidationError),
    ("alert rule duration", parse_rule, f"gpuTemperature>70 for {SEVEN}s", ValidationError),
]


@pytest.mark.parametrize(
    ("parse", "text", "error"),
    [pytest.param(p, t, e, id=w) for w, p, t, e in REFUSING],
)
def test_a_number_in_another_scripts_digits_is_refused(
    parse: Callable[[str], object], text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        parse(text)


@pytest.mark.parametrize("digit", [SEVEN, THREE])
def test_launcher_variables_in_other_digits_are_not_ranks(digit: str) -> None:
    env = {"RANK": digit, "WORLD_SIZE": "8", "LOCAL_RANK": digit, "LOCAL_WORLD_SIZE": "8"}
    assert launcher.detect(env).rank is None
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": digit}
    assert launcher.detect(env).local_world_size is None


@pytest.mark.parametrize("entry", [SEVEN, SQUARED, THREE])
def test_cuda_visible_devices_in_other_digits_names_no_gpu(entry: str) -> None:
    assert cuda_visible.visible(GPUS, entry, None).positions == []
    assert cuda_visible.visible(GPUS, "7", None).positions == [7]


def test_ascii_numbers_still_read() -> None:
    assert (ascii_int("42"), ascii_float("2.5"), tenancy._duration("7d")) == (42, 2.5, 7 * 86400)
    assert CostsQuery(since="7d").since == "7d"
    assert parse_rule("gpuTemperature>85 for 60s").duration == 60
