"""The hot path is compiled where the build compiled it, and works uncompiled too.

``setup.py`` compiles the modules every request runs through with mypyc (the overhead
benchmark's largest win); the rest of the suite runs against that build. These tests check
that the build really produced extension modules (a silent fallback to Python would lose the
benchmark's numbers without failing anything) and that the same modules, imported from their
source as a ``SPYGLASS_COMPILE=0`` build runs them, pass the in-process unit tests.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _hot_path() -> list[str]:
    text = (REPO / "setup.py").read_text()
    block = text.split("HOT_PATH = [", 1)[1].split("]", 1)[0]
    return [p[:-3].replace("/", ".") for p in re.findall(r'"([\w/]+\.py)"', block)]


def test_setup_lists_the_modules_every_request_runs_through() -> None:
    modules = _hot_path()
    for name in ("spyglass.server", "spyglass.spans", "spyglass.export.otlp",
                 "spyglass.metrics.store", "spyglass.tracing", "spyglass.logs.loki"):
        assert name in modules


@pytest.mark.skipif(os.environ.get("SPYGLASS_COMPILE", "1").strip() == "0",
                    reason="built with SPYGLASS_COMPILE=0")
def test_every_hot_path_module_is_the_compiled_one() -> None:
    for name in _hot_path():
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(".so"), \
            f"{name} was imported from {module.__file__}: rebuild with 'pip install -e .'"


@pytest.mark.skipif(os.environ.get("SPYGLASS_COMPILE", "1").strip() == "0",
                    reason="built with SPYGLASS_COMPILE=0")
@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("readelf") is None,
                    reason="ELF only; needs binutils' readelf")
def test_the_compiled_library_calls_its_own_functions_directly() -> None:
    """Built ``-fno-semantic-interposition`` (setup.py): calls between the compiled
    functions do not go through the PLT. Without the flag the same build has some 270 PLT
    slots for its own ``CPyDef_`` functions."""
    libraries = list((REPO / "agent").glob("*__mypyc*.so"))
    assert libraries, "no compiled library next to the agent: rebuild with 'pip install -e .'"
    for library in libraries:
        relocations = subprocess.run(["readelf", "--relocs", "--wide", str(library)],
                                     capture_output=True, text=True, timeout=60, check=True)
        own = [line for line in relocations.stdout.splitlines()
               if "JUMP_SLOT" in line and "CPyDef_" in line]
        assert not own, f"{library.name} calls {len(own)} of its own functions through " \
            f"the PLT, e.g. {own[0].split()[-3:]}"


def test_the_uncompiled_modules_pass_the_in_process_unit_tests() -> None:
    tests = ["tests/agent/test_spans.py", "tests/agent/test_sqlite3.py",
             "tests/agent/test_server_propagation.py", "tests/agent/export",
             "tests/agent/metrics/test_store.py", "tests/agent/metrics/test_render.py",
             "tests/agent/test_runtime.py"]
    probe = ("import spyglass.server, spyglass.spans, spyglass.export.otlp; "
             "print(spyglass.server.__file__, spyglass.spans.__file__)")
    out = subprocess.run([sys.executable, "-c", "import tests.support.pure_python; " + probe],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(path.endswith(".py") for path in out.stdout.split()), out.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-p", "tests.support.pure_python", *tests],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
