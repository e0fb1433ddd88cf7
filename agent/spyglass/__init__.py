"""Spyglass: zero-code traces, metrics, logs, errors and profiles for Python web apps.

The package is loaded into every Python process that ``spyglass run`` starts (through the
``sitecustomize`` in :mod:`spyglass.bootstrap`) or by ``import spyglass.auto``. Importing this
top-level module itself has no side effect, so tools can read ``__version__`` cheaply.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
