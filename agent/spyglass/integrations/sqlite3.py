"""sqlite3: one CLIENT span per statement, through subclasses of sqlite3's own C types.

Why not opentelemetry-instrumentation-sqlite3 (what this module used until the overhead
benchmark): it wraps every connection and cursor in a ``wrapt`` proxy and runs the generic
DB-API tracer around each call, which cost ~30 µs per query on top of the span, for a query
that itself takes ~5 µs, and importing it pulls in ``packaging`` (~30 ms of startup in every
worker that imports sqlite3). ``sqlite3.connect`` takes a ``factory``; we hand it a subclass of
``sqlite3.Connection`` whose cursors are a subclass of ``sqlite3.Cursor``, so the C methods run
unwrapped and a statement costs one light span (``spyglass.spans``).

The span carries what the contrib instrumentation sets under the stable database semantic
conventions (``db.system.name``, ``db.namespace``, ``db.query.text``, ``db.operation.name``);
``_sqlite3_span`` scrubs the SQL where the span is made and records
``db_client_operation_duration`` when it ends. The span itself is made in
:mod:`spyglass.integrations._sqlite3_span`, which is compiled (``setup.py``); the subclasses
here are made at run time, so they stay interpreted.
"""

from __future__ import annotations

import functools
from typing import Any

from spyglass.config import Config
from spyglass.integrations import _sqlite3_span
from spyglass.integrations._sqlite3_span import namespace as _namespace

NAME = "sqlite3"
MODULES = ("sqlite3",)


def setup_once(config: Config) -> None:
    import sqlite3
    import sqlite3.dbapi2

    from spyglass.tracing import self_recording_tracer

    # Its spans carry only what _sqlite3_span sets, the statement already scrubbed there,
    # and _sqlite3_span records their duration metric.
    _sqlite3_span.set_tracer(self_recording_tracer("spyglass.sqlite3"))
    original = sqlite3.connect
    if getattr(original, "__spyglass__", False):
        return

    @functools.wraps(original)
    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        # connect(database, timeout, detect_types, isolation_level, check_same_thread,
        # factory, ...): the app's own factory, if any, becomes the base of ours.
        if len(args) > 4:
            args = (*args[:4], _connection_class(args[4] or sqlite3.Connection), *args[5:])
        else:
            kwargs["factory"] = _connection_class(kwargs.get("factory") or sqlite3.Connection)
        conn = original(database, *args, **kwargs)
        try:
            conn._spyglass_namespace = _namespace(database)
        except Exception:  # noqa: BLE001 - a factory with __slots__: no namespace attribute
            pass
        return conn

    connect.__spyglass__ = True  # type: ignore[attr-defined]
    sqlite3.connect = connect
    sqlite3.dbapi2.connect = connect


@functools.lru_cache(maxsize=64)
def _cursor_class(base: Any) -> type:
    # The base's methods, looked up once: what super().execute(...) would call, without a
    # super object and a bound method made per statement (this class is interpreted).
    execute, executemany, executescript = base.execute, base.executemany, base.executescript
    traced = _sqlite3_span.traced

    class TracedCursor(base):
        __slots__ = ()

        def execute(self, sql: Any, *args: Any) -> Any:
            return traced(self, execute, sql, args)

        def executemany(self, sql: Any, *args: Any) -> Any:
            return traced(self, executemany, sql, args)

        def executescript(self, sql: Any, *args: Any) -> Any:
            return traced(self, executescript, sql, args)

    TracedCursor.__name__ = TracedCursor.__qualname__ = base.__name__
    TracedCursor.__module__ = base.__module__
    return TracedCursor


@functools.lru_cache(maxsize=64)
def _connection_class(base: type) -> type:
    import sqlite3

    class TracedConnection(base):
        _spyglass_namespace = ""

        def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
            return super().cursor(_cursor_class(factory))

        # The shortcuts run the statement in C on a new cursor: route them through ours.
        def execute(self, sql: Any, *args: Any) -> Any:
            return self.cursor().execute(sql, *args)

        def executemany(self, sql: Any, *args: Any) -> Any:
            return self.cursor().executemany(sql, *args)

        def executescript(self, sql: Any) -> Any:
            return self.cursor().executescript(sql)

    TracedConnection.__name__ = TracedConnection.__qualname__ = base.__name__
    TracedConnection.__module__ = base.__module__
    return TracedConnection
