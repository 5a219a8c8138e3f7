"""Where the tests find the repository's files, wherever a test module sits."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
"""The ``tests/`` folder: shared helpers and data (``fake_nvml.py``, ``slow_disk/``, ``seed_clients/``)."""

REPO = TESTS.parent
"""The repository's root (``pyproject.toml``, ``docs/``, ``server/``, ``jobwatch/``)."""
