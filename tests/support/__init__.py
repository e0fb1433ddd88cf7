"""Shared test helpers: stand-ins for the backends Spyglass talks to, and process/HTTP tools.

Grafana, Loki, Jaeger and the OTel Collector cannot run on the test machines, so the tests
talk to small loopback stand-ins that implement those systems' documented wire contracts
(OTLP/HTTP protobuf, the Loki push API). Each stand-in's docstring names the system it
stands for; none of them *is* that system.

Import them as ``from tests.support.otlp import OTLPReceiver`` (tests/conftest.py puts the
repository root on ``sys.path``); the ``otlp_receiver``, ``loki_receiver`` and ``blackhole``
fixtures in tests/conftest.py hand out started instances.

Modules:
- ``waiting``: ``wait_until`` (poll with a deadline), ``free_port``, ``closed_port``.
- ``procs``: ``AppProcess`` (a real child process, killed by group), ``spyglass_argv``,
  ``http_get``/``http_request`` (raw http.client, odd paths allowed).
- ``otlp``: ``OTLPReceiver`` and its decoded ``Span``.
- ``loki``: ``LokiReceiver`` and its ``LogEntry``.
- ``blackhole``: ``BlackHoleServer``, a backend that accepts and never answers.
- ``prom``: scrape, parse and query Prometheus expositions, ``promtool_check_metrics``.
"""
