"""How ``spyglass run`` starts its command: in its own interpreter when it can, else by exec.

Why: a wrapper that execs starts Python twice, once for itself and once for the app, and one
Python start costs 0.05 to 0.2 s on a small VM, as much as the agent itself adds to an app's
startup. So when CMD is a Python program of this very environment (a console script such as
``gunicorn``, ``uvicorn``, ``celery`` or ``flask`` whose ``#!`` line names this interpreter, or
``python script.py ...`` / ``python -m module ...`` with this interpreter), ``spyglass run``
runs it right here, the way the interpreter itself would have: a fresh ``__main__`` module,
``sys.argv``, ``sys.orig_argv`` and ``sys.path[0]`` as Python sets them, and the environment
the exec would have passed. There is no new process, so the pid, stdin, stdout, stderr,
signal dispositions and exit status are the app's own, as with exec; the one visible
difference is ``/proc/PID/cmdline``, which still shows ``spyglass run ... -- CMD``.

Anything else is exec'd as before: another interpreter or virtualenv, interpreter options
(``python -u``, ``-X``, ``-c``, a ``#!`` line with options), a binary, a shell script (a
pyenv shim is one), a file Python cannot compile, or a process that already runs the agent.
``spyglass run --exec`` always execs.
"""

from __future__ import annotations

import os
import shutil
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Program", "plan", "run"]

#: Linux reads at most this much of a ``#!`` line (BINPRM_BUF_SIZE).
_SHEBANG_MAX = 256


@dataclass(frozen=True)
class Program:
    """A Python program to run in this interpreter, with what Python would have set up."""

    argv: list[str]
    orig_argv: list[str]
    path0: str
    #: a script's compiled code and absolute path, or None for ``-m module``
    code: types.CodeType | None = None
    file: str | None = None
    module: str | None = None


def _is_this_python(path: str) -> bool:
    """True for this interpreter in this environment: the same binary *and* the same bin
    folder (a virtualenv's ``python`` links to the base one, with other site-packages)."""
    try:
        here = os.path.abspath(sys.executable)
        there = os.path.abspath(path)
        return (os.path.realpath(there) == os.path.realpath(here)
                and os.path.realpath(os.path.dirname(there))
                == os.path.realpath(os.path.dirname(here)))
    except (OSError, ValueError):
        return False


def _shebang_interpreter(executable: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """The interpreter a ``#!`` line names, when it takes no options, and the ``argv[0]`` it
    gets (``/usr/bin/env python3`` passes the bare name); else None."""
    try:
        with open(executable, "rb") as fh:
            head = fh.read(_SHEBANG_MAX)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip()
    try:
        words = line.decode().split()
    except UnicodeDecodeError:
        return None
    if len(words) == 1:
        return words[0], words[0]
    if len(words) == 2 and os.path.basename(words[0]) == "env" and not words[1].startswith("-"):
        found = shutil.which(words[1], path=env.get("PATH", os.defpath))
        return (found, words[1]) if found else None
    return None


def _compile_script(path: str) -> types.CodeType | None:
    """The script's code, or None when Python could not compile it (a zipapp, a binary, a
    syntax error): exec'ing it then gives exactly the interpreter's own error."""
    try:
        with open(path, "rb") as fh:
            source = fh.read()
        return compile(source, os.path.abspath(path), "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None


def _script(path: str, args: Sequence[str], interpreter: str) -> Program | None:
    code = _compile_script(path)
    if code is None:
        return None
    return Program(argv=[path, *args], orig_argv=[interpreter, path, *args],
                   path0=os.path.dirname(os.path.realpath(path)), code=code,
                   file=os.path.abspath(path))


def _agent_running() -> bool:
    agent = sys.modules.get("spyglass.agent")
    return bool(getattr(agent, "_started", False))


def plan(executable: str, command: Sequence[str], env: Mapping[str, str]) -> Program | None:
    """How to run ``command`` (whose program resolved to ``executable``) in this interpreter,
    or None when it must be exec'd."""
    if _agent_running():  # a nested `spyglass run` starts a new app instance: a new process
        return None
    try:
        if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
            return None
        args = list(command[1:])
        if _is_this_python(executable):
            if not args:
                return None
            if args[0] == "-m" and len(args) > 1 and not args[1].startswith("-"):
                import runpy

                if not hasattr(runpy, "_run_module_as_main"):
                    return None
                return Program(argv=["-m", *args[2:]], orig_argv=[command[0], *args],
                               path0=os.getcwd(), module=args[1])
            if args[0].startswith("-") or not os.path.isfile(args[0]):
                return None
            return _script(args[0], args[1:], command[0])
        interpreter = _shebang_interpreter(executable, env)
        if interpreter is None or not _is_this_python(interpreter[0]):
            return None
        return _script(executable, args, interpreter[1])
    except Exception:  # noqa: BLE001 - any doubt means exec, which is always right
        return None


def _apply_environ(env: Mapping[str, str]) -> None:
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _fresh_main(program: Program) -> types.ModuleType:
    main = types.ModuleType("__main__")
    main.__dict__.update(__builtins__=sys.modules["builtins"], __annotations__={},
                         __spec__=None, __package__=None, __cached__=None)
    if program.file is not None:
        from importlib.machinery import SourceFileLoader

        main.__file__ = program.file
        main.__loader__ = SourceFileLoader("__main__", program.file)
    sys.modules["__main__"] = main
    return main


def run(program: Program, env: Mapping[str, str]) -> None:
    """Become the program: its environment, argv, path and ``__main__``, the agent started
    as its ``sitecustomize`` would have, then its code. Returns when the program ends; its
    ``SystemExit`` and ``KeyboardInterrupt`` propagate, so the interpreter exits as it would
    have (a ``KeyboardInterrupt`` traceback then shows spyglass's frames too). Any other
    uncaught exception is printed by ``sys.excepthook`` without them and exits with status
    1, as Python does."""
    _apply_environ(env)
    sys.argv = list(program.argv)
    sys.orig_argv = list(program.orig_argv)
    if sys.path:
        sys.path[0] = program.path0
    else:
        sys.path.insert(0, program.path0)
    main = _fresh_main(program)

    from spyglass.bootstrap import start

    start()
    try:
        if program.module is not None:
            import runpy

            runpy._run_module_as_main(program.module)  # type: ignore[attr-defined]
        else:
            assert program.code is not None
            exec(program.code, main.__dict__)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - reported as the interpreter reports it
        tb = exc.__traceback__
        tb = tb.tb_next if tb is not None else None  # this frame (runpy's stay, as in -m)
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        raise SystemExit(1) from None
