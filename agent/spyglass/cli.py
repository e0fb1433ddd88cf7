"""The ``spyglass`` command.

``spyglass run [OPTIONS] -- CMD [ARGS...]`` checks the configuration, then *becomes* CMD, with
the agent's bootstrap directory first on ``PYTHONPATH``: a Python program of this same
environment runs in this very interpreter (:mod:`spyglass.launch` says how, and why), anything
else replaces it by ``exec``. Either way the app keeps spyglass's pid, argv, stdin, stdout,
exit code and signals exactly as if it had been started directly; every Python process it
starts (forked workers, spawned workers, the autoreloader's child) loads the agent through
``sitecustomize``.

Exit status: 2 for a usage or configuration error (before the app starts), 127 when CMD is
not found, 126 when it cannot be executed, otherwise whatever the app returns.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spyglass import __version__
from spyglass.config import (
    ENV_METRICS_DIR,
    ENV_METRICS_OWNER,
    SETTINGS,
    Config,
    ConfigError,
    check_propagators,
    load_config,
    service_name_configured,
    to_environ,
)

__all__ = ["main"]

PROG = "spyglass"


class _Parser(argparse.ArgumentParser):
    # One line, naming the problem and where the fix is: a usage block on every typo buried
    # the message (and `spyglass run --bad` pointed at the top-level help).
    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}; '{self.prog} --help' lists the options\n")


def _fail(message: str, status: int = 2) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return status


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps help text without splitting ``--otlp-endpoint`` into ``--otlp-`` / ``endpoint``."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _add_run(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run", help="run a program with the agent loaded",
        usage=f"{PROG} run [OPTIONS] -- CMD [ARGS...]",
        description="Run CMD with Spyglass loaded in every Python process it starts. "
                    "Options override SPYGLASS_*/OTEL_* variables, which override "
                    "[tool.spyglass] in pyproject.toml.",
        epilog="examples:\n"
               f"  {PROG} run -- gunicorn -w 4 shop.wsgi\n"
               f"  {PROG} run --service-name api --console -- uvicorn api:app\n"
               f"  {PROG} run -- celery -A proj worker",
        formatter_class=_HelpFormatter)
    for s in SETTINGS:
        default = "" if s.default in (None, ()) else f", default {s.default}"
        also = f" or {s.otel_env}{s.otel_unit}" if s.otel_env else ""
        help_text = f"{s.help} [env {s.env}{also}{default}]"
        if s.is_flag:
            run.add_argument(s.cli_flag, dest=s.name, action="store_const", const=True,
                             default=None, help=help_text)
        else:
            run.add_argument(s.cli_flag, dest=s.name, metavar=s.metavar, default=None,
                             help=help_text)
    run.add_argument("--exec", dest="always_exec", action="store_true",
                     help="always exec CMD in a new process image, even a Python program of "
                          "this environment (which otherwise runs in this interpreter: one "
                          "Python start instead of two)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]",
                     help="the program to run and its arguments")
    run.set_defaults(func=_run)


def _parsed_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Option values parsed with each setting's parser; errors name the flag."""
    overrides: dict[str, Any] = {}
    for s in SETTINGS:
        raw = getattr(args, s.name, None)
        if raw is None:
            continue
        if s.is_flag:
            overrides[s.name] = True
            continue
        try:
            overrides[s.name] = s.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{s.cli_flag} {raw!r} is invalid: {exc}") from None
    return overrides


_APP_SPEC = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?::[\w.()]+)?$")


def _default_service_name(command: Sequence[str], cwd: str | None = None,
                          environ: Mapping[str, str] | None = None) -> str | None:
    """What a user would call the app: ``gunicorn shop.wsgi`` -> shop, ``celery -A p`` -> p."""
    env = os.environ if environ is None else environ
    prog = os.path.basename(command[0])
    args = list(command[1:])
    if prog.startswith("python") and args:
        if args[0] == "-m" and len(args) > 1:
            prog, args = args[1], args[2:]
        else:
            script = os.path.basename(args[0])
            if script == "manage.py":
                return os.path.basename(cwd or os.getcwd()) or "django"
            return script[:-3] if script.endswith(".py") else script
    if prog in ("gunicorn", "uvicorn", "hypercorn", "daphne", "granian"):
        for arg in reversed(args):
            if _APP_SPEC.match(arg):
                return arg.split(":", 1)[0].split(".", 1)[0]
    if prog == "celery":
        for i, arg in enumerate(args):
            if arg in ("-A", "--app") and i + 1 < len(args):
                return args[i + 1].split(".", 1)[0].split(":", 1)[0]
            if arg.startswith("--app="):
                return arg.split("=", 1)[1].split(".", 1)[0]
    if prog == "flask":
        return env.get("FLASK_APP", "flask").split(":", 1)[0].split(".", 1)[0]
    return prog or None


def _service_name(command: Sequence[str], overrides: Mapping[str, Any], config: Config,
                  environ: Mapping[str, str], cwd: str | None) -> str | None:
    """The name ``spyglass run`` gives an app whose environment has no OTEL_SERVICE_NAME.

    A name set anywhere (option, pyproject, OTEL_RESOURCE_ATTRIBUTES) wins over the guess
    from the command line; the guess used to override [tool.spyglass] service_name.
    """
    if service_name_configured(overrides, config, Path(cwd) if cwd else None, environ):
        return config.service_name
    return _default_service_name(command, cwd, environ)


def launched_service_name(argv: Sequence[str], environ: Mapping[str, str],
                          cwd: str) -> str | None:
    """The service name of a process started as ``... spyglass run ARGS``, from its command
    line, initial environment and working directory, as ``spyglass run`` chose it; None when
    ``argv`` is not such a command line.

    ``spyglass profile --service`` needs it for an app that ``spyglass run`` runs in its own
    interpreter: the name is then in that process's environment but not in the initial one
    that ``/proc/PID/environ`` shows.
    """
    for i, word in enumerate(argv[:-1]):
        if argv[i + 1] == "run" and (os.path.basename(word) == PROG
                                     or (word == PROG and i > 0 and argv[i - 1] == "-m")):
            rest = list(argv[i + 2:])
            break
    else:
        return None
    if environ.get("OTEL_SERVICE_NAME"):
        return environ["OTEL_SERVICE_NAME"]
    import contextlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse reports bad words there
            args, extras = build_parser(run_only=True).parse_known_args(["run", *rest])
        overrides = _parsed_overrides(args)
        config = load_config(overrides, environ=environ, cwd=Path(cwd))
    except (ConfigError, SystemExit):
        return None
    command = list(args.command)
    if extras:  # that `spyglass run` refused to start
        return None
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return None
    return _service_name(command, overrides, config, environ, cwd)


def _run(args: argparse.Namespace) -> int | Callable[[], None]:
    """Check everything, then exec CMD, or return the call that runs it in this process."""
    from spyglass.bootstrap import BOOTSTRAP_DIR

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("no command to run; usage: spyglass run [OPTIONS] -- CMD [ARGS...]")
    try:
        overrides = _parsed_overrides(args)
        config = load_config(overrides)
        check_propagators()
    except ConfigError as exc:
        return _fail(str(exc))
    if config.metrics and not config.sdk_disabled:
        from spyglass._net import bind_check

        problem = bind_check(config.metrics_host, config.metrics_port)
        if problem:
            return _fail(
                f"metrics port {config.metrics_host}:{config.metrics_port} is not available "
                f"({problem}); choose a free one with --metrics-port or SPYGLASS_METRICS_PORT, "
                "or turn metrics off with SPYGLASS_METRICS=false")
    executable = shutil.which(command[0])
    if executable is None:
        return _fail(f"{command[0]}: command not found", 127)

    env = dict(os.environ)
    env.update(to_environ(overrides))
    if "OTEL_SERVICE_NAME" not in env:
        name = _service_name(command, overrides, config, env, None)
        if name:
            env["OTEL_SERVICE_NAME"] = name
    # A nested `spyglass run` starts a new app instance with its own /metrics.
    env.pop(ENV_METRICS_OWNER, None)
    env.pop(ENV_METRICS_DIR, None)
    pythonpath = env.get("PYTHONPATH", "")
    parts = [p for p in pythonpath.split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *parts])
    if not args.always_exec:
        from spyglass import launch

        program = launch.plan(executable, command, env)
        if program is not None:
            return lambda: launch.run(program, env)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, command, env)
    except OSError as exc:
        return _fail(f"{command[0]}: {exc.strerror or exc}", 126)
    return 0  # not reached


def build_parser(run_only: bool = False) -> argparse.ArgumentParser:
    """The command's parser; ``run_only`` skips importing the other subcommands' modules
    (``spyglass run`` is on the app's startup path, and they cost tens of ms to import)."""
    parser = _Parser(prog=PROG, description="Spyglass: traces, metrics and logs for Python "
                     "web apps, with no code change.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND",
                                       parser_class=_Parser)
    _add_run(subparsers)
    if run_only:
        return parser
    try:
        from spyglass.profiling import cli as profiling_cli

        profiling_cli.add_parser(subparsers)  # `spyglass profile` and `spyglass dump`
    except ImportError:
        pass
    try:
        from spyglass import grafana

        grafana.add_parser(subparsers)
    except ImportError:
        pass
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(run_only=argv[:1] == ["run"] and not {"-h", "--help"} & set(argv[1:2]))
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse reports these from the top-level parser; say which command's help to read.
        where = f"{PROG} {args.subcommand}" if getattr(args, "subcommand", None) else PROG
        return _fail(f"unknown option {extras[0]!r}; '{where} --help' lists the options "
                     "(the program to run and its own options go after --)")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        outcome = func(args)
    except KeyboardInterrupt:
        return 130
    if callable(outcome):
        # The app itself, outside that handler: its KeyboardInterrupt and SystemExit reach
        # the interpreter as they would have without spyglass.
        del parser, args
        outcome()
        return 0
    return int(outcome or 0)


if __name__ == "__main__":
    sys.exit(main())
