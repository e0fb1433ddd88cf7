"""Time to the first 200, many starts, interleaved: where an agent's startup cost comes from.

``run.py`` times one start per contender and round, which is too few to split a 0.1 s
difference from this VM's noise. This starts each variant ``--rounds`` times, interleaved
(bare, spyglass, spyglass-exec, spyglass-off, bare, ...), each to its first 200 on ``/hello``
and then stops it, and reports the median and spread per variant and what each adds over
bare:

- ``spyglass``: ``spyglass run`` as users run it (a Python program of its own environment runs
  in the wrapper's interpreter: one Python start);
- ``spyglass-exec``: ``spyglass run --exec``, which execs the server (two Python starts, the
  way ``opentelemetry-instrument`` and ``ddtrace-run`` work);
- ``spyglass-off``: ``spyglass run`` with ``OTEL_SDK_DISABLED=true``: the wrapper alone;
- ``otel`` and ``ddtrace`` when asked for with ``--variants``.

    python benchmarks/startup.py --app flask --rounds 15 --json benchmarks/out/startup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness.overhead import start_server  # noqa: E402
from harness.procs import free_port  # noqa: E402
from harness.sink import NginxSink  # noqa: E402

VARIANTS = ("bare", "spyglass", "spyglass-exec", "spyglass-off")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("flask", "fastapi"), default="flask")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="spyglass-startup-") as tmp:
        sink = NginxSink(Path(tmp) / "sink").start()
        try:
            for n in range(args.rounds):
                for variant in variants:
                    server, _, _ = start_server(variant, args.app, sink.url, free_port(), {},
                                                Path(tmp) / f"{variant}.log")
                    server.stop()
                    times[variant].append(server.startup_s)
                print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            sink.stop()
    bare = statistics.median(times["bare"]) if times.get("bare") else None
    rows = []
    for variant, values in times.items():
        median = statistics.median(values)
        rows.append({"variant": variant, "median_s": median, "min_s": min(values),
                     "max_s": max(values), "added_s": None if bare is None else median - bare,
                     "all_s": values})
    print(f"\n{args.app}: time from spawn to the first 200 on /hello, "
          f"median of {args.rounds} interleaved starts\n")
    print("| variant | median s | min-max s | added vs bare s |")
    print("|---|---|---|---|")
    for row in rows:
        added = "-" if row["variant"] == "bare" or row["added_s"] is None else (
            f"{row['added_s']:+.3f}")
        print(f"| {row['variant']} | {row['median_s']:.3f} | {row['min_s']:.2f}-"
              f"{row['max_s']:.2f} | {added} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"app": args.app, "rounds": args.rounds,
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
