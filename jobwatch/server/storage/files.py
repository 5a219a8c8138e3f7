"""The SQLite database file: where it lives by default, and readable by its owner only,
in a directory others cannot write.

The file holds every job's logs, results and errors. Created 0644 it would be
readable by every local user; in a world-writable directory (``/tmp``) any
local user could put a file or a link in its place before the server starts.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from jobwatch.errors import UnsafeDatabasePath

SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""The database file and the files SQLite keeps beside it."""


def directory_problem(path: Path) -> str | None:
    """Why ``path``'s directory (if it exists) is no place for a database, or ``None``."""
    directory = path.parent
    if directory.is_dir() and directory.stat().st_mode & stat.S_IWOTH:
        return (
            f"refusing to keep the database in {directory}: every user may write to that "
            "directory, so another user could replace the file; choose a directory of your own"
        )
    return None


def prepare_sqlite_file(path: Path) -> None:
    """Make ``path``'s directory (mode 0700 when new) and the file (mode 0600), or
    tighten an existing file and its ``-wal``/``-shm`` companions to 0600.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's
    mode, so they follow.

    Raises
    ------
    UnsafeDatabasePath
        The directory is writable by every user (``/tmp``, say).
    OSError
        The directory or file cannot be created.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = directory_problem(path)
    if problem:
        raise UnsafeDatabasePath(problem)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in SQLITE_SUFFIXES:
        companion = Path(f"{path}{suffix}")
        if companion.exists() and companion.stat().st_mode & 0o077:
            companion.chmod(0o600)


def default_db_path() -> Path:
    """Where ``jobwatch serve`` keeps its SQLite file by default (the user data directory)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("jobwatch")) / "jobwatch.db"


def sqlite_file_problem(
    database: str, *, must_exist: bool, make_folder: bool = False, name: str = "--db"
) -> str | None:
    """Why ``database`` cannot be used as a SQLite file, or ``None`` (``:memory:`` and
    URLs other than ``sqlite:///PATH`` pass).

    Parameters
    ----------
    database:
        The ``--db`` value: a path, ``sqlite:///PATH``, ``:memory:`` or a URL.
    must_exist:
        Whether a missing file is a problem (``prune``) or is created (``serve``).
    make_folder:
        Whether a missing folder may be made (the default location, which
        nobody typed); a folder someone named must exist, as a typo in it
        would otherwise make folders where nobody looks.
    name:
        How the sentence names the setting: ``--db``, ``JOBWATCH_DATABASE_URL``, ``db``.

    Returns
    -------
    str or None
        One sentence naming the setting: a directory, a missing folder, a
        world-writable directory, a missing file, or a file that is not a
        SQLite database.
    """
    import sqlite3

    if database.startswith("sqlite:///"):  # SQLAlchemy's file URL: sqlite:////abs, sqlite:///rel
        file = database[len("sqlite:///") :].partition("?")[0]
        if not file:
            return None  # "sqlite:///" alone is an in-memory database
    elif database == ":memory:" or "://" in database:
        return None
    else:
        file = database
    path = Path(file).expanduser()
    if path.is_dir():
        return f"{name} {database} is a directory; give a file path"
    folder = path.absolute().parent
    if not make_folder and not folder.is_dir():
        return f"{name} {database}: the folder {folder} does not exist (create it first)"
    unsafe = directory_problem(path.resolve())
    if unsafe:
        return unsafe
    if not path.exists():
        return f"{name} {database} does not exist" if must_exist else None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            conn.execute("PRAGMA schema_version")
    except sqlite3.DatabaseError as exc:
        return f"{name} {database} is not a SQLite database ({exc})"
    return None
