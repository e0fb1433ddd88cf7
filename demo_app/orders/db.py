"""Database helpers that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from django.db import connection

# Rows per second a recursive CTE counts through on SQLite, roughly, on a small machine.
_SQLITE_ROWS_PER_SECOND = 4_000_000


def slow_query(seconds: float) -> None:
    """Run one query that takes about ``seconds``: pg_sleep, or a heavy recursive CTE."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
        else:
            cursor.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %s) "
                "SELECT count(*) FROM c",
                [int(seconds * _SQLITE_ROWS_PER_SECOND)],
            )
        cursor.fetchone()
