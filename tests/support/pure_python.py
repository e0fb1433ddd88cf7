"""A pytest plugin that imports the agent's compiled modules from their Python source.

``setup.py`` compiles the per-request modules with mypyc, and the test suite normally runs
against what was built. With ``-p tests.support.pure_python`` the same tests run against the
``.py`` files instead, which is what an agent built with ``SPYGLASS_COMPILE=0`` (or on a
machine without a C compiler) runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_AGENT = Path(__file__).resolve().parents[2] / "agent"


class _SourceFirst(importlib.abc.MetaPathFinder):
    """For ``spyglass.*`` modules that have a ``.py`` file, load that file, never the
    extension module beside it."""

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "spyglass" and not fullname.startswith("spyglass."):
            return None
        parts = fullname.split(".")
        source = _AGENT.joinpath(*parts).with_suffix(".py")
        if not source.is_file():
            return None  # a package: its __init__.py is never compiled
        return importlib.util.spec_from_file_location(fullname, source)


if any(name == "spyglass" or name.startswith("spyglass.") for name in sys.modules):
    raise RuntimeError("tests.support.pure_python must load before the agent is imported")
sys.meta_path.insert(0, _SourceFirst())
