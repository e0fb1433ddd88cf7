"""Applies the orders service's runtime faults inside Django's request handling.

Faults run in ``process_view`` so the URL is already resolved: a raised InjectedFault goes
through Django's normal 500 path (logged by ``django.request`` with its traceback), and the
slow query runs on the request's own database connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from demo_app import faults
from demo_app.orders import db

STORE = faults.FaultStore("orders")


class FaultMiddleware:
    """Django middleware: latency, hang, error-rate and slow-SQL faults."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        """Runs after URL resolution, before the view."""
        match = request.resolver_match
        route = "/" + match.route if match is not None else request.path
        if faults.is_exempt(request.path):
            return
        slow = STORE.get("slow_sql")
        if slow is not None:
            db.slow_query(slow.value)
        faults.apply_sync(STORE, route)
