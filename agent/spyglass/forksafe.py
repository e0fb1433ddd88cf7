"""One place for fork safety: hooks run before fork, after fork in the child and in the parent.

Prefork servers (gunicorn, Celery prefork, uvicorn's reloader) fork after the agent started.
Threads do not survive a fork and locks held by them stay held in the child, so every piece that
owns a thread or a lock registers here and restarts lazily in the child (dd-trace-py's
``forksafe`` model). Hooks are guarded: one failing hook never stops the others or the fork.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from spyglass._log import get_logger, reset_after_fork

__all__ = ["register_after_in_child", "register_before_fork"]

_before: list[Callable[[], None]] = []
_after_child: list[Callable[[], None]] = [reset_after_fork]
_registered = False


def _run(hooks: list[Callable[[], None]]) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception:  # noqa: BLE001
            try:
                get_logger().debug("fork hook %r failed", hook, exc_info=True)
            except Exception:  # noqa: BLE001
                pass


def _ensure_registered() -> None:
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=lambda: _run(_before),
            after_in_child=lambda: _run(_after_child),
        )
        _registered = True


def register_before_fork(hook: Callable[[], None]) -> Callable[[], None]:
    _ensure_registered()
    _before.append(hook)
    return hook


def register_after_in_child(hook: Callable[[], None]) -> Callable[[], None]:
    _ensure_registered()
    _after_child.append(hook)
    return hook
