# ruff: noqa: RUF001 - the markdown uses en dashes and the times sign on purpose
"""Render results.json as markdown: per-endpoint tables, target verdicts, sink counts, extras.

Ratios and "µs added" are computed against bare *in the same round* and then summarised by
the median over rounds; the spread column is the min-max of the contender's own req/s.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

Row = dict[str, Any]


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _collect(runs: list[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """(app, endpoint, contender) -> one row per round, with round-relative fields added."""
    bare: dict[tuple[int, str, str], Row] = {}
    for run in runs:
        if run["contender"] == "bare":
            for ep, row in run["endpoints"].items():
                bare[(run["round"], run["app"], ep)] = {**row, "startup_s": run["startup_s"]}
    out: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for run in runs:
        for ep, row in run["endpoints"].items():
            b = bare.get((run["round"], run["app"], ep))
            rel = dict(row, startup_s=run["startup_s"])
            if b:
                rel["ratio"] = row["rps"] / b["rps"] if b["rps"] else float("nan")
                rel["added_us"] = row["cpu_us_per_req"] - b["cpu_us_per_req"]
                rel["p99_x"] = row["p99_ms"] / b["p99_ms"] if b["p99_ms"] else float("nan")
                rel["rss_added"] = row["rss_mib"] - b["rss_mib"]
                rel["startup_added"] = run["startup_s"] - b["startup_s"]
            out[(run["app"], ep, run["contender"])].append(rel)
    return out


def summary(runs: list[Row]) -> dict[tuple[str, str, str], Row]:
    agg = {}
    for key, rows in _collect(runs).items():
        s: Row = {"rounds": len(rows)}
        for f in ("rps", "cpu_us_per_req", "p50_ms", "p99_ms", "rss_mib", "startup_s", "ratio",
                  "added_us", "p99_x", "rss_added", "startup_added"):
            vals = [r[f] for r in rows if f in r]
            s[f] = _med(vals)
            s[f + "_min"] = min(vals) if vals else float("nan")
            s[f + "_max"] = max(vals) if vals else float("nan")
        agg[key] = s
    return agg


def _order(items: list[str], preferred: tuple[str, ...]) -> list[str]:
    return [p for p in preferred if p in items] + [i for i in items if i not in preferred]


def tables(runs: list[Row]) -> str:
    agg = summary(runs)
    apps = _order(sorted({k[0] for k in agg}), ("flask", "fastapi"))
    eps = _order(sorted({k[1] for k in agg}), ("/hello", "/work", "/items/42"))
    cons = _order(sorted({k[2] for k in agg}), ("bare", "otel", "ddtrace", "spyglass"))
    lines = []
    for app in apps:
        for ep in eps:
            lines += [f"#### {app} {ep}", "",
                      "| contender | req/s (min–max) | ratio to bare | CPU µs/req | µs added "
                      "(min–max) | p50 ms | p99 ms | p99 × bare | worker RSS MiB | startup s |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for c in cons:
                s = agg.get((app, ep, c))
                if not s:
                    continue
                lo, hi = s["added_us_min"], s["added_us_max"]
                added = "–" if c == "bare" else f"{s['added_us']:+.0f} ({lo:+.0f}…{hi:+.0f})"
                lines.append(
                    f"| {c} | {s['rps']:.0f} ({s['rps_min']:.0f}–{s['rps_max']:.0f}) | "
                    f"{s['ratio']:.2f} | {s['cpu_us_per_req']:.0f} | {added} | "
                    f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['p99_x']:.1f} | "
                    f"{s['rss_mib']:.1f} | {s['startup_s']:.2f} |")
            lines.append("")
    return "\n".join(lines)


def verdicts(runs: list[Row]) -> str:
    agg = summary(runs)
    lines = ["| app | endpoint | Spyglass µs added | ≤ ⅓ OTel's (OTel added) | < ddtrace's "
             "(ddtrace added) | req/s ratio (≥0.85 on /work) | p99 × bare (≤2) | "
             "RSS added MiB (≤20) | startup added s (≤0.2) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def mark(ok: bool) -> str:
        return "✅" if ok else "❌"

    for app, ep, c in sorted(agg):
        if c != "spyglass":
            continue
        s = agg[(app, ep, c)]
        o = agg.get((app, ep, "otel"), {})
        d = agg.get((app, ep, "ddtrace"), {})
        # A competitor left out of the run (--contenders) is "not run", not a failed check.
        oa, da = o.get("added_us"), d.get("added_us")
        otel_cell = ("not run" if oa is None else
                     f"{mark(s['added_us'] <= oa / 3)} {oa:+.0f} (⅓ = {oa / 3:.0f})")
        dd_cell = "not run" if da is None else f"{mark(s['added_us'] < da)} {da:+.0f}"
        lines.append(
            f"| {app} | {ep} | {s['added_us']:+.0f} | {otel_cell} | {dd_cell} | "
            f"{(mark(s['ratio'] >= 0.85) + ' ') if ep == '/work' else ''}{s['ratio']:.2f} | "
            f"{mark(s['p99_x'] <= 2)} {s['p99_x']:.1f} | "
            f"{mark(s['rss_added'] <= 20)} {s['rss_added']:+.1f} | "
            f"{mark(s['startup_added'] <= 0.2)} {s['startup_added']:+.2f} |")
    return "\n".join(lines)


def sink_table(runs: list[Row]) -> str:
    tot: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0]))
    for run in runs:
        for path, c in run.get("sink", {}).items():
            t = tot[(run["app"], run["contender"])][path]
            t[0] += c["requests"]
            t[1] += c["bytes"]
            t[2] += c["non_2xx"]
    lines = ["| app | contender | path: requests / body KiB (all rounds) |", "|---|---|---|"]
    for (app, con), paths in sorted(tot.items()):
        cells = "; ".join(f"`{p}`: {v[0]} / {v[1] / 1024:.0f}" + (f" ({v[2]} non-2xx)"
                                                                     if v[2] else "")
                          for p, v in sorted(paths.items()))
        lines.append(f"| {app} | {con} | {cells or 'nothing (expected for bare)'} |")
    return "\n".join(lines)


def steal_line(runs: list[Row]) -> str:
    """How much CPU the hypervisor took during the measured windows: above a few per cent,
    windows of one round disagree by more than the targets' margins (session 18: 16 %)."""
    steal = [row["steal_pct"] for run in runs for row in run.get("endpoints", {}).values()
             if "steal_pct" in row]
    if not steal:
        return "Steal during the measured windows: not recorded (a run before session 18)."
    return (f"Steal during the measured windows (the machine's CPU time the hypervisor gave "
            f"to other guests): median {_med(steal):.1f} %, max {max(steal):.1f} %.")


def render(data: Row) -> str:
    out = ["# Benchmark results", ""]
    m = data.get("machine", {})
    out += ["## Machine", "", "```", *(f"{k}: {v}" for k, v in m.items()), "```", ""]
    cfg = data.get("config", {})
    out += ["## Configuration", "", "```", *(f"{k}: {v}" for k, v in cfg.items()), "```", ""]
    runs = data.get("runs") or []
    if runs:
        out += ["## Per app × endpoint × contender (median over rounds)", "", tables(runs),
                steal_line(runs), "",
                "## Spyglass against the targets", "", verdicts(runs), "",
                "## What arrived at the sinks", "", sink_table(runs), ""]
    if "metrics_bench" in data:
        out += ["## /metrics scrape benchmark", "", "```json",
                _json(data["metrics_bench"]), "```", ""]
    if "outage" in data:
        out += ["## Outage benchmark", "", "```json", _json(data["outage"]), "```", ""]
    if "profile" in data:
        out += ["## Where Spyglass's per-request CPU goes (py-spy)", "", profile(data["profile"])]
    return "\n".join(out)


def profile(prof: Row) -> str:
    lines = []
    for name, p in prof.items():
        sides = p["sides"]
        lines += [f"#### {name}: {p['cpu_us_per_req_while_profiled']:.0f} µs CPU/request while "
                  f"profiled, {p['samples']} samples", "",
                  "sides: " + ", ".join(f"{k} {v['share']:.0%} ≈ {v['us_per_req']:.0f} µs"
                                        for k, v in sides.items()), "",
                  "| agent part (innermost Spyglass function > library) | share | µs/req |",
                  "|---|---|---|"]
        lines += [f"| `{label}` | {share:.1%} | {us:.0f} |" for label, share, us
                  in p["agent_parts"]]
        lines.append("")
    return "\n".join(lines)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, default=str)
