"""How numbers read in the report: one formatter per kind of quantity, shared by tables, claims and text."""

from __future__ import annotations

import math

import pandas as pd

from study.report.tables import DIFFERENCE_BOUNDS, verdict_kind
from study.stats import clip_interval


def missing(value) -> bool:
    """None, pd.NA or NaN: shown as a dash."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


_missing = missing

#: CSS class of a verdict cell per kind of verdict (see `tables.verdict_kind`).
VERDICT_CLASSES = {"better": "good", "worse": "bad", "equivalent": "equiv", "inconclusive": "muted",
                   "insufficient": "muted"}


def verdict_class(verdict, diff=None, mde=None) -> str:
    """How a comparison's verdict is styled: better good, worse bad, equivalent its own, the rest muted.

    "Equivalent" reads as agreement, so it keeps its colour only when |Δ| is within the MDE (when both
    are given): a gap larger than the design could detect is never coloured as agreement.
    """
    kind = verdict_kind(verdict)
    if kind == "equivalent" and not agrees(diff, mde):
        return "muted"
    return VERDICT_CLASSES[kind]


def agrees(diff, mde) -> bool:
    """Whether a difference may be shown as agreement: |Δ| ≤ MDE, or either unknown (nothing to contradict it)."""
    if missing(diff) or missing(mde):
        return True
    return abs(float(diff)) <= float(mde)


def pts(value, signed: bool = False) -> str:
    """Accuracy in percentage points, two decimals (the paper's precision)."""
    if _missing(value):
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def interval(low, high, signed: bool = False) -> str:
    """A confidence interval "[low, high]", or a dash when it could not be computed (n < 2)."""
    if _missing(low) or _missing(high):
        return "–"
    return f"[{pts(low, signed)}, {pts(high, signed)}]"


#: Marks an interval that was cut to the [0, 100] accuracy scale (explained beside each table that shows one).
CLIPPED = "*"


def accuracy_interval(low, high, clipped=False) -> str:
    """An accuracy interval in points, marked when it was cut to [0, 100] (`tables.ACCURACY_BOUNDS`)."""
    text = interval(low, high)
    return text + CLIPPED if text != "–" and not missing(clipped) and bool(clipped) else text


def difference_interval(low, high) -> str:
    """A signed interval of a difference of accuracies, cut to [-100, 100] and marked when it reached beyond."""
    low, high, clipped = clip_interval(low, high, DIFFERENCE_BOUNDS)
    text = interval(low, high, signed=True)
    return text + CLIPPED if clipped and text != "–" else text


def mde(value) -> str:
    """A minimum detectable difference in points; beyond 100 points it is "> 100" (nothing is detectable)."""
    if not missing(value) and value > 100:
        return "> 100"
    return pts(value)


def p_value(value) -> str:
    """Small p-values in scientific notation, others with three decimals."""
    if _missing(value):
        return "–"
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def count(value) -> str:
    """An integer count with thousands separators (parameters, rows)."""
    if _missing(value):
        return "–"
    return f"{value:,.0f}"


def mega(value) -> str:
    """A large count in millions, two decimals (FLOPs)."""
    if _missing(value):
        return "–"
    return f"{value / 1e6:,.2f}"


def rate(value) -> str:
    """A throughput or memory figure, no decimals."""
    if _missing(value):
        return "–"
    return f"{value:,.0f}"


def duration(seconds) -> str:
    """Wall time as "1 h 02 min" / "3 min 05 s" / "12.3 s"."""
    if _missing(seconds):
        return "–"
    seconds = float(seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def text(value) -> str:
    """Any cell value as text, missing values as a dash."""
    if _missing(value):
        return "–"
    return str(value)
