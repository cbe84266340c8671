"""Statistics that keep ablation studies honest: CIs, t-tests, TOST, Holm, MDE, adaptive seeds.

Quick CPU trials have a seed-to-seed SD of about 2 points, so with 3-5 seeds only differences of
4-5 points are visible. Every variant-vs-reference comparison (diff = variant - reference, in
points) therefore carries its 95% CI, its Holm-adjusted p-values and its minimum detectable
difference (MDE), and its verdict says only what the data can say. In a Holm family of m
comparisons at family level alpha (0.05):

- "better" / "worse": the t-test (paired by seed where runs share seeds, else Welch) rejects "no
  difference" at the Holm-adjusted level;
- "equivalent within ±M pts": not better or worse, and two one-sided tests (TOST) reject both
  "diff <= -M" and "diff >= M" at the Holm-adjusted level (the TOST p-values are Holm-adjusted
  across the family too): the difference is shown to be smaller than the margin M (default 3 pts);
- "inconclusive": neither. The study can neither tell the variant from the reference nor bound the
  difference within ±M; read its CI and MDE;
- "insufficient data (n<2)": fewer than two runs on a side.

The MDE is the true difference the study would detect with 80% power (two-sided), computed for the
design actually used (paired: SD of the per-seed differences and the number of pairs; Welch: pooled
SD and both group sizes) at `alpha_used` = alpha / m, the most conservative Holm step. A single
`compare` is a family of one. For planning, `mde_paired` and `seeds_for_mde` give what a
paired design can detect and how many seeds reach a target MDE, and `equivalence_power` the chance
that a paired TOST shows equivalence within a margin.
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
from scipy import integrate, optimize, special, stats
from statsmodels.stats.power import TTestIndPower, TTestPower

__all__ = [
    "Comparison",
    "SeedsDecision",
    "ci_half_width",
    "clip_interval",
    "compare",
    "compare_axis",
    "compare_family",
    "equivalence_power",
    "equivalence_verdict",
    "holm",
    "mde_paired",
    "mde_range",
    "mde_one_run",
    "mean_ci",
    "prediction_interval",
    "relative_margin",
    "seeds_decision",
    "seeds_for_mde",
    "sequential_alpha",
    "typical_mde",
    "Transfer",
    "transfer_family",
    "transfer_axis",
    "HOLDS",
    "SCALE_DEPENDENT",
]

INSUFFICIENT = "insufficient data (n<2)"
INCONCLUSIVE = "inconclusive"
#: Verdicts that settle a comparison, besides "equivalent within ±M pts" (`equivalence_verdict`).
DECIDED = ("better", "worse")


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """One variant-vs-reference comparison of a metric (diff = variant - reference).

    `p_value`/`p_adjusted` are the raw and Holm-adjusted p of the t-test, `p_equivalence`/
    `p_equivalence_adjusted` those of the TOST against ±`margin`, and `mde` is computed at
    `alpha_used` (alpha / family size). The CI is the unadjusted 1 - alpha interval.
    """

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
    margin: float = math.nan
    p_equivalence: float = math.nan
    p_equivalence_adjusted: float = math.nan
    alpha_used: float = math.nan
    sd: float = math.nan  # SD of the paired differences (paired), else the pooled SD
    correlation: float = math.nan  # within-seed correlation of variant and reference (paired only)
    ci_adj_low: float = math.nan  # the CI at 1 - alpha/m: the level Holm's first step tests (Bonferroni, simultaneous)
    ci_adj_high: float = math.nan

    def as_dict(self) -> dict:
        """The comparison as a plain dict (one row of a tidy table)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedsDecision:
    """Whether a study should run more seeds, and why."""

    more_seeds: bool
    reason: str
    half_widths: dict[str, float]


def prediction_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Where one more run would land: mean ± t·s·sqrt(1 + 1/n) (nan bounds for n < 3, too few to say).

    The paper reports single runs; whether such a number is in line with ours is a question about one
    run, so it is checked against this interval, not against the (narrower) CI of our mean.
    """
    x = _finite(values)
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) * math.sqrt(1 + 1 / n))
    return float(x.mean()) - half, float(x.mean()) + half


def clip_interval(low: float, high: float, bounds: tuple[float, float] = (0.0, 100.0)) -> tuple[float, float, bool]:
    """An interval cut to a bounded scale (accuracy in points: [0, 100]), and whether it had to be cut.

    A t-interval of a few far-apart accuracies can reach below 0 or above 100; the part outside the
    scale is impossible, so it is cut off and the interval is marked (it is then wider than the data
    can support, not narrower: read it as "the data barely constrain the mean"). nan bounds stay nan.
    """
    lower, upper = bounds
    if _missing(low) or _missing(high) or not (math.isfinite(low) and math.isfinite(high)):
        return low, high, False
    clipped = low < lower or high > upper
    return max(float(low), lower), min(float(high), upper), clipped


def mde_one_run(values, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest shift of one new run from our mean that the prediction-interval check detects with `power`.

    One new run x differs from the mean of n runs by (x - mean) / (s·sqrt(1 + 1/n)) ~ t(n - 1) under
    "same distribution"; the shift detected with `power` at two-sided `alpha` solves the noncentral-t
    power equation (noncentrality d·sqrt(n) in the paired solver), so it is d·s·sqrt(n + 1). It is
    always larger than the prediction interval's half-width; nan for n < 3 (no prediction interval).
    """
    x = _finite(values)
    n = len(x)
    if n < 3:
        return math.nan
    sd = float(x.std(ddof=1))
    if sd == 0:
        return 0.0
    return _effect_size(n, 1.0, float(alpha), float(power), True) * sd * math.sqrt(n + 1)


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
        # statsmodels' multipletests gives the same numbers but runs gc.collect() on every call (~0.1 s
        # in a process holding torch), which a report of many families pays again and again.
        tested = p[ok]
        order = np.argsort(tested, kind="stable")
        steps = (len(tested) - np.arange(len(tested))) * tested[order]
        adjusted = np.empty_like(tested)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        out[ok] = adjusted
    return out.tolist()


def compare(
    variant_values,
    reference_values,
    *,
    variant_seeds=None,
    reference_seeds=None,
    alpha: float = 0.05,
    power: float = 0.8,
    margin: float = 3.0,
    variant: str = "variant",
    reference: str = "reference",
) -> Comparison:
    """Compare a variant with the reference: paired by seed when >= 2 seeds are shared, else Welch.

    A family of one (m = 1): the verdict follows the rules of the module docstring at `alpha`,
    equivalence being judged against ±`margin`. The CI is at 1 - alpha (95% by default). When
    paired, n and the means are those of the paired runs only, so `diff` is always
    `mean_variant - mean_reference`.
    """
    raw = _compare_raw(variant_values, reference_values, variant_seeds, reference_seeds, alpha,
                       margin, variant, reference)
    return _finish([raw], alpha, power)[0]


def compare_family(
    groups: Mapping[str, Any],
    reference: str,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    margin: float = 3.0,
) -> list[Comparison]:
    """Compare every group with the reference group as one Holm family at family level `alpha`.

    Each group is `(values, seeds)` (seeds may be None) or just a sequence of values. The t-test and
    the TOST (against ±`margin`) p-values are each Holm-adjusted across the family, and every MDE is
    computed at alpha / m for the m comparisons that have a test.
    """
    if reference not in groups:
        raise KeyError(f"reference group {reference!r} not in {list(groups)}")
    ref_values, ref_seeds = _split_group(groups[reference])
    raw = []
    for name, group in groups.items():
        if name == reference:
            continue
        values, seeds = _split_group(group)
        raw.append(_compare_raw(values, ref_values, seeds, ref_seeds, alpha, margin, str(name),
                                str(reference)))
    return _finish(raw, alpha, power)


def equivalence_verdict(margin: float) -> str:
    """The verdict of a comparison shown equivalent within ±margin: "equivalent within ±3 pts"."""
    return f"equivalent within ±{margin:g} pts"


def mde_paired(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """Paired-design MDE (two-sided t-test, n pairs, differences of SD `sd`), in the units of `sd`.

    nan for n < 2 or a non-finite SD; 0 for sd == 0 (identical differences leave nothing hidden).
    """
    if int(n) < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 0.0
    return _mde(float(sd), int(n), 1.0, alpha, power, paired=True)


def mde_range(sd: float, n: int, alpha: float, power: float = 0.8, confidence: float = 0.95) -> tuple[float, float]:
    """The `confidence` interval of a paired design's MDE from an observed SD of n differences: the MDE is
    proportional to the SD, and (n − 1)·s²/σ² is χ² with n − 1 df, so the SD's interval scales it. With n = 5 it
    spans ×[0.60, 2.87] of the observed MDE: a design checked on few seeds knows its MDE only that well."""
    if int(n) < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan, math.nan
    low_q, high_q = stats.chi2.ppf([(1 + confidence) / 2, (1 - confidence) / 2], n - 1)
    return (mde_paired(sd * math.sqrt((n - 1) / low_q), n, alpha, power),
            mde_paired(sd * math.sqrt((n - 1) / high_q), n, alpha, power))


def seeds_for_mde(
    sd: float, target: float, alpha: float, power: float = 0.8, max_seeds: int = 50
) -> int | None:
    """Smallest number of pairs n (2 <= n <= max_seeds) with `mde_paired(sd, n, ...)` <= target.

    None when even `max_seeds` seeds cannot reach the target (or sd/target are not usable).
    """
    if not (np.isfinite(sd) and np.isfinite(target)) or sd < 0 or target < 0:
        return None
    for n in range(2, int(max_seeds) + 1):
        mde = mde_paired(sd, n, alpha, power)
        if np.isfinite(mde) and mde <= target:
            return n
    return None


def equivalence_power(
    sd: float, n: int, margin: float, alpha: float, true_diff: float = 0.0
) -> float:
    """Probability that a paired TOST declares equivalence within ±margin at level alpha.

    n pairs whose differences are Normal(true_diff, sd). With mean m and sample SD s of the
    differences, the TOST (both one-sided tests at `alpha`) rejects iff
    |m| < margin - t(1-alpha, n-1) * s / sqrt(n); m ~ Normal(true_diff, sd / sqrt(n)) independently
    of s ~ sd * sqrt(chi2(n-1) / (n-1)), so the power is one integral over the distribution of s,
    computed numerically (no simulation). nan for n < 2 or a non-finite sd.
    """
    n = int(n)
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if n < 2 or not (np.isfinite(sd) and np.isfinite(margin) and np.isfinite(true_diff)) or sd < 0:
        return math.nan
    if margin <= 0:
        return 0.0
    if sd == 0:
        return float(abs(true_diff) < margin)
    df = n - 1
    se = sd / math.sqrt(n)
    t_crit = float(stats.t.ppf(1 - alpha, df))
    # q = s * sqrt(df) / sd ~ chi(df); the rejection region is empty from q_zero on.
    slope = t_crit * sd / (math.sqrt(df) * math.sqrt(n))  # half-width lost per unit of q
    q_zero = margin / slope
    q_top = min(q_zero, float(stats.chi.isf(1e-16, df)))
    log_norm = (df / 2 - 1) * math.log(2) + special.gammaln(df / 2)

    def integrand(q: float) -> float:
        c = margin - slope * q
        if c <= 0 or q <= 0:
            return 0.0
        inside = special.ndtr((c - true_diff) / se) - special.ndtr((-c - true_diff) / se)
        return inside * math.exp((df - 1) * math.log(q) - q * q / 2 - log_norm)

    median = float(stats.chi.median(df))
    points = [median] if 0 < median < q_top else None
    value, _ = integrate.quad(integrand, 0.0, q_top, points=points, limit=200, epsabs=1e-12,
                              epsrel=1e-10)
    return float(min(max(value, 0.0), 1.0))


def compare_axis(
    table: pd.DataFrame,
    axis: str,
    *,
    metric: str = "test_accuracy",
    by: Sequence[str] = ("dataset", "degradation"),
    scale: float = 100.0,
    margin: float = 3.0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Every variant of one axis vs its reference, per `by` group, Holm across that group's variants, at family
    level `alpha` (a sequential run's `sequential_alpha`).

    Equivalence is judged against ±`margin` (in scaled units, points by default).

    Uses rows with status "ok" only; values are multiplied by `scale` (fractions -> points). Returns
    one row per comparison: axis, the `by` columns, then the `Comparison` fields. A variant whose
    group has no reference rows gets an "insufficient data" row rather than silently vanishing.
    An axis with no reference at all returns an empty frame.
    """
    by = list(by)
    if "rung" in table.columns and "rung" not in by and table["rung"].fillna("").astype(str).ne("").any():
        by.append("rung")  # a ladder: each rung is its own family (its cells pair by seed within the rung)
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
        for c in compare_family(groups, ref_name, margin=margin, alpha=alpha):
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


def relative_margin(share: float, reference_accuracy: float) -> float:
    """An equivalence margin in points given as a share of the reference's error rate (accuracy in points)."""
    return share * (100.0 - reference_accuracy)


def sequential_alpha(min_seeds: int, max_seeds: int, alpha: float = 0.05) -> float:
    """The family level each look of `--seeds auto` tests at: the run may look at n = min_seeds, …, max_seeds seeds
    and stop at the first decided one, so α is spent equally over those looks (Bonferroni: the chance that any
    look calls a false "better"/"worse" stays ≤ α; tests/test_stats_simulation.py measures it)."""
    return alpha / max(1, max_seeds - min_seeds + 1)


def seeds_decision(
    groups: Mapping[str, Sequence[float]],
    reference: str,
    *,
    target_half_width: float = 1.0,
    max_seeds: int = 10,
    min_seeds: int = 3,
    budget_exhausted: bool = False,
    mde_target: float | None = None,
    margin: float = 3.0,
    alpha: float = 0.05,
) -> SeedsDecision:
    """Decide whether a study needs more seeds, from each variant-vs-reference CI half-width.

    Groups of equal length are paired by position (the runner uses one seed list for every cell),
    otherwise Welch. `reason` is "<token>: detail" with token budget, ci-target, decided, max-seeds,
    min-seeds, or ci-wide (more seeds needed because some CI is still wider than the target).
    With `mde_target` (points) the study also stops ("decided") once it has `min_seeds` seeds and
    every comparison of `compare_family` (margin ±`margin`) is better, worse or equivalent, or has
    an MDE <= mde_target: more seeds could then only find differences smaller than the target.

    A group may also be `(values, seeds)`: the "decided" test then pairs by seed, exactly as the report does. A
    sequential run passes `alpha = sequential_alpha(…)`, and its report judges at that level too, so that the
    repeated looks cannot raise the false-positive rate above the family's α.
    """
    if reference not in groups:
        raise KeyError(f"reference group {reference!r} not in {list(groups)}")
    family = groups
    groups = {name: _split_group(group)[0] for name, group in groups.items()}
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
    if (mde_target is not None and n >= min_seeds
            and _all_decided(family, reference, mde_target, margin, alpha)):
        return SeedsDecision(
            False, f"decided: every comparison decided or MDE ≤ {mde_target:.1f} pts", half_widths)
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


def _all_decided(groups: Mapping[str, Any], reference: str, mde_target: float, margin: float,
                 alpha: float = 0.05) -> bool:
    """Every comparison better/worse/equivalent or with an MDE <= mde_target, at `alpha`: paired by seed where a
    group gives its seeds, else by position when the lengths agree."""
    ref_len = len(np.asarray(_split_group(groups[reference])[0], dtype=float).ravel())
    family = {}
    for name, group in groups.items():
        values, seeds = _split_group(group)
        v = np.asarray(values, dtype=float).ravel()
        family[name] = (v, seeds if seeds is not None else list(range(len(v))) if len(v) == ref_len else None)
    comparisons = compare_family(family, reference, margin=margin, alpha=alpha)
    return bool(comparisons) and all(
        _is_decided(c.verdict) or (np.isfinite(c.mde) and c.mde <= mde_target) for c in comparisons)


def _is_decided(verdict: str) -> bool:
    return verdict in DECIDED or verdict.startswith("equivalent within")


def _power(d: float, n1: int, ratio: float, alpha: float, paired: bool) -> float:
    """Two-sided t-test power at standardised effect d (noncentral t, as in statsmodels)."""
    if paired:
        df, nobs = n1 - 1, n1
    else:
        n2 = n1 * ratio
        df, nobs = n1 + n2 - 2, n1 * n2 / (n1 + n2)
    crit = stats.t.isf(alpha / 2, df)
    nc = d * math.sqrt(nobs)
    upper = float(stats.nct.sf(crit, df, nc))
    lower = float(stats.nct.cdf(-crit, df, nc))  # negligible here; scipy gives nan far in the tail
    return (upper if np.isfinite(upper) else 1.0) + (lower if np.isfinite(lower) else 0.0)


@functools.lru_cache(maxsize=1024)
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
        d = float(np.squeeze(d))
    except (ValueError, RuntimeError, ArithmeticError):
        d = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.isfinite(d) and d > 0 and abs(_power(d, n1, ratio, alpha, paired) - power) < 1e-6:
            return d
        # statsmodels' solver gives up (returns its bracket end, e.g. 10) for tiny n at alpha / m.
        return _solve_effect_size(n1, ratio, alpha, power, paired)


def _solve_effect_size(n1: int, ratio: float, alpha: float, power: float, paired: bool) -> float:
    def gap(d: float) -> float:
        return _power(d, n1, ratio, alpha, paired) - power

    high = 1.0
    while gap(high) < 0:
        high *= 2
        if high > 1e4:
            return math.nan
    try:
        return float(optimize.brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-12))
    except (ValueError, RuntimeError):
        return math.nan


def _mde(sd: float, n1: int, ratio: float, alpha: float, power: float, *, paired: bool) -> float:
    """Smallest true difference detected with `power` at `alpha`, in the units of `sd`: nan for n1 < 2
    or an unusable SD, 0 for sd == 0 (identical values leave nothing hidden, as in `mde_paired`)."""
    if n1 < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 0.0
    return _effect_size(int(n1), float(ratio), float(alpha), float(power), paired) * sd


def _tost_p(diff: float, se: float, df: float, margin: float) -> float:
    """TOST p against ±margin: the larger of the two one-sided t-test p-values."""
    if not (np.isfinite(diff) and np.isfinite(se)):
        return math.nan
    if se == 0:  # no spread: the difference is known exactly
        return 0.0 if abs(diff) < margin else 1.0
    # special.stdtr(df, x) is the t distribution's CDF (stats.t.cdf without the per-call overhead).
    p_low = special.stdtr(df, -(diff + margin) / se)  # H0: diff <= -margin, rejected for large diff
    p_high = special.stdtr(df, (diff - margin) / se)  # H0: diff >= +margin, rejected for small diff
    return float(max(p_low, p_high))


def _verdict(diff: float, p_adjusted: float, p_equivalence_adjusted: float, margin: float,
             alpha: float, insufficient: bool) -> str:
    if insufficient:
        return INSUFFICIENT
    if np.isfinite(p_adjusted) and p_adjusted < alpha and diff != 0:
        return "better" if diff > 0 else "worse"
    if np.isfinite(p_equivalence_adjusted) and p_equivalence_adjusted < alpha:
        return equivalence_verdict(margin)
    return INCONCLUSIVE


@dataclass(frozen=True)
class _Raw:
    """A comparison before Holm, with the design its MDE needs."""

    comparison: Comparison
    sd: float  # SD of the paired differences, or the pooled SD (Welch)
    n1: int
    ratio: float


def _finish(raw: list[_Raw], alpha: float, power: float) -> list[Comparison]:
    """Holm across the family, the MDE at alpha / m, and the verdicts."""
    p_adjusted = holm([r.comparison.p_value for r in raw])
    p_equivalence_adjusted = holm([r.comparison.p_equivalence for r in raw])
    m = sum(bool(np.isfinite(r.comparison.p_value)) for r in raw)
    alpha_used = alpha / max(m, 1)
    out = []
    for r, p, p_eq in zip(raw, p_adjusted, p_equivalence_adjusted, strict=True):
        c = r.comparison
        insufficient = min(c.n_variant, c.n_reference) < 2
        mde = _mde(r.sd, r.n1, r.ratio, alpha_used, power, paired=c.paired)
        half = _adjusted_half_width(c, alpha, alpha_used)
        out.append(dataclasses.replace(
            c, p_adjusted=p, p_equivalence_adjusted=p_eq, mde=mde, alpha_used=alpha_used, sd=r.sd,
            ci_adj_low=c.diff - half, ci_adj_high=c.diff + half,
            verdict=_verdict(c.diff, p, p_eq, c.margin, alpha, insufficient)))
    return out


def _adjusted_half_width(c: Comparison, alpha: float, alpha_used: float) -> float:
    """Half-width of the interval at 1 - alpha_used, from the unadjusted one's (same df: the t quantiles' ratio)."""
    if not (np.isfinite(c.ci_low) and np.isfinite(c.ci_high)):
        return math.nan
    half = (c.ci_high - c.ci_low) / 2
    if half == 0:
        return 0.0
    df = c.n_variant - 1 if c.paired else _welch_df_from(c)
    return half * float(stats.t.ppf(1 - alpha_used / 2, df) / stats.t.ppf(1 - alpha / 2, df))


def _welch_df_from(c: Comparison) -> float:
    return max(1.0, min(c.n_variant, c.n_reference) - 1.0)  # a conservative df where Welch's is not kept


def _compare_raw(variant_values, reference_values, variant_seeds, reference_seeds, alpha: float,
                 margin: float, variant: str, reference: str) -> _Raw:
    if not margin >= 0:  # also catches nan
        raise ValueError(f"margin must be >= 0, got {margin}")
    v, vs = _clean(variant_values, variant_seeds)
    r, rs = _clean(reference_values, reference_seeds)
    if vs is not None and rs is not None:
        v_by, r_by = _by_seed(v, vs), _by_seed(r, rs)
        shared = [s for s in v_by if s in r_by]
        # Runs sharing a seed share data order and init, so pairing removes that common noise.
        if len(shared) >= 2:
            return _paired(np.array([v_by[s] for s in shared]), np.array([r_by[s] for s in shared]),
                           alpha, float(margin), variant, reference)
    return _welch(v, r, alpha, float(margin), variant, reference)


def _quiet_test(fn, *args, **kwargs):
    # scipy warns on (near-)constant samples; the nan/inf it returns is handled by the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _paired(v, r, alpha, margin, variant, reference) -> _Raw:
    n = len(v)
    d = v - r
    res = _quiet_test(stats.ttest_rel, v, r)
    p = float(res.pvalue)
    mean = float(d.mean())
    sd = float(np.std(d, ddof=1))
    if np.std(d) == 0:  # identical differences: the interval collapses to the point
        low = high = mean
        sd = 0.0
    else:
        ci = res.confidence_interval(1 - alpha)
        low, high = float(ci.low), float(ci.high)
    p_eq = _tost_p(mean, sd / math.sqrt(n), n - 1, margin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        correlation = float(np.corrcoef(v, r)[0, 1]) if n >= 3 and v.std() > 0 and r.std() > 0 else math.nan
    c = Comparison(variant=variant, reference=reference, n_variant=n, n_reference=n, mean_variant=float(v.mean()),
                   mean_reference=float(r.mean()), diff=mean, ci_low=low, ci_high=high, p_value=p, p_adjusted=p,
                   mde=math.nan, paired=True, verdict="", margin=margin, p_equivalence=p_eq, p_equivalence_adjusted=p_eq,
                   alpha_used=alpha, correlation=correlation)
    return _Raw(c, sd, n, 1.0)


def _welch(v, r, alpha, margin, variant, reference) -> _Raw:
    nv, nr = len(v), len(r)
    mv = float(v.mean()) if nv else math.nan
    mr = float(r.mean()) if nr else math.nan
    diff = mv - mr
    if min(nv, nr) < 2:
        c = Comparison(variant=variant, reference=reference, n_variant=nv, n_reference=nr, mean_variant=mv,
                       mean_reference=mr, diff=diff, ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                       p_adjusted=math.nan, mde=math.nan, paired=False, verdict=INSUFFICIENT, margin=margin,
                       alpha_used=alpha)
        return _Raw(c, math.nan, nv, 1.0)
    res = _quiet_test(stats.ttest_ind, v, r, equal_var=False)
    p = float(res.pvalue)
    a, b = v.var(ddof=1) / nv, r.var(ddof=1) / nr
    if a == 0 and b == 0:  # no spread at all: Welch df is undefined
        low = high = diff
        p_eq = _tost_p(diff, 0.0, math.nan, margin)
    else:
        ci = res.confidence_interval(1 - alpha)  # Welch-Satterthwaite df
        low, high = float(ci.low), float(ci.high)
        df = (a + b) ** 2 / (a**2 / (nv - 1) + b**2 / (nr - 1))
        p_eq = _tost_p(diff, math.sqrt(a + b), df, margin)
    pooled_sd = math.sqrt(((nv - 1) * v.var(ddof=1) + (nr - 1) * r.var(ddof=1)) / (nv + nr - 2))
    c = Comparison(variant=variant, reference=reference, n_variant=nv, n_reference=nr, mean_variant=mv,
                   mean_reference=mr, diff=diff, ci_low=low, ci_high=high, p_value=p, p_adjusted=p, mde=math.nan,
                   paired=False, verdict="", margin=margin, p_equivalence=p_eq, p_equivalence_adjusted=p_eq,
                   alpha_used=alpha)
    return _Raw(c, pooled_sd, nv, nr / nv)


def _welch_half_width(v: np.ndarray, r: np.ndarray, confidence: float = 0.95) -> float:
    if min(len(v), len(r)) < 2:
        return math.nan
    if v.var() == 0 and r.var() == 0:
        return 0.0
    ci = _quiet_test(stats.ttest_ind, v, r, equal_var=False).confidence_interval(confidence)
    return float(ci.high - ci.low) / 2


def truthy(value: Any) -> bool:
    """A results-file flag read leniently (JSON may carry true, "true", "yes" or 1; missing is False)."""
    if _missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _reference_name(rows: pd.DataFrame) -> str | None:
    """The axis' reference variant: the one its rows flag (`is_reference`, the role study.json records), never one
    guessed from its name; None when no row is flagged."""
    if "is_reference" not in rows.columns:
        return None
    flagged = set(rows.loc[rows["is_reference"].map(truthy), "variant"].astype(str))
    if len(flagged) > 1:
        raise ValueError(f"several reference variants flagged on one axis: {sorted(flagged)}")
    return flagged.pop() if flagged else None


def _groups(rows: pd.DataFrame, by: list[str]):
    """(key tuple, sub-frame) per `by` group, NA keys kept (a missing degradation is still a group)."""
    if not by:
        yield (), rows
        return
    for key, cell in rows.groupby(by, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), cell


# --------------------------------------------------------------------------- transfer across rungs

HOLDS = "holds across rungs"
SCALE_DEPENDENT = "scale-dependent"


@dataclass(frozen=True)
class Transfer:
    """Whether a contrast holds as the scale grows: the change of Δ (variant − reference, points) from the
    lowest to the highest rung of a ladder, paired by seed (the rung × variant interaction).

    `change` is the mean over seeds of Δ_high(s) − Δ_low(s); `ci_low`/`ci_high` its unadjusted 1 − alpha
    interval, `ci_adj_low`/`ci_adj_high` its interval at 1 − alpha/m (Bonferroni, m the family size: an
    interval that excludes 0 there is a Holm "scale-dependent" at the first step). `per_doubling` divides
    the change (and its CIs) by `doublings`, the log2 of the ratio of the rungs' sizes. The verdict:
    "scale-dependent" when the Holm-adjusted t-test rejects "no change"; "holds across rungs" when the
    Holm-adjusted TOST shows the change within ±margin; else "inconclusive".
    """

    variant: str
    reference: str
    low_rung: str
    high_rung: str
    n: int
    delta_low: float
    delta_high: float
    change: float
    ci_low: float
    ci_high: float
    ci_adj_low: float
    ci_adj_high: float
    p_value: float
    p_adjusted: float
    p_equivalence: float
    p_equivalence_adjusted: float
    mde: float
    margin: float
    doublings: float
    per_doubling: float
    per_doubling_low: float
    per_doubling_high: float
    alpha_used: float
    verdict: str

    def as_dict(self) -> dict:
        """The transfer as a plain dict (one row of a tidy table)."""
        return dataclasses.asdict(self)


def transfer_family(changes: Mapping[str, tuple[Sequence[float], Sequence[float]]], reference: str, *,
                    low_rung: str = "low", high_rung: str = "high", doublings: float = 1.0, alpha: float = 0.05,
                    power: float = 0.8, margin: float = 3.0) -> list[Transfer]:
    """Transfer verdicts of a family of contrasts. Each entry maps a variant to its seed-paired
    (Δ at the low rung, Δ at the high rung), in points, the seeds in the same order on both sides."""
    raw = []
    for name, (low, high) in changes.items():
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        ok = np.isfinite(low) & np.isfinite(high)
        low, high = low[ok], high[ok]
        d = high - low
        n = len(d)
        mean = float(d.mean()) if n else math.nan
        sd = float(np.std(d, ddof=1)) if n >= 2 else math.nan
        se = sd / math.sqrt(n) if n >= 2 else math.nan
        if n >= 2 and sd > 0:
            p = float(2 * special.stdtr(n - 1, -abs(mean) / se))
        else:
            p = math.nan if n < 2 else (0.0 if mean != 0 else 1.0)
        raw.append((name, n, float(low.mean()) if n else math.nan, float(high.mean()) if n else math.nan,
                    mean, sd, se, p, _tost_p(mean, se, n - 1, margin) if n >= 2 else math.nan))
    p_adjusted = holm([r[7] for r in raw])
    p_eq_adjusted = holm([r[8] for r in raw])
    m = max(1, sum(bool(np.isfinite(r[7])) for r in raw))
    out = []
    for (name, n, d_low, d_high, mean, sd, se, p, p_eq), p_adj, p_eq_adj in zip(raw, p_adjusted, p_eq_adjusted, strict=True):
        low, high = _t_interval(mean, se, n, 1 - alpha)
        adj_low, adj_high = _t_interval(mean, se, n, 1 - alpha / m)
        if n < 2:
            verdict = INSUFFICIENT
        elif np.isfinite(p_adj) and p_adj < alpha and mean != 0:
            verdict = SCALE_DEPENDENT
        elif np.isfinite(p_eq_adj) and p_eq_adj < alpha:
            verdict = HOLDS
        else:
            verdict = INCONCLUSIVE
        per = (lambda x: x / doublings) if doublings > 0 else (lambda x: math.nan)  # noqa: E731
        out.append(Transfer(name, reference, low_rung, high_rung, n, d_low, d_high, mean, low, high, adj_low, adj_high,
                            p, p_adj, p_eq, p_eq_adj, mde_paired(sd, n, alpha / m, power), margin, doublings,
                            per(mean), per(low), per(high), alpha / m, verdict))
    return out


def _t_interval(mean: float, se: float, n: int, confidence: float) -> tuple[float, float]:
    if n < 2 or not np.isfinite(se):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return mean - half, mean + half


def rung_size(rows: pd.DataFrame) -> float:
    """The size of a rung, from its rows: training images × width² (the budget's share of training compute)."""
    images = pd.to_numeric(rows.get("budget_images"), errors="coerce").median()
    width = pd.to_numeric(rows.get("scale_width"), errors="coerce").median()
    return float(images) * (float(width) ** 2 if np.isfinite(width) else 1.0)


def transfer_axis(table: pd.DataFrame, axis: str, *, metric: str = "test_accuracy", scale: float = 100.0,
                  margin: float = 3.0, by: Sequence[str] = ("dataset", "degradation")) -> pd.DataFrame:
    """Every variant of a ladder study's axis: the change of its Δ from the lowest to the highest rung,
    paired by seed (runs sharing protocol, fold and seed in all four cells), Holm across the variants of
    each `by` group. Empty when the axis has no reference or fewer than two rungs."""
    columns = ["axis", *by, *(f.name for f in dataclasses.fields(Transfer))]
    rows = table[(table["axis"] == axis) & (table["status"] == "ok")] if len(table) else table
    if "rung" not in rows.columns or not len(rows):
        return pd.DataFrame(columns=columns)
    rows = rows[pd.to_numeric(rows[metric], errors="coerce").notna() & rows["rung"].fillna("").astype(str).ne("")]
    ref_name = _reference_name(rows) if len(rows) else None
    if ref_name is None:
        return pd.DataFrame(columns=columns)
    out = []
    for key, group in _groups(rows, list(by)):
        sizes = {r: rung_size(g) for r, g in group.groupby("rung")}
        if len(sizes) < 2:
            continue
        low, high = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
        pair = group.assign(_pair=group[["protocol", "fold", "seed"]].astype(str).agg("|".join, axis=1),
                            _value=pd.to_numeric(group[metric]).astype(float) * scale)
        wide = pair.pivot_table(index="_pair", columns=["rung", "variant"], values="_value", aggfunc="mean")
        changes = {}
        for name in sorted(set(group["variant"].astype(str)) - {ref_name}):
            cols = [(low, name), (low, ref_name), (high, name), (high, ref_name)]
            if not all(c in wide.columns for c in cols):
                changes[name] = ([], [])
                continue
            both = wide[cols].dropna()
            changes[name] = ((both[cols[0]] - both[cols[1]]).to_numpy(), (both[cols[2]] - both[cols[3]]).to_numpy())
        doublings = math.log2(sizes[high] / sizes[low]) if sizes[low] > 0 else math.nan
        for t in transfer_family(changes, ref_name, low_rung=low, high_rung=high, doublings=doublings, margin=margin):
            out.append({"axis": axis, **dict(zip(by, key, strict=True)), **t.as_dict()})
    return pd.DataFrame(out, columns=columns)
