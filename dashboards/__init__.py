"""Spyglass's Grafana dashboards, built as code with grafana-foundation-sdk.

``dashboards/src`` holds one module per dashboard plus :mod:`dashboards.src.common`; the JSON
files beside this package are generated from them by ``python -m dashboards.build`` and
committed, so Grafana provisioning and ``spyglass grafana push`` need no Python at all.
"""
