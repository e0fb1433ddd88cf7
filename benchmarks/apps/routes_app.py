"""Flask app with 500 distinct URL rules, for the /metrics scrape benchmark.

Each ``/r<n>/<item>`` is its own rule (not one rule with a parameter), so 500 route
templates become 500 ``http_route`` label values on every worker that served them.
"""

from __future__ import annotations

from flask import Flask

N_ROUTES = 500
app = Flask(__name__)


def _make_view(n: int):  # type: ignore[no-untyped-def]
    def view(item: int) -> str:
        return f"route {n} item {item}"

    view.__name__ = f"route_{n}"
    return view


for _n in range(N_ROUTES):
    app.add_url_rule(f"/r{_n}/<int:item>", view_func=_make_view(_n))
