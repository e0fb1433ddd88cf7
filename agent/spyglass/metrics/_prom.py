"""prometheus_client's leaf modules, without importing the whole package at start.

``import prometheus_client.mmap_dict`` first runs ``prometheus_client/__init__.py``, which
imports the package's entire exposition stack (its HTTP servers, ``urllib``, ``wsgiref``,
the platform and process collectors): ~90 ms on the benchmark VM, paid by every app at start,
for three small modules the agent needs on its hot paths:

- ``mmap_dict``: the multiprocess file format the workers write (``MmapedDict``, ``mmap_key``);
- ``utils``: ``floatToGoString``, the text of a value or an ``le`` label;
- ``samples``: ``Exemplar``.

These three import only the standard library, so they are loaded from the installed
package's own files under private names: the same code, at a fraction of the cost. The rest
of prometheus_client (``Metric`` objects and its exposition, for ``collect()``) is imported
only where it is used. If the package is already imported, or a future version's modules
stop being standalone, the normal import is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["leaf"]

_loaded: dict[str, ModuleType] = {}


def leaf(name: str, needs: tuple[str, ...]) -> ModuleType:
    """``prometheus_client.<name>``, loaded standalone unless the package is imported."""
    full = "prometheus_client." + name
    module = sys.modules.get(full) or _loaded.get(name)
    if module is not None:
        return module
    try:
        module = _standalone(name)
        if not all(hasattr(module, attr) for attr in needs):
            raise ImportError(f"{full} lacks one of {needs}")
    except Exception:  # noqa: BLE001 - any surprise: the package's own import path
        module = importlib.import_module(full)
    _loaded[name] = module
    return module


def _standalone(name: str) -> ModuleType:
    spec = importlib.util.find_spec("prometheus_client")  # finds, does not import, the package
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("prometheus_client is not installed")
    path = os.path.join(next(iter(spec.submodule_search_locations)), name + ".py")
    leaf_spec = importlib.util.spec_from_file_location(f"spyglass._prometheus_client_{name}",
                                                       path)
    if leaf_spec is None or leaf_spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(leaf_spec)
    leaf_spec.loader.exec_module(module)
    return module
