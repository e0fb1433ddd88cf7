"""Compile the per-request hot path with mypyc; everything else stays plain Python.

Why: the agent's per-request cost is spread thin over the server span, the DB span, log
capture and span encoding, and what compiles to C is the same code, type-checked by the same
mypy the project already runs. Measured (benchmarks/RESULTS.md, callgrind, the request
thread): about a quarter (FastAPI) and a tenth (Flask) fewer agent instructions per request
than the same modules interpreted; most of what is left is spent in libraries that stay
interpreted (prometheus_client's writes, logging) and in the C API both builds call alike.

``SPYGLASS_COMPILE=0`` builds a pure-Python package (the same behaviour, more CPU per
request); so does a build on a machine without a C compiler or the Python headers.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import setup

# The modules every request runs through. They are plain Python too: each one works
# uncompiled, and the tests run against whichever was built.
HOT_PATH = [
    "spyglass/export/otlp.py",
    "spyglass/export/batch.py",
    "spyglass/spans.py",
    "spyglass/server.py",
    "spyglass/metrics/store.py",
    "spyglass/tracing.py",
    "spyglass/scrub.py",
    "spyglass/logs/tap.py",
    "spyglass/logs/loki.py",
    "spyglass/runtime.py",
    "spyglass/integrations/flask.py",
    "spyglass/integrations/django.py",
    "spyglass/integrations/starlette.py",
    "spyglass/integrations/_sqlite3_span.py",
]


def _can_compile() -> bool:
    """A C compiler and the Python headers are here (a slim image may have neither)."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(cc) and os.path.exists(headers):
        return True
    print(f"spyglass: no C compiler ({cc}) or no Python.h ({headers}): building the "
          "pure-Python agent (the same behaviour, more CPU per request)", file=sys.stderr)
    return False


def _ext_modules() -> list:
    if os.environ.get("SPYGLASS_COMPILE", "1").strip() == "0" or not _can_compile():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    # The build runs in pip's isolated environment, where the web frameworks may be absent
    # (a fresh machine) or present (mypy also reads the interpreter's site-packages): the
    # ignores that `mypy` needs with them installed are then unused, which is no error here.
    # -O2, not mypyc's default -O3: in session 15's side-by-side runs under the real server
    # (benchmarks/threads.py, FastAPI /work) the -O2 build added 8 and 12 µs less per request
    # than the -O3 one, and -Os 18 µs more; callgrind counts the same instructions and cache
    # misses for -O2 and -O3, so the difference is the machine's, not the simulated cache's.
    extensions = mypycify(["--no-warn-unused-ignores",
                           *(os.path.join("agent", m) for m in HOT_PATH)], opt_level="2")
    for ext in extensions:
        ext.extra_compile_args = [*ext.extra_compile_args, *_local_calls_flags()]
    return extensions


def _local_calls_flags() -> list[str]:
    """``-fno-semantic-interposition`` where the compiler is GCC or Clang on ELF.

    mypyc's C is one translation unit whose functions (``CPyDef_*`` and its runtime
    library's helpers) are global symbols. Built ``-fPIC`` for a shared object, every call
    between them then goes through the PLT and none of them is inlined, because the dynamic
    linker could in principle replace any of them. Nothing does; this flag lets the compiler
    call them directly and inline the small ones, as CPython's own ``--enable-shared`` build
    does (bpo-38980). Measured (benchmarks/RESULTS.md, session 19): the PLT entries of the
    compiled agent went from 670 to 233 and its own code ran about 1.2k fewer instructions
    a request.
    """
    if not sys.platform.startswith("linux"):
        return []
    cc = os.path.basename((os.environ.get("CC") or sysconfig.get_config_var("CC")
                           or "cc").split()[0])
    return ["-fno-semantic-interposition"] if ("gcc" in cc or "clang" in cc
                                               or cc in ("cc", "c99")) else []


setup(ext_modules=_ext_modules())
