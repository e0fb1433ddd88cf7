"""The directory ``spyglass run`` prepends to PYTHONPATH, and the helpers its
``sitecustomize`` calls. Neither helper ever raises into the app's startup."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["BOOTSTRAP_DIR", "chain_sitecustomize", "start"]

BOOTSTRAP_DIR = os.path.dirname(os.path.abspath(__file__))


def start() -> None:
    try:
        from spyglass.agent import initialize

        initialize()
    except Exception as exc:  # noqa: BLE001
        try:
            sys.stderr.write(f"spyglass: warning: agent failed to start ({exc}); "
                             "the app runs without it\n")
        except Exception:  # noqa: BLE001
            pass


def chain_sitecustomize(our_file: str) -> None:
    """Run the next ``sitecustomize`` on sys.path after ours, if any."""
    try:
        ours = os.path.dirname(os.path.abspath(our_file))
        path = [p for p in sys.path if os.path.abspath(p or ".") != ours]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        try:
            sys.stderr.write(f"spyglass: warning: the app's sitecustomize failed: {exc}\n")
        except Exception:  # noqa: BLE001
            pass
