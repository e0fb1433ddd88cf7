"""Start the agent inside an app process: each signal in its own guard, never raising.

Called by the ``sitecustomize`` that ``spyglass run`` puts on ``PYTHONPATH`` (so it runs in
every Python process of the app, spawned ones included) or by ``import spyglass.auto``.
Forked processes inherit the started agent; the fork hooks in :mod:`spyglass.forksafe` restart
what threads and files they need.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from spyglass._log import get_logger, set_debug
from spyglass.config import Config, ConfigError, load_config

__all__ = ["flush", "initialize"]

_started = False
_config: Config | None = None


def _guard(name: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        get_logger().warning("%s failed to start; the app runs without it", name, exc_info=True)
        try:
            from spyglass import metrics

            inst = metrics.get()
            if inst is not None:
                inst.internal_errors.labels(name).inc()
        except Exception:  # noqa: BLE001
            pass


def _quiet_otel_loggers(debug: bool) -> None:
    """The SDK and exporters log every failed export; our BatchWorker already says it once."""
    for name in ("opentelemetry",):
        logger = logging.getLogger(name)
        logger.propagate = debug
        if not debug and not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def flush(timeout: float = 3.0) -> None:
    """Send queued spans and logs now (at exit, on SIGTERM, when a pool process stops)."""
    import time

    from spyglass import errors, runtime, tracing
    from spyglass.logs import loki

    # One deadline for everything: a hung backend must not cost ``timeout`` once per signal.
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    for fn in (runtime.flush, lambda: tracing.flush(left()), lambda: loki.flush(left()),
               lambda: errors.flush(left())):
        try:
            fn()
        except Exception:  # noqa: BLE001
            pass


def _install_sigterm_flush() -> None:
    """Flush on SIGTERM when nobody handles it (plain scripts, uvicorn's re-raised SIGTERM).

    Only when the handler is the default one: the app's own handler always wins. After the
    flush the default action runs, so the exit status is the one the app would have had.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        # The signal can land while this very thread holds one of the agent's locks (say in
        # a metric write); flushing right here would then wait for that lock forever, and
        # the process would never exit. A helper thread flushes; the handler waits for it at
        # most the flush's own deadline, then lets the default action end the process.
        helper = threading.Thread(target=flush, args=(2.0,), name="spyglass-sigterm-flush",
                                  daemon=True)
        helper.start()
        helper.join(2.5)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def initialize() -> Config | None:
    """Start every signal the configuration enables. Never raises; idempotent."""
    global _started, _config
    if _started:
        return _config
    _started = True
    try:
        config = load_config()
    except ConfigError as exc:
        get_logger().error("%s; the agent is off for this process", exc)
        return None
    except Exception:  # noqa: BLE001
        get_logger().error("cannot read the configuration; the agent is off", exc_info=True)
        return None
    if config.sdk_disabled:
        return None
    _config = config
    set_debug(config.debug)
    _quiet_otel_loggers(config.debug)
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")

    from spyglass import integrations, metrics, runtime, server, tracing

    _guard("metrics", lambda: metrics.setup(config))
    _guard("traces", lambda: tracing.setup(config))
    _guard("server", lambda: server.configure(config.console))
    _guard("runtime", runtime.install)
    if config.logs:
        from spyglass.logs import loki

        _guard("logs", lambda: loki.install(config))
    from spyglass import errors, profiling

    _guard("errors", lambda: errors.install(config))
    _guard("profiling", lambda: profiling.install(config))
    _guard("integrations", lambda: integrations.install(config))
    _guard("sigterm", _install_sigterm_flush)
    return config
