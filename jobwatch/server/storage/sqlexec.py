"""Prebuilt SQLAlchemy Core statements run straight on the DBAPI cursor.

Every progress update runs a handful of statements in the writer thread.
Through SQLAlchemy's execution layer each costs several times the driver's
own work (measured: ~45 us against ~10 us on SQLite), which halved ingest.
Here SQLAlchemy still builds and compiles each statement, once per dialect
and parameter set, and the driver runs it inside the same connection and
transaction. JSON columns are Text, encoded by the caller (see schema).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """One Core statement, compiled lazily per (dialect, parameter names).

    Parameters
    ----------
    statement:
        An ``insert()``, ``update()`` or ``select()`` whose values come from
        the parameters at execution time.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}

    def _compile(self, conn: Connection, keys: frozenset[str]) -> _Compiled:
        cache_key = (conn.dialect.name, keys)
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            fresh = self.statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
            assert isinstance(fresh, SQLCompiler)
            self._compiled[cache_key] = compiled = _Compiled(fresh, keys)
        return compiled

    def execute(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Run with ``params`` on ``conn``'s DBAPI connection; return the DBAPI cursor."""
        compiled = self._compile(conn, frozenset(params))
        cursor = conn.connection.cursor()
        cursor.execute(compiled.string, compiled.args(params))
        return cursor

    def execute_many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Run once per row (all with the same keys) through the driver's ``executemany``."""
        if not rows:
            return
        compiled = self._compile(conn, frozenset(rows[0]))
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(compiled.string, [compiled.args(row) for row in rows])
        finally:
            cursor.close()

    def first(self, conn: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
        """Run a SELECT and return its first row as a dict keyed by column name, or ``None``."""
        cursor = self.execute(conn, params)
        row = cursor.fetchone()
        names = [d[0] for d in cursor.description]
        cursor.close()
        return None if row is None else dict(zip(names, row, strict=True))

    def scalar(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Run a statement with RETURNING one column and return that value."""
        cursor = self.execute(conn, params)
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else row[0]


class _Compiled:
    """A compiled statement and how to turn a parameter dict into the driver's
    arguments.

    Where the statement is positional, binds every value by its plain name and
    each bind is one of ``keys`` (the names it was compiled for), the
    arguments are read straight from the dict in bind order: what
    ``SQLCompiler.construct_params`` returns for such a statement, at under a
    third of its cost (measured: 4 us against 14 us for the 35 columns of a
    job row). Anything else goes through ``construct_params``.
    """

    def __init__(self, compiled: SQLCompiler, keys: frozenset[str]) -> None:
        self.string = compiled.string
        self._compiled = compiled
        names = list(compiled.positiontup or ())
        plain = compiled.positional and not compiled.escaped_bind_names and set(names) <= keys
        self._names = names if plain else None

    def args(self, params: dict[str, Any]) -> Any:
        """``params`` as the driver takes them: a list (positional styles) or a dict."""
        if self._names is not None:
            return [params[name] for name in self._names]
        bound: Any = self._compiled.construct_params(params)
        if self._compiled.positional:
            return [bound[name] for name in self._compiled.positiontup or ()]
        return bound
