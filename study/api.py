"""The kit's Python API: what a notebook needs from a finished run, and a network's cost.

- `load_results(runs_dir)`: every row of a runs directory as one tidy DataFrame, provenance columns included;
- `compare(frame)`: the contrasts, intervals and verdicts the report shows (variant − reference, per axis);
- `build_model(name_or_spec)` and `profile_model(name_or_spec)`: a network, and its params, FLOPs and throughput.

docs/api.md has a worked example (run by the test suite). Everything here is importable from `study`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from study import stats
from study.models import build_model
from study.results import COLUMNS, load_table

__all__ = ["build_model", "compare", "load_results", "profile_model"]

#: The equivalence margin of rows that do not record their study's (points).
DEFAULT_MARGIN = 3.0


def load_results(runs_dir: str | os.PathLike = "runs") -> pd.DataFrame:
    """Every study's rows under `runs_dir` as one DataFrame, one row per trained cell (the newest where an edited
    study file retrained it), with every column of `study.results.SCHEMA` a row carries: the result, the network's
    cost, its scale (`scale`, `rung`), and its provenance (commit, diff hash, versions, device, threads)."""
    paths = sorted(Path(runs_dir).glob("*/results.jsonl"))
    frames = [load_table(p) for p in paths]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*COLUMNS, "rung"])


def compare(frame: pd.DataFrame, *, metric: str = "test_accuracy", margin: float | None = None,
            by: Sequence[str] = ("dataset", "degradation")) -> pd.DataFrame:
    """Each study's variants against its axis's reference, as the report computes them: Δ = variant − reference in
    points, paired by seed, Holm-adjusted within each (study, axis, `by` group, rung) family, with the 95 % CI, the
    MDE and the verdict (better / worse / equivalent within ±margin / inconclusive). `margin` defaults to each
    study's own (recorded on its rows), else ±3 points. One row per contrast: study, then `stats.compare_axis`'s
    columns."""
    out = []
    for study, rows in frame.groupby("study", sort=False):
        study_margin = margin if margin is not None else _margin(rows)
        for axis in rows.loc[rows["status"] == "ok", "axis"].dropna().unique():
            result = stats.compare_axis(rows, str(axis), metric=metric, by=by, margin=study_margin)
            if len(result):
                out.append(result.assign(study=study))
    if not out:
        return pd.DataFrame(columns=["study", "axis", *by])
    result = pd.concat(out, ignore_index=True)
    return result[["study", *[c for c in result.columns if c != "study"]]]


def _margin(rows: pd.DataFrame) -> float:
    values = pd.to_numeric(rows.get("equivalence_margin", pd.Series(dtype=float)), errors="coerce").dropna().unique()
    return float(values[0]) if len(values) == 1 and math.isfinite(values[0]) and values[0] > 0 else DEFAULT_MARGIN


def profile_model(name_or_spec: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """A network's params, FLOPs (and the counter that gave them) and, unless `timing=False`, its training and
    inference throughput and peak memory: `study.measure.profile_model` (the same as `study profile --json`)."""
    from study.measure import profile_model as profile

    return profile(str(name_or_spec), **options)
