"""The metric registry: every score is one registered unit that declares what the rest of
mgbench needs to know about it.

A :class:`Metric` is a function ``compute(ctx) -> {column: value}`` (``ctx`` an
:class:`~mgbench.evaluate.EvalContext`) with its name, the columns it writes (each with its
direction: higher / lower / none), the report section they go in, their place in tables, and
what it needs (:data:`FEATURES`, :data:`LPIPS`, :data:`MODEL`, …), so that the evaluation builds
only what the selected metrics use. Adding a metric touches one module and its test; the
report, the calibration check and ``compare`` learn about its columns from here. In the spirit
of NVlabs stylegan3's ``metrics/metric_main.py`` (registered functions fixing a protocol).

An outside package adds a metric through the entry-point group ``mgbench.metrics`` (its value a
:class:`Metric`, as the built-in ones in :mod:`mgbench.metrics.catalog`), or a ``--plugin``
module decorates a function with :func:`register_metric`.

This module imports nothing heavy (no torch): the report layer reads directions from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mgbench.errors import UsageError, unknown_name
from mgbench.plugins import Registry, origin

if TYPE_CHECKING:
    from mgbench.evaluate import EvalContext

ENTRY_POINT_GROUP = "mgbench.metrics"

HIGHER, LOWER = "higher", "lower"
# What a metric needs besides the samples and the reference images; the evaluation builds only these.
FEATURES = "features"  # the one feature pass over the samples, and the reference's cached features
LPIPS = "lpips"  # the LPIPS network
MODEL = "model"  # the trained model itself (reconstructions, intermediate outputs)
LABELS = "labels"  # the class labels a conditional model was asked for
TRAIN = "train"  # the training split (memorisation)
NEEDS = (FEATURES, LPIPS, MODEL, LABELS, TRAIN)

# Report sections in the order the tables show them; a plugin may add its own (shown before Cost).
QUALITY = "Sample quality"
PER_SCALE = "Per scale: MS-SWD per pyramid level, modes and their balance"
TASK = "Conditional accuracy and reconstruction"
OTHER = "Other scores"
COST = "Cost"
SECTIONS = [QUALITY, PER_SCALE, TASK]


@dataclass(frozen=True)
class Column:
    """A column a metric writes: a name, or a pattern with placeholders (``swd_{level}px``).

    ``shown``: in the report's tables (spreads such as ``is_std`` stay in summary.csv only);
    ``console``: also in the console's one-screen table; ``plotted``: in the key-metrics figure.
    """

    name: str
    direction: str | None = None
    shown: bool = True
    console: bool = False
    plotted: bool = False

    def __post_init__(self) -> None:
        if self.direction not in (None, HIGHER, LOWER):
            raise UsageError(f"column {self.name!r}: direction must be 'higher', 'lower' or None")

    def match(self, column: str) -> dict[str, str] | None:
        """The placeholder values if ``column`` is this column, else None."""
        found = _pattern(self.name).fullmatch(column)
        return found.groupdict() if found else None


def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", name)  # text, placeholder, text, ...
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[A-Za-z0-9]+?)" for i, p in enumerate(parts))
    return re.compile(regex)


@dataclass(frozen=True)
class Metric:
    """One registered score. ``order``: where its columns go among the other metrics' in tables;
    ``column_key``: their order within it (default: the order of ``columns``, then the
    placeholder values); ``default``: computed when a run selects no metrics."""

    name: str
    compute: Callable[[EvalContext], dict[str, Any]]
    columns: tuple[Column, ...]
    section: str = OTHER
    needs: frozenset[str] = frozenset()
    order: float = 1000.0
    default: bool = True
    description: str = ""
    column_key: Callable[[str], tuple] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise UsageError(f"metric {self.name!r} needs {sorted(unknown)}, which mgbench does not provide",
                             f"valid needs: {', '.join(NEEDS)}")

    def owns(self, column: str) -> Column | None:
        return next((c for c in self.columns if c.match(column) is not None), None)

    def sort_key(self, column: str) -> tuple:
        if self.column_key is not None:
            return self.column_key(column)
        for i, c in enumerate(self.columns):
            values = c.match(column)
            if values is not None:
                return (i, *values.values())
        return (len(self.columns), column)


def _check(name: str, unit: object) -> None:
    if not isinstance(unit, Metric):
        raise UsageError(f"metric {name!r}: {origin(unit)} is not an mgbench Metric",
                         "build it with @mgbench.metrics.registry.metric(...) or register_metric(...)")
    if unit.name != name:
        raise UsageError(f"metric registered as {name!r} calls itself {unit.name!r}",
                         "use the same name in the entry point and in the Metric")


METRICS: Registry[Metric] = Registry("metric", ENTRY_POINT_GROUP, _check)


def metric(name: str, *, columns: Sequence[Column], section: str = OTHER, needs: Iterable[str] = (),
           order: float = 1000.0, default: bool = True, column_key: Callable[[str], tuple] | None = None
           ) -> Callable[[Callable[[EvalContext], dict[str, Any]]], Metric]:
    """Decorator: a function ``compute(ctx) -> {column: value}`` becomes a :class:`Metric` (not
    yet registered: an entry point or :func:`register_metric` does that). Its docstring is the
    metric's description."""

    def build(compute: Callable[[EvalContext], dict[str, Any]]) -> Metric:
        return Metric(name, compute, tuple(columns), section, frozenset(needs), order, default,
                      (compute.__doc__ or "").strip().split("\n")[0], column_key)

    return build


def register_metric(name: str, **kwargs: Any) -> Callable[[Callable[[EvalContext], dict[str, Any]]], Metric]:
    """Like :func:`metric`, and registers it: for a ``--plugin`` module."""

    def build(compute: Callable[[EvalContext], dict[str, Any]]) -> Metric:
        unit = metric(name, **kwargs)(compute)
        METRICS.add(name, unit)
        return unit

    return build


def list_metrics(pattern: str = "*") -> list[str]:
    return METRICS.names(pattern)


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


def select(names: Sequence[str] | None) -> list[Metric]:
    """The metrics a run computes, in table order: ``names``, or every metric with ``default``."""
    if names is None:
        chosen = [METRICS.get(n) for n in METRICS.names()]
        chosen = [m for m in chosen if m.default]
    else:
        chosen = []
        for n in names:
            if n not in METRICS:
                raise unknown_name("metric", n, METRICS.names())
            chosen.append(METRICS.get(n))
    return sorted(chosen, key=lambda m: (m.order, m.name))


def owner(column: str) -> tuple[Metric, Column] | None:
    """The registered metric that writes ``column``, and its declaration; None for other columns."""
    for name in METRICS.names():
        unit = METRICS.get(name)
        declared = unit.owns(column)
        if declared is not None:
            return unit, declared
    return None


def direction(column: str) -> str | None:
    """``"higher"``, ``"lower"`` or None (no direction, or not a score) for a results column."""
    found = owner(column)
    return found[1].direction if found else None
