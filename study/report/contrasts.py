"""A study's contrasts, computed once: each variant − the reference (in accuracy points), per axis, dataset,
degradation and rung, Holm across an axis's variants (`stats.compare_axis`). The index, the study page and
`reports/contrasts.csv` all read them from here, with that one sign convention.

Which studies have contrasts is their kind's to say (`StudyKind.contrasts`, from study.json's `kind`); the
margin and the family level are the study's own (study.json), else ±3 points at α = 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

from study import stats
from study.kinds.base import StudyKind
from study.kinds.registry import get_kind
from study.report import tables

DEFAULT_MARGIN = 3.0
T = TypeVar("T")


def equivalence_margin(provenance: dict) -> float:
    """The study's equivalence margin in points (study.json), else the default ±3."""
    try:
        value = float(provenance.get("equivalence_margin", DEFAULT_MARGIN))
    except (TypeError, ValueError):
        return DEFAULT_MARGIN
    return value if math.isfinite(value) and value > 0 else DEFAULT_MARGIN


def family_alpha(study) -> float:
    """The family level a study's verdicts are judged at: 0.05, or a `--seeds auto` run's `sequential_alpha`
    (recorded in study.json), so its repeated looks cost what they should."""
    try:
        value = float(study.provenance.get("sequential_alpha", 0.05))
    except (TypeError, ValueError):
        return 0.05
    return value if 0 < value <= 0.05 else 0.05


def study_kind(study) -> str:
    """The study's kind as its run recorded it (study.json, else its rows' `kind`), else "grid" (a run older than
    both)."""
    kind = study.provenance.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    if "kind" in study.table.columns:
        kinds = study.table["kind"].dropna().astype(str)
        if len(kinds):
            return str(kinds.iloc[0])
    return "grid"


def kind_of(study) -> StudyKind:
    """The `StudyKind` that reports a study (one line naming the known kinds when its kind is unknown here)."""
    return get_kind(study_kind(study))


def axes(study) -> list[str]:
    """The axes whose variants are compared with the reference: the study's own axis, else (an older run that
    recorded several) every axis of its rows with a reference; none for a kind without contrasts."""
    if not len(study.table) or not kind_of(study).contrasts:
        return []
    axis = study.provenance.get("axis")
    rows = tables.ok_rows(study.table)
    present = set(rows["axis"].dropna().astype(str))
    if isinstance(axis, str) and axis in present:
        return [axis]
    return tables.ablation_axes(study.table)


def once(study, key: str, compute: Callable[[], T]) -> T:
    """`compute()` of a study, computed once and kept on it (`StudyRun.derived`): the index, the page and the other
    studies' scale checks read the same result (a study object that keeps nothing computes it each time)."""
    cache = getattr(study, "derived", None)
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def by_axis(study) -> dict[str, pd.DataFrame | str]:
    """Every axis's contrasts (`stats.compare_axis`, sorted by the spec's variant order and the ladder's rungs), or
    why the axis could not be compared; computed once per study and kept on it."""
    return once(study, "contrasts", lambda: _by_axis(study))


def _by_axis(study) -> dict[str, pd.DataFrame | str]:
    out: dict[str, pd.DataFrame | str] = {}
    for axis in axes(study):
        try:
            result = stats.compare_axis(study.table, axis, margin=equivalence_margin(study.provenance),
                                        alpha=family_alpha(study))
        except ValueError as err:
            out[axis] = f"Could not compare this axis: {err}"
            continue
        out[axis] = ordered(result, study, axis) if len(result) else (
            "Nothing to compare on this axis yet: it needs ok rows of the reference (is_reference) and of at least "
            "one other variant.")
    return out


def ordered(result: pd.DataFrame, study, axis: str) -> pd.DataFrame:
    """Rows in the study file's variant order (study.json), then the datasets' and the ladder's rungs' order."""
    variants = study.provenance.get("variants")
    order = list(variants) if isinstance(variants, dict) and variants else []
    order += [v for v in tables.axis_points(study.table, axis)["variant"].astype(str) if v not in order]
    rungs = {"rung": rung_order(study)} if "rung" in result.columns else {}  # a ladder: each contrast at its rungs
    return tables.sort_like(result, dataset=tables.dataset_order(result["dataset"].astype(str)),
                            variant=list(dict.fromkeys(order)), **rungs)


def rung_order(study) -> list[str]:
    """The ladder's rung labels, smallest first (study.json's order, else the rows' by size)."""
    rungs = study.provenance.get("rungs")
    if isinstance(rungs, list) and rungs and all(isinstance(r, dict) for r in rungs):
        return [str(r.get("rung")) for r in rungs]
    rows = study.table[study.table["rung"].fillna("").astype(str).ne("")] if "rung" in study.table.columns else study.table.iloc[0:0]
    return sorted(rows["rung"].astype(str).unique(), key=lambda r: stats.rung_size(rows[rows["rung"] == r]))


def scale_of(study) -> str:
    """Where a study without a ladder measured its verdicts: "450 steps, width ×0.25" (study.json, else its rows)."""
    scale = study.provenance.get("scale")
    if isinstance(scale, str) and scale:
        return scale
    values = study.table["scale"].dropna().astype(str).unique() if "scale" in study.table.columns else []
    return " | ".join(sorted(values)) if len(values) else f"the {study.profile} profile's budget and width"


#: Columns of `baselines_vs_lrnet`: the group, then `stats.Comparison`'s fields (variant = the baseline).
BASELINE_COLUMNS = ["dataset", "protocol", "variant", "reference", "n_variant", "n_reference", "mean_variant",
                    "mean_reference", "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "mde", "paired", "verdict",
                    "margin", "p_equivalence_adjusted"]


def baselines_vs_lrnet(table: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Table I's family: each baseline − LR-Net per dataset and protocol (paired by seed), Holm across the baselines
    of a dataset; the same sign as every other contrast (variant − reference, LR-Net the reference), so a baseline
    "worse" is LR-Net ahead. The paper's claims read it (`claims`)."""
    seeds = tables.per_seed(tables.main_rows(table), ["model", "dataset", "protocol"])
    records = []
    for (dataset, protocol), group in seeds.groupby(["dataset", "protocol"], sort=False):
        baselines = [m for m in tables.model_order(group["model"]) if tables.is_baseline(m)]
        if tables.LRNET not in set(group["model"]) or not baselines:
            continue
        groups = {m: (group.loc[group["model"] == m, "value"].to_numpy(), group.loc[group["model"] == m, "seed"].to_numpy())
                  for m in [tables.LRNET, *baselines]}
        for c in stats.compare_family(groups, reference=tables.LRNET, margin=margin):
            records.append({"dataset": dataset, "protocol": protocol, **c.as_dict()})
    out = pd.DataFrame(records).reindex(columns=BASELINE_COLUMNS)
    if out.empty:
        return out
    return tables.sort_like(out, dataset=tables.dataset_order(out["dataset"]), variant=tables.model_order(out["variant"]))
