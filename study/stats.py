"""Statistics that keep ablation studies honest: CIs, paired/Welch tests, Holm, MDE, adaptive seeds.

Quick CPU trials have a seed-to-seed SD of about 2 points, so with 3-5 seeds only differences of
4-5 points are visible. Every comparison therefore carries its CI, its Holm-adjusted p-value and the
minimum detectable difference (MDE), and anything not significant after Holm is reported as
"no detectable difference (MDE x.x pts)" rather than as a small win or loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

__all__ = [
    "Comparison",
    "SeedsDecision",
    "ci_half_width",
    "compare",
    "compare_axis",
    "compare_family",
    "holm",
    "mean_ci",
    "seeds_decision",
    "typical_mde",
]

INSUFFICIENT = "insufficient data (n<2)"
#: Names the reference variant may carry when no row of an axis is flagged `is_reference`.
REFERENCE_NAMES: tuple[str, ...] = ("paper", "lrnet_paper")


@dataclass(frozen=True)
class Comparison:
    """One variant-vs-reference comparison of a metric (diff = variant - reference)."""

    variant: str
    reference: str
    n_variant: int
    n_reference: int
    mean_variant: float
    mean_reference: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    mde: float
    paired: bool
    verdict: str

    def as_dict(self) -> dict:
        """The comparison as a plain dict (one row of a tidy table)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedsDecision:
    """Whether a study should run more seeds, and why."""

    more_seeds: bool
    reason: str
    half_widths: dict[str, float]


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean, t-interval bounds and n of the finite values (n<2 gives nan bounds)."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    sem = float(stats.sem(x))
    if sem == 0:  # identical runs: scipy refuses scale 0, but the interval is just the point
        return mean, mean, mean, n
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


def ci_half_width(values, confidence: float = 0.95) -> float:
    """Half-width of the t-interval of the mean (nan for n<2)."""
    _, low, high, _ = mean_ci(values, confidence)
    return (high - low) / 2


def holm(p_values) -> list[float]:
    """Holm step-down adjusted p-values; nan entries stay nan and do not count as tests."""
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


def compare(
    variant_values,
    reference_values,
    *,
    variant_seeds=None,
    reference_seeds=None,
    alpha: float = 0.05,
    power: float = 0.8,
    variant: str = "variant",
    reference: str = "reference",
) -> Comparison:
    """Compare a variant with the reference: paired by seed when >= 2 seeds are shared, else Welch.

    The CI is at 1 - alpha (95% by default). When paired, n and the means are those of the paired
    runs only, so `diff` is always `mean_variant - mean_reference`.
    """
    v, vs = _clean(variant_values, variant_seeds)
    r, rs = _clean(reference_values, reference_seeds)
    if vs is not None and rs is not None:
        v_by, r_by = _by_seed(v, vs), _by_seed(r, rs)
        shared = [s for s in v_by if s in r_by]
        # Runs sharing a seed share data order and init, so pairing removes that common noise.
        if len(shared) >= 2:
            return _paired(np.array([v_by[s] for s in shared]), np.array([r_by[s] for s in shared]),
                           alpha, power, variant, reference)
    return _welch(v, r, alpha, power, variant, reference)


def compare_family(
    groups: Mapping[str, Any], reference: str, *, alpha: float = 0.05, power: float = 0.8
) -> list[Comparison]:
    """Compare every group with the reference group, Holm-adjusting p-values across the family.

    Each group is `(values, seeds)` (seeds may be None) or just a sequence of values.
    """
    if reference not in groups:
        raise KeyError(f"reference group {reference!r} not in {list(groups)}")
    ref_values, ref_seeds = _split_group(groups[reference])
    raw = []
    for name, group in groups.items():
        if name == reference:
            continue
        values, seeds = _split_group(group)
        raw.append(compare(values, ref_values, variant_seeds=seeds, reference_seeds=ref_seeds,
                           alpha=alpha, power=power, variant=str(name), reference=str(reference)))
    adjusted = holm([c.p_value for c in raw])
    return [_with_adjusted(c, p, alpha) for c, p in zip(raw, adjusted, strict=True)]


def compare_axis(
    table: pd.DataFrame,
    axis: str,
    *,
    metric: str = "test_accuracy",
    by: Sequence[str] = ("dataset", "degradation"),
    scale: float = 100.0,
) -> pd.DataFrame:
    """Every variant of one axis vs its reference, per `by` group, Holm across that group's variants.

    Uses rows with status "ok" only; values are multiplied by `scale` (fractions -> points). Returns
    one row per comparison: axis, the `by` columns, then the `Comparison` fields. A variant whose
    group has no reference rows gets an "insufficient data" row rather than silently vanishing.
    An axis with no reference at all returns an empty frame.
    """
    by = list(by)
    columns = ["axis", *by, *(f.name for f in dataclasses.fields(Comparison))]
    rows = table[(table["axis"] == axis) & (table["status"] == "ok")]
    rows = rows[pd.to_numeric(rows[metric], errors="coerce").notna()]
    ref_name = _reference_name(rows)
    if ref_name is None:
        return pd.DataFrame(columns=columns)
    # Runs pair when they share protocol, fold and seed (same split, data order and init).
    pair_cols = [c for c in ("protocol", "fold") if c in rows.columns]
    out = []
    for key, cell in _groups(rows, by):
        seeds = [None if _missing(s) else "|".join(map(str, [*p, s]))
                 for p, s in zip(cell[pair_cols].itertuples(index=False, name=None),
                                 cell["seed"], strict=True)]
        cell = cell.assign(_value=pd.to_numeric(cell[metric]).astype(float) * scale, _seed=seeds,
                           _variant=cell["variant"].astype(str))
        groups = {}
        for name in [ref_name, *sorted(set(cell["_variant"]) - {ref_name})]:
            sel = cell["_variant"] == name
            groups[name] = (cell.loc[sel, "_value"].to_numpy(), cell.loc[sel, "_seed"].tolist())
        for c in compare_family(groups, ref_name):
            out.append({"axis": axis, **dict(zip(by, key, strict=True)), **c.as_dict()})
    return pd.DataFrame(out, columns=columns)


def typical_mde(
    table: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    scale: float = 100.0,
    n: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Two-sample MDE (in scaled units) for the pooled within-cell SD and the typical seeds per cell.

    Cells are (axis, variant, dataset, degradation) over rows with status "ok"; the typical n is the
    median cell size rounded down (conservative) unless `n` is given.
    """
    rows = table[table["status"] == "ok"]
    values = pd.to_numeric(rows[metric], errors="coerce").astype(float) * scale
    rows = rows.assign(_value=values)[values.notna()]
    cell_cols = [c for c in ("axis", "variant", "dataset", "degradation") if c in rows.columns]
    cells = rows.groupby(cell_cols, dropna=False)["_value"].agg(["count", "var"])
    if n is None:
        if cells.empty:
            return math.nan
        n = int(math.floor(cells["count"].median()))
    multi = cells[cells["count"] >= 2]
    dof = float((multi["count"] - 1).sum())
    if n < 2 or dof == 0:
        return math.nan
    pooled_sd = math.sqrt(float(((multi["count"] - 1) * multi["var"]).sum()) / dof)
    return _mde(pooled_sd, int(n), 1.0, alpha, power, paired=False)


def seeds_decision(
    groups: Mapping[str, Sequence[float]],
    reference: str,
    *,
    target_half_width: float = 1.0,
    max_seeds: int = 10,
    min_seeds: int = 3,
    budget_exhausted: bool = False,
) -> SeedsDecision:
    """Decide whether a study needs more seeds, from each variant-vs-reference CI half-width.

    Groups of equal length are paired by position (the runner uses one seed list for every cell),
    otherwise Welch. `reason` is "<token>: detail" with token budget, ci-target, max-seeds,
    min-seeds, or ci-wide (more seeds needed because some CI is still wider than the target).
    """
    if reference not in groups:
        raise KeyError(f"reference group {reference!r} not in {list(groups)}")
    ref = np.asarray(groups[reference], dtype=float).ravel()
    half_widths = {}
    for name, values in groups.items():
        if name == reference:
            continue
        v = np.asarray(values, dtype=float).ravel()
        if len(v) == len(ref):  # position i is seed i on both sides: pair (nan diffs drop out)
            half_widths[str(name)] = ci_half_width(v - ref)
        else:
            half_widths[str(name)] = _welch_half_width(_finite(v), _finite(ref))
    n = min(len(_finite(g)) for g in groups.values())
    widest = max(half_widths.values(), default=math.nan, key=lambda h: math.inf if math.isnan(h) else h)
    if budget_exhausted:
        return SeedsDecision(False, "budget", half_widths)
    if n >= min_seeds and half_widths and all(h <= target_half_width for h in half_widths.values()):
        return SeedsDecision(
            False, f"ci-target: every comparison's CI half-width ≤ {target_half_width:.1f} pts",
            half_widths)
    if n >= max_seeds:
        return SeedsDecision(False, f"max-seeds: reached {max_seeds}", half_widths)
    if n < min_seeds:
        return SeedsDecision(True, f"min-seeds: have {n}, need {min_seeds}", half_widths)
    return SeedsDecision(
        True, f"ci-wide: widest CI half-width {widest:.1f} pts > {target_half_width:.1f} pts",
        half_widths)


# --- internals ---------------------------------------------------------------------------------


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _clean(values, seeds) -> tuple[np.ndarray, list | None]:
    """Finite values, and their seeds (kept aligned) when given."""
    x = np.asarray(values, dtype=float).ravel()
    keep = np.isfinite(x)
    if seeds is None:
        return x[keep], None
    seeds = list(seeds)
    if len(seeds) != len(x):
        raise ValueError(f"{len(x)} values but {len(seeds)} seeds")
    return x[keep], [s for s, k in zip(seeds, keep, strict=True) if k]


def _by_seed(values: np.ndarray, seeds: list) -> dict[Hashable, float]:
    """Mean value per seed (repeats of a seed are averaged; runs without a seed cannot pair)."""
    acc: dict[Hashable, list[float]] = {}
    for value, seed in zip(values, seeds, strict=True):
        if not _missing(seed):
            acc.setdefault(seed, []).append(float(value))
    return {s: float(np.mean(v)) for s, v in acc.items()}


def _split_group(group) -> tuple[Any, Any]:
    """`(values, seeds)` or bare values -> (values, seeds or None)."""
    if isinstance(group, tuple) and len(group) == 2 and (group[1] is None or np.ndim(group[0]) > 0):
        return group
    return group, None


@functools.lru_cache(maxsize=512)
def _effect_size(n1: int, ratio: float, alpha: float, power: float, paired: bool) -> float:
    # Depends only on the design, not the data: caching keeps Monte-Carlo checks fast.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if paired:
                d = TTestPower().solve_power(nobs=n1, alpha=alpha, power=power,
                                             alternative="two-sided")
            else:
                d = TTestIndPower().solve_power(nobs1=n1, ratio=ratio, alpha=alpha, power=power,
                                                alternative="two-sided")
        return float(np.squeeze(d))
    except (ValueError, RuntimeError, ArithmeticError):
        return math.nan


def _mde(sd: float, n1: int, ratio: float, alpha: float, power: float, *, paired: bool) -> float:
    """Smallest true difference detected with `power` at `alpha`, in the units of `sd`."""
    if n1 < 2 or not np.isfinite(sd) or sd <= 0:
        return math.nan
    return _effect_size(int(n1), float(ratio), float(alpha), float(power), paired) * sd


def _verdict(diff: float, p_adjusted: float, mde: float, alpha: float, insufficient: bool) -> str:
    if insufficient:
        return INSUFFICIENT
    if np.isfinite(p_adjusted) and p_adjusted < alpha and diff != 0:
        return "better" if diff > 0 else "worse"
    return f"no detectable difference (MDE {mde:.1f} pts)"


def _with_adjusted(c: Comparison, p_adjusted: float, alpha: float) -> Comparison:
    insufficient = min(c.n_variant, c.n_reference) < 2
    return dataclasses.replace(c, p_adjusted=p_adjusted,
                               verdict=_verdict(c.diff, p_adjusted, c.mde, alpha, insufficient))


def _quiet_test(fn, *args, **kwargs):
    # scipy warns on (near-)constant samples; the nan/inf it returns is handled by the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _paired(v, r, alpha, power, variant, reference) -> Comparison:
    n = len(v)
    d = v - r
    res = _quiet_test(stats.ttest_rel, v, r)
    p = float(res.pvalue)
    if np.std(d) == 0:  # identical differences: the interval collapses to the point
        low = high = float(d.mean())
    else:
        ci = res.confidence_interval(1 - alpha)
        low, high = float(ci.low), float(ci.high)
    mde = _mde(float(np.std(d, ddof=1)), n, 1.0, alpha, power, paired=True)
    return Comparison(variant, reference, n, n, float(v.mean()), float(r.mean()), float(d.mean()),
                      low, high, p, p, mde, True, _verdict(float(d.mean()), p, mde, alpha, False))


def _welch(v, r, alpha, power, variant, reference) -> Comparison:
    nv, nr = len(v), len(r)
    mv = float(v.mean()) if nv else math.nan
    mr = float(r.mean()) if nr else math.nan
    diff = mv - mr
    if min(nv, nr) < 2:
        return Comparison(variant, reference, nv, nr, mv, mr, diff, math.nan, math.nan, math.nan,
                          math.nan, math.nan, False, INSUFFICIENT)
    res = _quiet_test(stats.ttest_ind, v, r, equal_var=False)
    p = float(res.pvalue)
    if v.var() == 0 and r.var() == 0:  # no spread at all: Welch df is undefined
        low = high = diff
    else:
        ci = res.confidence_interval(1 - alpha)  # Welch-Satterthwaite df
        low, high = float(ci.low), float(ci.high)
    pooled_sd = math.sqrt(((nv - 1) * v.var(ddof=1) + (nr - 1) * r.var(ddof=1)) / (nv + nr - 2))
    mde = _mde(pooled_sd, nv, nr / nv, alpha, power, paired=False)
    return Comparison(variant, reference, nv, nr, mv, mr, diff, low, high, p, p, mde, False,
                      _verdict(diff, p, mde, alpha, False))


def _welch_half_width(v: np.ndarray, r: np.ndarray, confidence: float = 0.95) -> float:
    if min(len(v), len(r)) < 2:
        return math.nan
    if v.var() == 0 and r.var() == 0:
        return 0.0
    ci = _quiet_test(stats.ttest_ind, v, r, equal_var=False).confidence_interval(confidence)
    return float(ci.high - ci.low) / 2


def _truthy(value: Any) -> bool:
    if _missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _reference_name(rows: pd.DataFrame) -> str | None:
    """The axis' reference variant: the flagged one, else one named like the paper configuration."""
    if "is_reference" in rows.columns:
        flagged = set(rows.loc[rows["is_reference"].map(_truthy), "variant"].astype(str))
        if len(flagged) > 1:
            raise ValueError(f"several reference variants flagged on one axis: {sorted(flagged)}")
        if flagged:
            return flagged.pop()
    present = set(rows["variant"].astype(str))
    return next((name for name in REFERENCE_NAMES if name in present), None)


def _groups(rows: pd.DataFrame, by: list[str]):
    """(key tuple, sub-frame) per `by` group, NA keys kept (a missing degradation is still a group)."""
    if not by:
        yield (), rows
        return
    for key, cell in rows.groupby(by, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), cell
