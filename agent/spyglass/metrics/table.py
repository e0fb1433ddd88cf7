"""The scrape's hot path: counters and histograms summed through a table of series slots.

A scrape of 4 workers x 500 routes reads ~32,000 entries and writes ~8,500 series. Summing
them into per-metric dicts and formatting each line from its labels cost ~60 ms a scrape, so
the work that does not change between scrapes is done once and kept:

- every series (kind, metric, sample name, labels, ``le``) gets a **slot**, a list index;
- every file's layout is kept as two parallel lists, the positions of its values (as indexes
  into the file read as an array of doubles: prometheus_client aligns every value to 8 bytes)
  and their slots, extended only by the entries appended since the previous scrape;
- the **plan** -- families in order, each line's ``name{labels}`` prefix, the exemplar key of
  each bucket -- is rebuilt only when the set of series present changes.

A scrape then reads each file, picks its values in one C call (``operator.itemgetter``), adds
them into a list of sums and writes the lines from the plan. Gauges, whose merge depends on
their mode and on which processes are alive, are few and stay with the collector's dict path.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

__all__ = ["SeriesTable"]

#: (kind, metric name, sample name, sorted labels without ``le``, ``le`` or None)
SeriesKey = tuple[str, str, str, tuple[tuple[str, str], ...], float | None]
ExemplarKey = tuple[str, tuple[tuple[str, str], ...]]


class _FileLayout:
    __slots__ = ("getter", "inode", "positions", "slots", "upto")

    def __init__(self, inode: int) -> None:
        self.inode = inode
        self.upto = 8
        self.positions: list[int] = []
        self.slots: list[int] = []
        self.getter: Any = None


class _Group:
    """One histogram label set: its bucket slots in ``le`` order and its ``_count`` line."""

    __slots__ = ("buckets", "count_prefix", "exemplar_keys", "labels", "prefixes")

    def __init__(self, labels: tuple[tuple[str, str], ...]) -> None:
        self.labels = labels
        self.buckets: list[int] = []
        self.prefixes: list[str] = []
        self.exemplar_keys: list[ExemplarKey] = []
        self.count_prefix = ""


class _Family:
    __slots__ = ("groups", "help", "kind", "name", "prefixes", "sample_keys", "samples")

    def __init__(self, kind: str, name: str, help_text: str) -> None:
        self.kind = kind
        self.name = name
        self.help = help_text
        self.samples: list[int] = []
        self.sample_keys: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self.prefixes: list[str] = []
        self.groups: list[_Group] = []


class SeriesTable:
    """Slots, file layouts and the render plan for the counter and histogram files."""

    def __init__(self, max_series: int) -> None:
        self._max = max_series
        self._reset()

    def _reset(self) -> None:
        self._slot_of: dict[SeriesKey, int] = {}
        self._series: list[tuple[SeriesKey, str]] = []  # key, help text
        self._layouts: dict[str, _FileLayout] = {}
        self._plan: list[_Family] = []
        self._plan_for: frozenset[int] = frozenset()
        # Formatted per slot once, kept across plan rebuilds: while new series keep appearing
        # (a fresh app, worker churn) the plan is rebuilt often, and formatting ~8,500 escaped
        # label sets each time was the owner's largest cost.
        self._texts: dict[Any, Any] = {}

    def sum_files(self, files: list[tuple[str, str]],
                  parse: Any) -> tuple[list[float], list[_Family]]:
        """Sum ``files`` (``(path, kind)``); return the sums by slot and the plan to render.

        ``parse`` turns one stored JSON key into the collector's parsed key
        (metric, sample name, labels, le, help), cached by the caller.
        """
        if len(self._series) > self._max:
            self._reset()
        read: list[tuple[_FileLayout, Any]] = []
        seen: set[int] = set()
        layouts = self._layouts
        for path, kind in files:
            try:
                layout, doubles = self._read(path, kind, layouts.get(path), parse)
            except (FileNotFoundError, RuntimeError):
                continue
            layouts[path] = layout
            read.append((layout, doubles))
            seen.update(layout.slots)
        listed = {path for path, _ in files}
        for gone in [p for p in layouts if p not in listed]:
            del layouts[gone]
        sums = [0.0] * len(self._series)
        for layout, doubles in read:
            if not layout.slots:
                continue
            values = layout.getter(doubles)
            if len(layout.slots) == 1:
                values = (values,)
            for slot, value in zip(layout.slots, values, strict=True):
                sums[slot] += value
        if seen != self._plan_for:
            self._plan = self._build_plan(seen)
            self._plan_for = frozenset(seen)
        return sums, self._plan

    def _read(self, path: str, kind: str, layout: _FileLayout | None,
              parse: Any) -> tuple[_FileLayout, Any]:
        from spyglass.metrics.collector import _read_all_values, read_db

        inode, used, data = read_db(path)
        if used == 0:
            return _FileLayout(inode), memoryview(b"").cast("d")
        used = min(used, len(data))
        if layout is None or layout.inode != inode or layout.upto > used:
            layout = _FileLayout(inode)  # new, replaced (archive rewrite, reused pid) or shrunk
        if layout.upto < used:
            slot_of = self._slot_of
            for key, _value, _ts, pos in _read_all_values(data[:used], used, layout.upto):
                metric, name, labels, le, help_text = parse(key)
                skey = (kind, metric, name, labels, le)
                slot = slot_of.get(skey)
                if slot is None:
                    slot = slot_of[skey] = len(self._series)
                    self._series.append((skey, help_text))
                layout.positions.append(pos // 8)
                layout.slots.append(slot)
            layout.upto = used
            layout.getter = itemgetter(*layout.positions) if layout.positions else None
        whole = len(data) - len(data) % 8
        return layout, memoryview(data)[:whole].cast("d")

    def _build_plan(self, seen: set[int]) -> list[_Family]:
        """Families in order of their first series ever seen, samples before buckets, buckets
        grouped per label set in first-seen order and sorted by ``le``."""
        from spyglass.metrics.collector import _le_text, _series

        texts = self._texts
        families: dict[tuple[str, str], _Family] = {}
        groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Group] = {}
        for slot in sorted(seen):
            (kind, metric, name, labels, le), help_text = self._series[slot]
            fam = families.get((kind, metric))
            if fam is None:
                fam = families[(kind, metric)] = _Family(kind, metric, help_text)
            if le is None:
                prefix = texts.get(slot)
                if prefix is None:
                    prefix = texts[slot] = _series(name, labels, False)
                fam.samples.append(slot)
                fam.sample_keys.append((name, labels))
                fam.prefixes.append(prefix)
                continue
            group = groups.get((kind, metric, labels))
            if group is None:
                group = groups[(kind, metric, labels)] = _Group(labels)
                count_key = ("count", kind, metric, labels)
                count = texts.get(count_key)
                if count is None:
                    count = texts[count_key] = _series(metric + "_count", labels, False)
                group.count_prefix = count
                fam.groups.append(group)
            group.buckets.append(slot)
        for group in groups.values():
            group.buckets.sort(key=lambda s: self._series[s][0][4] or 0.0)
            for slot in group.buckets:
                cached = texts.get(slot)
                if cached is None:
                    (_, metric, name, labels, le), _ = self._series[slot]
                    assert le is not None
                    full = tuple(sorted((*labels, ("le", _le_text(le)))))
                    cached = texts[slot] = (_series(name, full, False), (name, full))
                group.prefixes.append(cached[0])
                group.exemplar_keys.append(cached[1])
        return list(families.values())


def render_families(out: list[str], sums: list[float], plan: list[_Family], om: bool,
                    headers: Any, exemplar: Any, fmt: Any) -> None:
    """Append the exposition lines of ``plan`` to ``out``. ``headers(family, om)`` gives the
    HELP/TYPE lines, ``exemplar(key)`` the exemplar suffix or "" (None: no exemplars)."""
    for fam in plan:
        out.append(headers(fam.name, fam.kind, fam.help, om))
        for slot, prefix in zip(fam.samples, fam.prefixes, strict=True):
            out.append(f"{prefix} {fmt(sums[slot])}\n")
        for group in fam.groups:
            total = 0.0
            if exemplar is None:
                for slot, prefix in zip(group.buckets, group.prefixes, strict=True):
                    total += sums[slot]
                    out.append(f"{prefix} {fmt(total)}\n")
            else:
                for slot, prefix, ex_key in zip(group.buckets, group.prefixes,
                                                group.exemplar_keys, strict=True):
                    total += sums[slot]
                    out.append(f"{prefix} {fmt(total)}{exemplar(ex_key)}\n")
            out.append(f"{group.count_prefix} {fmt(total)}\n")


def metrics_of(sums: list[float], plan: list[_Family], exemplar: Any) -> list[Any]:
    """The same series as prometheus_client ``Metric`` objects, in the same order (for
    ``collect()``); ``exemplar(key)`` gives an ``Exemplar`` or None."""
    from prometheus_client.core import Metric
    from prometheus_client.samples import Sample
    metrics = []
    for fam in plan:
        metric = Metric(fam.name, fam.help, fam.kind)
        add = metric.samples.append
        for slot, (name, labels) in zip(fam.samples, fam.sample_keys, strict=True):
            add(Sample(name, dict(labels), sums[slot]))
        for group in fam.groups:
            total = 0.0
            for slot, (name, full) in zip(group.buckets, group.exemplar_keys, strict=True):
                total += sums[slot]
                ex = exemplar((name, full)) if exemplar else None
                add(Sample(name, {**dict(group.labels), "le": dict(full)["le"]}, total,
                           None, ex))
            add(Sample(fam.name + "_count", dict(group.labels), total))
        metrics.append(metric)
    return metrics
