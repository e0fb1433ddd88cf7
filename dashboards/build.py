"""Generate dashboards/*.json from the dashboard code in dashboards/src.

Why generated and committed: Grafana provisioning and ``spyglass grafana push`` read plain JSON,
while the code keeps selectors, units and objectives in one place. ``--check`` fails when the
committed JSON no longer matches the code (CI runs it through tests/stack/test_dashboards.py).

Usage (from the repository root):
    python -m dashboards.build           # (re)write dashboards/*.json
    python -m dashboards.build --check   # exit 1 and name the stale files if out of sync
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.src import agent, dependencies, endpoint, logs, overview, runtime

OUT_DIR = Path(__file__).resolve().parent
SOURCES: tuple[Callable[[], Dashboard], ...] = (
    overview.build,
    endpoint.build,
    dependencies.build,
    runtime.build,
    logs.build,
    agent.build,
)


def _number_panels(model: dict[str, Any]) -> None:
    """Give panels stable ids 1..n in layout order (the SDK leaves them at 0)."""
    for index, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = index


def render() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    files = {}
    for source in SOURCES:
        built = source().build()
        model = json.loads(JSONEncoder(sort_keys=True).encode(built))
        _number_panels(model)
        files[f"{model['uid']}.json"] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)

    files = render()
    if args.check:
        stale = [
            name
            for name, text in sorted(files.items())
            if not (args.out / name).exists() or (args.out / name).read_text() != text
        ]
        extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in files)
        for name in stale:
            print(f"{args.out / name}: differs from the code in dashboards/src", file=sys.stderr)
        for name in extra:
            print(f"{args.out / name}: not produced by dashboards/src", file=sys.stderr)
        if stale or extra:
            print("run `python -m dashboards.build` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(files)} dashboards up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    print(f"wrote {len(files)} dashboards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
