"""The SQLite database file: 0600, in a directory other users cannot write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import jobwatch.cli.commands as cli
from jobwatch.errors import UnsafeDatabasePath
from jobwatch.server.storage.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new" / "jobwatch.db"
    store = Store(str(db))
    try:
        with store.read() as conn:  # WAL files appear with the first connection
            conn.exec_driver_sql("SELECT 1")
    finally:
        store.close()
    assert _mode(db.parent) == 0o700
    for path in tmp_path.glob("new/jobwatch.db*"):
        assert _mode(path) == 0o600, path


def test_an_existing_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Store(str(db)).close()
    db.chmod(0o644)
    Store(str(db)).close()
    assert _mode(db) == 0o600


def test_a_world_writable_directory_is_refused(tmp_path: Path, capsys) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    with pytest.raises(UnsafeDatabasePath, match="every user may write"):
        Store(str(shared / "jobwatch.db"))
    assert not (shared / "jobwatch.db").exists()
    assert cli.main(["prune", "--days", "1", "--db", str(shared / "x.db")]) == cli.EXIT_USAGE
    assert cli.main(["serve", "--db", str(shared / "x.db")]) == cli.EXIT_USAGE
    assert "every user may write" in capsys.readouterr().err
