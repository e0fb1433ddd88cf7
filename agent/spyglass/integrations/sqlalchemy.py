"""SQLAlchemy engines: statement spans from opentelemetry-instrumentation-sqlalchemy.

Statements pass the ScrubProcessor, which replaces literal values with ?.

The contrib instrumentation opens a span for every statement, and so does the driver's own
instrumentation (psycopg, psycopg2, sqlite3) underneath it: two sibling CLIENT spans per
statement, and every statement counted twice in ``db_client_operation_duration_seconds``. We
wrap its ``before_cursor_execute`` hook to skip the SQLAlchemy span when the cursor is already
traced by a driver instrumentation, so one statement is one span, timed around the real
execution. Drivers we do not instrument (asyncpg, mysqlclient, ...) keep the SQLAlchemy span.
"""

from __future__ import annotations

from typing import Any

import wrapt

from spyglass._log import warn_once_per
from spyglass.config import Config
from spyglass.integrations import DidNotEnable
from spyglass.integrations._contrib import instrument

NAME = "sqlalchemy"
MODULES = ("sqlalchemy",)


def _driver_traced(cursor: Any) -> bool:
    # The dbapi integration wraps cursors in TracedCursorProxy; the psycopg and psycopg2 ones
    # install cursor factories named TracedCursorFactory / TracedCursorAsyncFactory.
    return type(cursor).__name__.startswith("TracedCursor")


def setup_once(config: Config) -> None:
    def before_cur_exec(wrapped: Any, instance: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        cursor = args[1] if len(args) > 1 else kwargs.get("cursor")
        if _driver_traced(cursor):
            statement = args[2] if len(args) > 2 else kwargs.get("statement")
            params = args[3] if len(args) > 3 else kwargs.get("params")
            return statement, params
        return wrapped(*args, **kwargs)

    try:
        from opentelemetry.instrumentation.sqlalchemy import engine
    except ImportError as exc:
        raise DidNotEnable(str(exc)) from None
    # Wrapped before instrument(): the engine listeners are bound methods looked up then.
    wrapt.wrap_function_wrapper(engine, "EngineTracer._before_cur_exec", before_cur_exec)
    try:
        instrument("opentelemetry.instrumentation.sqlalchemy", "SQLAlchemyInstrumentor")
    except ImportError as exc:
        # The contrib package imports sqlalchemy.ext.asyncio, which needs greenlet; SQLAlchemy
        # 2.1 made greenlet optional. Statements are still traced by the driver integrations
        # (psycopg, psycopg2, sqlite3); only drivers we don't instrument lose their spans.
        warn_once_per("sqlalchemy-greenlet",
                      "SQLAlchemy statement spans are off (%s); driver spans still work. "
                      "Install 'sqlalchemy[asyncio]' to turn them on.", exc)
        raise DidNotEnable(str(exc)) from None
