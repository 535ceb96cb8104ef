"""Hot-path statements, compiled once per database and run on the DB-API cursor of a SQLAlchemy connection.

SQLAlchemy's per-execution machinery (execution context, events, result set-up) costs several times what SQLite
itself spends on one of these small statements, and an engine call runs five or six of them. Here a statement is
compiled once per dialect (and set of columns), its values go through the same type processors SQLAlchemy would use,
and it runs on the connection's DB-API cursor, inside the transaction SQLAlchemy began: connections, transactions and
every other statement stay SQLAlchemy's. Database errors come out as SQLAlchemy's, so callers handle them as before.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import Insert, Update

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Statement:
    """A select, update or delete with bind parameters; an insert or update compiles once per set of columns given."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...] | None], _Compiled] = {}

    def run(self, conn: sa.Connection, params: Params) -> int:
        """Execute once, or once per mapping of a list (nothing for an empty list); the rows it changed."""
        many = not isinstance(params, Mapping)
        if many and not params:
            return 0
        first = params[0] if many else params  # type: ignore[index]
        compiled = self._for(conn.dialect, first)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        _announce(conn, cursor, compiled.sql, params, many)
        try:
            if many:
                cursor.executemany(compiled.sql, [compiled.values(p) for p in params])  # type: ignore[union-attr]
            else:
                cursor.execute(compiled.sql, compiled.values(first))
            return int(cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise compiled.error(exc, params) from exc
        finally:
            cursor.close()

    def all(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Any]:
        """The result rows, as named tuples whose `_mapping` is a dict, like SQLAlchemy's rows.

        Outside a transaction on SQLite the statement is its own: a caller that reads twice checks they agree.
        """
        compiled = self._for(conn.dialect, params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        _announce(conn, cursor, compiled.sql, params, False)
        try:
            cursor.execute(compiled.sql, compiled.values(params))
            fetched = cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise compiled.error(exc, params) from exc
        finally:
            cursor.close()
        return [compiled.row(r) for r in fetched]

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> Any | None:
        found = self.all(conn, params)
        return found[0] if found else None

    def _for(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> _Compiled:
        columns = tuple(params) if isinstance(self.statement, Insert | Update) else None
        key = (dialect.name, columns)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(self.statement, dialect, columns)
        return compiled


class _Compiled:
    def __init__(self, statement: sa.Executable, dialect: sa.Dialect, columns: tuple[str, ...] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns is not None else None,
                                     for_executemany=True)
        self.sql = compiled.string
        self.dialect = dialect
        processors = compiled._bind_processors
        names = list(compiled.positiontup or []) if dialect.positional else list(compiled.binds)
        if any(compiled.binds[n].expanding for n in names):
            raise ValueError("expanding parameters are not supported on the hot path")
        self.names = names
        self.escaped = [compiled.escaped_bind_names.get(n, n) for n in names]
        self.processing = [(i, processors[n]) for i, n in enumerate(names) if processors.get(n) is not None]
        self.defaults = _defaults(statement, names, columns)
        for name in names:  # literal values SQLAlchemy turned into parameters, such as LIMIT 1
            bind = compiled.binds[name]
            if not bind.required and name not in self.defaults and (columns is None or name not in columns):
                self.defaults[name] = lambda value=bind.effective_value: value
        self.positional = dialect.positional
        result = compiled._result_columns
        self.processors = [c.type._cached_result_processor(dialect, None) for c in result]
        self.make = _row_class([c.keyname for c in result]) if result else None

    def values(self, params: Mapping[str, Any]) -> Any:
        if self.defaults:
            params = {**{n: make() for n, make in self.defaults.items() if n not in params}, **params}
        values = [params[n] for n in self.names]
        for i, process in self.processing:
            values[i] = process(values[i])
        return tuple(values) if self.positional else dict(zip(self.escaped, values, strict=True))

    def row(self, raw: Sequence[Any]) -> Any:
        assert self.make is not None
        return self.make(*(p(v) if p is not None else v for p, v in zip(self.processors, raw, strict=True)))

    def error(self, exc: Exception, params: Params) -> sa.exc.DBAPIError:
        return sa.exc.DBAPIError.instance(self.sql, params, exc, self.dialect.loaded_dbapi.Error,  # type: ignore
                                          dialect=self.dialect)


def _announce(conn: sa.Connection, cursor: Any, statement: str, params: Params, many: bool) -> None:
    """Tell the engine's `before_cursor_execute` listeners (statement counters, tracing), as SQLAlchemy would."""
    if conn.engine.dispatch.before_cursor_execute:  # the connection's own dispatch costs more to ask
        conn.dispatch.before_cursor_execute(conn, cursor, statement, params, None, many)


def _defaults(statement: Any, names: list[str], columns: tuple[str, ...] | None) -> dict[str, Callable[[], Any]]:
    """Column defaults for the columns an insert lists but the caller left out (SQLAlchemy adds them to it)."""
    if not isinstance(statement, Insert) or columns is None:
        return {}
    found = {}
    for name in names:
        column = statement.table.c.get(name)
        if name in columns or column is None or column.default is None:
            continue
        default = column.default
        if default.is_scalar:
            found[name] = lambda value=default.arg: value
        elif default.is_callable:
            found[name] = lambda make=default.arg: make(None)
        else:
            raise ValueError(f"column {name} has a default the hot path cannot compute")
    return found


def _row_class(names: list[str]) -> type:
    """A named tuple with `_mapping`, as SQLAlchemy's rows have."""
    base = namedtuple("Row", names)  # type: ignore[misc]
    return type("Row", (base,), {"__slots__": (), "_mapping": property(lambda self: self._asdict())})
