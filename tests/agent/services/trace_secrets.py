"""Secret values service B sends on purpose; the tests assert none of them is ever exported."""

from __future__ import annotations

import base64

PG_PASSWORD = "pg-PASSWORD-s3cr3t"
URL_USER = "spy"
URL_PASSWORD = "url-PASSWORD-s3cr3t"
TOKEN = "tok-TOKEN-s3cr3t"
QUERY_PASSWORD = "qs-PASSWORD-s3cr3t"
AUTHORIZATION = "Bearer AUTH-HEADER-s3cr3t"
COOKIE = "sid=COOKIE-s3cr3t"


def all_secrets() -> list[str]:
    """Every secret string, plus the Basic credentials requests derives from ``user:pass@``."""
    basic = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
    return [PG_PASSWORD, URL_PASSWORD, TOKEN, QUERY_PASSWORD, "AUTH-HEADER-s3cr3t",
            "COOKIE-s3cr3t", basic]
