"""Redaction: secrets never leave the process.

Applied to every span attribute that can carry one (URLs, query strings, SQL statements,
headers), whichever instrumentation set it, and to the URL shown by the dev console.
"""

from __future__ import annotations

import functools
import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "SENSITIVE_HEADERS", "scrub_query", "scrub_sql", "scrub_url"]

REDACTED: Final = "REDACTED"
SENSITIVE_HEADERS: Final = frozenset({"authorization", "cookie", "set-cookie",
                                      "proxy-authorization", "x-api-key", "x-auth-token"})
_SENSITIVE_PARAM: Final = re.compile(
    r"(?:pass(?:word|wd)?|pwd|token|secret|api[_-]?key|access[_-]?key|key|auth|signature|"
    r"sig|session|credential)", re.IGNORECASE)

# SQL literals: quoted strings (with '' escapes), dollar-quoted strings, hex/binary blobs and
# numbers that are not part of an identifier. Parameter markers (%s, ?, $1, :name) survive.
_SQL_LITERAL: Final = re.compile(
    r"""
    (?P<str>'(?:[^']|'')*'(?!')) |
    (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$) |
    (?P<hex>\b[xX]'[0-9A-Fa-f]*') |
    (?P<num>(?<![\w$.:])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b)
    """,
    re.VERBOSE | re.DOTALL,
)
_MAX_SQL: Final = 4096


def _sensitive(name: str) -> bool:
    return bool(_SENSITIVE_PARAM.search(name))


def scrub_query(query: str) -> str:
    """Replace the values of password/token/secret/key-like parameters with REDACTED."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        parts.append(f"{name}={REDACTED}" if sep and _sensitive(name) else item)
    return "&".join(parts)


def scrub_url(url: str) -> str:
    """Drop user:password from the authority and redact sensitive query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}:{REDACTED}@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, scrub_query(parts.query), ""))


@functools.lru_cache(maxsize=256)
def scrub_sql(statement: str) -> str:
    """The statement with every literal value replaced by ``?``, capped at 4 KiB.

    Cached: parameterised statements repeat on every request, and the regex is the costly part
    of a DB span."""
    if len(statement) > _MAX_SQL:
        statement = statement[:_MAX_SQL]
    return _SQL_LITERAL.sub("?", statement)
