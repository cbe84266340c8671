"""study.stats against scipy/statsmodels computed independently, planted effects and error rates."""

from __future__ import annotations

import gc
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from study import stats
from study.stats import (
    Comparison,
    compare,
    compare_axis,
    compare_family,
    equivalence_power,
    equivalence_verdict,
    mde_paired,
    seeds_decision,
    seeds_for_mde,
)

VERDICT = re.compile(r"^(better|worse|inconclusive|equivalent within ±\d+(\.\d+)? pts|insufficient data \(n<2\))$")


@pytest.fixture
def cheap_gc():
    """statsmodels' multipletests (the tests' reference for Holm) runs gc.collect() per call; freezing the heap keeps loops fast."""
    gc.freeze()
    yield
    gc.unfreeze()


# --- mean_ci / ci_half_width ------------------------------------------------------------------


def test_mean_ci_matches_scipy_t_interval():
    x = np.array([74.1, 76.3, 77.9, 75.2, 73.8])
    low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    mean, lo, hi, n = stats.mean_ci(x)
    assert (mean, n) == (pytest.approx(x.mean()), 5)
    assert (lo, hi) == (pytest.approx(low), pytest.approx(high))
    low90, high90 = sps.t.interval(0.9, 4, loc=x.mean(), scale=sps.sem(x))
    assert stats.mean_ci(x, 0.9)[1:3] == (pytest.approx(low90), pytest.approx(high90))
    assert stats.ci_half_width(x) == pytest.approx((high - low) / 2)


def test_mean_ci_small_and_missing():
    mean, lo, hi, n = stats.mean_ci([75.0])
    assert (mean, n) == (75.0, 1) and math.isnan(lo) and math.isnan(hi)
    assert stats.mean_ci([])[3] == 0
    assert stats.mean_ci([70.0, float("nan"), 72.0])[::3] == (71.0, 2)  # nan (failed run) dropped
    assert math.isnan(stats.ci_half_width([1.0]))
    assert stats.mean_ci([3.0, 3.0, 3.0])[1:3] == (3.0, 3.0)  # no spread: point interval, not nan


# --- compare: Welch and paired ----------------------------------------------------------------


def test_welch_matches_scipy_and_welch_satterthwaite():
    v = np.array([78.2, 75.1, 77.4, 79.0])
    r = np.array([74.0, 76.5, 73.2, 75.8, 72.9, 74.4])
    c = compare(v, r, variant="b", reference="a")
    res = sps.ttest_ind(v, r, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert not c.paired and (c.n_variant, c.n_reference) == (4, 6)
    assert c.diff == pytest.approx(v.mean() - r.mean())
    assert c.p_value == pytest.approx(res.pvalue) and c.p_adjusted == c.p_value
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # The same interval by hand: Welch-Satterthwaite df and the t quantile.
    a, b = v.var(ddof=1) / 4, r.var(ddof=1) / 6
    df = (a + b) ** 2 / (a**2 / 3 + b**2 / 5)
    half = sps.t.ppf(0.975, df) * math.sqrt(a + b)
    assert (c.ci_low, c.ci_high) == (pytest.approx(c.diff - half), pytest.approx(c.diff + half))


def test_paired_matches_ttest_rel_on_shared_seeds_only():
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 3, 6)
    r = 75 + seed_effect + rng.normal(0, 0.5, 6)
    v = 76 + seed_effect + rng.normal(0, 0.5, 6)
    # Variant seeds in another order and one unshared seed on each side: pairing is by seed.
    order = [3, 0, 5, 1, 4]
    c = compare(v[order], r[:5], variant_seeds=order, reference_seeds=[0, 1, 2, 3, 4])
    shared = [0, 1, 3, 4]
    res = sps.ttest_rel(v[shared], r[shared])
    ci = res.confidence_interval(0.95)
    assert c.paired and (c.n_variant, c.n_reference) == (4, 4)
    assert c.diff == pytest.approx((v[shared] - r[shared]).mean())
    assert c.diff == pytest.approx(c.mean_variant - c.mean_reference)
    assert c.p_value == pytest.approx(res.pvalue)
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # Pairing removes the large shared seed effect that Welch has to carry.
    welch = compare(v[shared], r[shared])
    assert c.ci_high - c.ci_low < (welch.ci_high - welch.ci_low) / 3


def test_pairs_only_with_two_shared_seeds():
    v, r = [77.0, 78.0, 76.5], [75.0, 74.0, 75.5]
    assert not compare(v, r, variant_seeds=[1, 2, 3], reference_seeds=[3, 4, 5]).paired
    assert not compare(v, r, variant_seeds=[1, 2, 3]).paired  # seeds on one side only
    assert compare(v, r, variant_seeds=[1, 2, 3], reference_seeds=[3, 2, 9]).paired


def test_planted_effects_give_verdicts():
    rng = np.random.default_rng(7)
    ref = 75 + rng.normal(0, 1, 5)
    assert compare(ref + 6 + rng.normal(0, 1, 5), ref).verdict == "better"
    assert compare(ref - 6 + rng.normal(0, 1, 5), ref).verdict == "worse"
    seeds = list(range(5))
    assert compare(ref + 6 + rng.normal(0, 1, 5), ref, variant_seeds=seeds,
                   reference_seeds=seeds).verdict == "better"
    noisy = compare(75.5 + rng.normal(0, 4, 3), 75 + rng.normal(0, 4, 3))
    # Neither a difference nor equivalence within ±3 pts can be shown: no "no difference" claim.
    assert noisy.verdict == "inconclusive" and noisy.p_adjusted >= 0.05
    assert noisy.p_equivalence_adjusted >= 0.05 and noisy.mde > 5
    same = compare(ref + rng.normal(0, 0.2, 5), ref, variant_seeds=seeds, reference_seeds=seeds)
    assert same.verdict == "equivalent within ±3 pts" == equivalence_verdict(3.0)
    assert same.p_equivalence < 0.05 and same.margin == 3.0


def test_insufficient_data():
    c = compare([76.0], [74.0, 75.0, 73.0])
    assert c.verdict == "insufficient data (n<2)" and math.isnan(c.p_value) and math.isnan(c.mde)
    assert compare([], [74.0, 75.0]).n_variant == 0


def test_as_dict_round_trips():
    c = compare([77.0, 78.0, 79.0], [74.0, 75.0, 76.0])
    d = c.as_dict()
    assert list(d) == [f.name for f in Comparison.__dataclass_fields__.values()]
    assert Comparison(**d) == c


# --- verdicts: better / worse / equivalent / inconclusive ---------------------------------------

REF = np.array([75.0, 72.0, 78.0, 74.0, 76.0])  # a seed-to-seed spread of ~2 pts, as in quick studies
HAND_MADE = {  # per-seed differences from the reference, seeds 0..4
    "up": [6.1, 5.8, 6.3, 5.9, 6.0],
    "down": [-5.9, -6.2, -6.0, -5.7, -6.1],
    "same": [0.2, -0.3, 0.1, 0.0, -0.1],
    "noisy": [5.0, -4.0, 6.0, -5.0, 1.0],
}


def _hand_made_family(**kwargs):
    seeds = list(range(5))
    groups = {"paper": (REF, seeds)} | {name: (REF + np.array(d), seeds) for name, d in HAND_MADE.items()}
    return {c.variant: c for c in compare_family(groups, "paper", **kwargs)}


def test_each_verdict_on_hand_made_data():
    family = _hand_made_family()
    assert {name: c.verdict for name, c in family.items()} == {
        "up": "better", "down": "worse", "same": "equivalent within ±3 pts", "noisy": "inconclusive"}
    for name, c in family.items():
        assert VERDICT.match(c.verdict) and c.paired and c.margin == 3.0
        assert c.alpha_used == pytest.approx(0.05 / 4)  # m = 4 comparisons in the family
        d = np.array(HAND_MADE[name])
        # The MDE of the paired design: SD of the differences, 5 pairs, alpha / m, 80% power.
        effect = TTestPower().solve_power(nobs=5, alpha=0.05 / 4, power=0.8, alternative="two-sided")
        assert c.mde == pytest.approx(effect * d.std(ddof=1), rel=1e-6)
        assert c.diff == pytest.approx(d.mean())
    # TOST p-values: statsmodels, then Holm across the family, like the t-test p-values.
    names = list(family)
    raw = [ttost_paired(REF + np.array(HAND_MADE[n]), REF, -3.0, 3.0)[0] for n in names]
    assert [family[n].p_equivalence for n in names] == pytest.approx(raw, rel=1e-9)
    assert [family[n].p_equivalence_adjusted for n in names] == pytest.approx(
        list(multipletests(raw, method="holm")[1]), rel=1e-9)
    assert family["same"].p_equivalence_adjusted < 0.05 <= family["same"].p_adjusted
    assert family["noisy"].p_adjusted >= 0.05 and family["noisy"].p_equivalence_adjusted >= 0.05
    # The margin is the caller's: ±0.2 pts is too tight to show for "same".
    tight = _hand_made_family(margin=0.2)
    assert tight["same"].verdict == "inconclusive" and tight["same"].margin == 0.2
    assert _hand_made_family(margin=0.5)["same"].verdict == "equivalent within ±0.5 pts"


def test_better_takes_precedence_over_equivalent():
    """A small but clear difference inside the margin is reported as the difference it is."""
    seeds = list(range(5))
    c = compare(REF + np.array([1.0, 1.1, 0.9, 1.05, 0.95]), REF, variant_seeds=seeds, reference_seeds=seeds)
    assert c.p_equivalence < 0.05 and c.p_adjusted < 0.05
    assert c.verdict == "better"


def test_equivalence_is_holm_adjusted_across_the_family():
    seeds = list(range(5))
    d = np.array(HAND_MADE["same"])
    se = d.std(ddof=1) / math.sqrt(5)
    # A margin at which the TOST p is 0.03: equivalent alone, not in a family of two (Holm: 0.06).
    margin = abs(d.mean()) + se * sps.t.isf(0.03, 4)
    alone = compare(REF + d, REF, variant_seeds=seeds, reference_seeds=seeds, margin=margin)
    assert alone.p_equivalence == pytest.approx(0.03)
    assert alone.verdict == equivalence_verdict(margin) and alone.alpha_used == 0.05
    family = compare_family({"paper": (REF, seeds), "same": (REF + d, seeds), "far": (REF - 10, seeds)},
                            "paper", margin=margin)
    same = family[0]
    assert same.p_equivalence_adjusted == pytest.approx(0.06)
    assert same.verdict == "inconclusive" and family[1].verdict == "worse"
    assert same.alpha_used == 0.025 and same.mde > alone.mde  # the MDE at alpha / 2 is larger


def test_welch_tost_matches_statsmodels():
    v = np.array([76.2, 75.1, 77.4, 76.0])
    r = np.array([75.0, 76.5, 75.2, 75.8, 74.9, 75.4])
    c = compare(v, r, margin=2.5)
    assert not c.paired
    assert c.p_equivalence == pytest.approx(ttost_ind(v, r, -2.5, 2.5, usevar="unequal")[0], rel=1e-9)
    assert c.verdict == "equivalent within ±2.5 pts"
    assert compare(v, r, margin=0.5).verdict == "inconclusive"
    with pytest.raises(ValueError, match="margin"):
        compare(v, r, margin=-1.0)


def test_zero_spread_and_insufficient_verdicts():
    seeds = [0, 1, 2]
    same = compare([75.0, 76.0, 77.0], [75.0, 76.0, 77.0], variant_seeds=seeds, reference_seeds=seeds)
    assert same.verdict == "equivalent within ±3 pts" and same.p_equivalence == 0.0  # known exactly
    assert same.mde == 0.0  # identical differences hide nothing (as `mde_paired` says for sd 0)
    shifted = compare([79.0, 80.0, 81.0], [75.0, 76.0, 77.0], variant_seeds=seeds, reference_seeds=seeds)
    assert shifted.verdict == "better"
    family = compare_family({"paper": [74.0, 75.0, 76.0], "one": [75.0], "b": [80.0, 81.0, 79.5]}, "paper")
    assert family[0].verdict == "insufficient data (n<2)" and math.isnan(family[0].p_equivalence)
    assert family[1].alpha_used == 0.05  # the insufficient comparison is no test: m = 1


# --- MDE ---------------------------------------------------------------------------------------


def test_mde_matches_statsmodels_and_shrinks_with_n():
    rng = np.random.default_rng(3)
    mdes = []
    for n in (3, 5, 10):
        v, r = 76 + rng.normal(0, 2, n), 75 + rng.normal(0, 2, n + 2)
        c = compare(v, r)
        pooled = math.sqrt(((n - 1) * v.var(ddof=1) + (n + 1) * r.var(ddof=1)) / (2 * n))
        d = TTestIndPower().solve_power(nobs1=n, ratio=(n + 2) / n, alpha=0.05, power=0.8)
        assert c.mde == pytest.approx(d * pooled, rel=1e-6)
        # Same spread, more seeds -> smaller MDE.
        mdes.append(compare(v / v.std(ddof=1), r / r.std(ddof=1)).mde)
    assert mdes[0] > mdes[1] > mdes[2]

    seeds = list(range(5))
    v, r = 76 + rng.normal(0, 2, 5), 75 + rng.normal(0, 2, 5)
    c = compare(v, r, variant_seeds=seeds, reference_seeds=seeds)
    d = TTestPower().solve_power(nobs=5, alpha=0.05, power=0.8)
    assert c.mde == pytest.approx(d * (v - r).std(ddof=1), rel=1e-6)
    assert compare([1.0, 1.0], [1.0, 1.0]).mde == 0.0  # zero spread: nothing hidden, no crash


def test_typical_mde_pools_within_cell_sd():
    rng = np.random.default_rng(4)
    rows, cells = [], []
    for variant, n in (("ref", 5), ("a", 5), ("b", 3)):
        x = rng.normal(0.76, 0.02, n)
        cells.append(x * 100)
        rows += [dict(axis="k", variant=variant, dataset="fm", degradation="none", seed=s,
                      status="ok", test_accuracy=float(v)) for s, v in enumerate(x)]
    rows.append(dict(axis="k", variant="a", dataset="fm", degradation="none", seed=9,
                     status="failed", test_accuracy=0.1))
    table = pd.DataFrame(rows)
    pooled = math.sqrt(sum((len(x) - 1) * x.var(ddof=1) for x in cells) / sum(len(x) - 1 for x in cells))
    d5 = TTestIndPower().solve_power(nobs1=5, ratio=1, alpha=0.05, power=0.8)
    assert stats.typical_mde(table) == pytest.approx(d5 * pooled, rel=1e-6)  # median n = 5
    assert stats.typical_mde(table, n=10) < stats.typical_mde(table)
    assert math.isnan(stats.typical_mde(table, n=1))


def _paired_power(effect, n, alpha):
    """Two-sided paired t-test power from the noncentral t, computed here independently."""
    crit = sps.t.isf(alpha / 2, n - 1)
    return sps.nct.sf(crit, n - 1, effect * math.sqrt(n))


def test_mde_paired_and_seeds_for_mde():
    for n, alpha in ((5, 0.05), (5, 0.025), (8, 0.01), (20, 0.05 / 6)):
        effect = TTestPower().solve_power(nobs=n, alpha=alpha, power=0.8, alternative="two-sided")
        assert mde_paired(2.0, n, alpha) == pytest.approx(2 * effect, rel=1e-6)
    # Two or three pairs at alpha / m: statsmodels' solver stops at its bracket (10); ours does not.
    for n, alpha in ((2, 0.025), (3, 0.0125)):
        mde = mde_paired(1.0, n, alpha)
        assert _paired_power(mde, n, alpha) == pytest.approx(0.8, abs=1e-6)
    assert mde_paired(1.0, 3, 0.0125) > mde_paired(1.0, 3, 0.025) > mde_paired(1.0, 3, 0.05)
    assert math.isnan(mde_paired(1.0, 1, 0.05)) and mde_paired(0.0, 4, 0.05) == 0.0

    n = seeds_for_mde(2.0, 3.0, 0.025)
    assert mde_paired(2.0, n, 0.025) <= 3.0 < mde_paired(2.0, n - 1, 0.025)
    assert seeds_for_mde(2.0, 3.0, 0.025, max_seeds=n - 1) is None
    assert seeds_for_mde(2.0, 1.0, 0.0125) > seeds_for_mde(2.0, 1.0, 0.05)
    assert seeds_for_mde(0.0, 1.0, 0.05) == 2 and seeds_for_mde(2.0, 0.0, 0.05) is None


@pytest.mark.parametrize(("sd", "n", "margin", "alpha", "true_diff"), [
    (1.0, 5, 1.5, 0.05, 0.0),
    (1.0, 5, 1.5, 0.025, 0.4),
    (2.0, 3, 3.0, 0.05, -0.5),
    (1.0, 12, 0.8, 0.0125, 0.2),
])
def test_equivalence_power_matches_monte_carlo(sd, n, margin, alpha, true_diff):
    """4,000 simulated paired designs, each judged by scipy's two one-sided t-tests."""
    rng = np.random.default_rng(11)
    d = rng.normal(true_diff, sd, (4000, n))
    p_low = sps.ttest_1samp(d, -margin, axis=1, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d, margin, axis=1, alternative="less").pvalue
    rate = (np.maximum(p_low, p_high) < alpha).mean()
    power = equivalence_power(sd, n, margin, alpha, true_diff)
    assert 0.05 < power < 0.95  # mid-range, where a wrong power cannot hide at 0 or 1
    assert abs(rate - power) <= 3 * math.sqrt(power * (1 - power) / 4000)


def test_equivalence_power_shape():
    base = equivalence_power(1.0, 5, 1.5, 0.05)
    assert equivalence_power(1.0, 5, 1.5, 0.05, true_diff=0.5) == pytest.approx(
        equivalence_power(1.0, 5, 1.5, 0.05, true_diff=-0.5))
    assert equivalence_power(1.0, 5, 1.5, 0.05, true_diff=0.5) < base
    assert equivalence_power(1.0, 10, 1.5, 0.05) > base > equivalence_power(1.0, 5, 1.5, 0.025)
    assert equivalence_power(1.0, 5, 1.5, 0.05, true_diff=1.5) < 0.05  # at the margin: at most alpha
    assert equivalence_power(1.0, 400, 1.0, 0.05, true_diff=0.5) == pytest.approx(1.0, abs=1e-9)
    assert equivalence_power(0.0, 5, 1.0, 0.05, true_diff=0.5) == 1.0
    assert math.isnan(equivalence_power(1.0, 1, 1.0, 0.05))
    with pytest.raises(ValueError):
        equivalence_power(1.0, 5, 1.0, 0.6)


# --- Holm and families -------------------------------------------------------------------------


def test_holm_matches_multipletests(cheap_gc):
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    out = stats.holm([0.01, float("nan"), 0.03])  # nan = not a test, does not widen the family
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.03)
    rng = np.random.default_rng(0)  # ties, ones, zeros and families of every size up to 12
    for p in [[0.5], [0.0, 1.0], [0.03, 0.03, 0.03], *(rng.uniform(0, 0.2, rng.integers(1, 13)) for _ in range(50))]:
        assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12, abs=1e-15)


def test_compare_family_adjusts_across_variants():
    rng = np.random.default_rng(5)
    seeds = [0, 1, 2, 3, 4]
    groups = {"paper": (75 + rng.normal(0, 2, 5), seeds)}
    groups |= {name: (75 + shift + rng.normal(0, 2, 5), seeds)
               for name, shift in (("a", 0), ("b", 1), ("c", 8))}
    groups["d"] = list(75 + rng.normal(0, 2, 4))  # bare values, no seeds -> Welch
    family = compare_family(groups, "paper")
    assert [c.variant for c in family] == ["a", "b", "c", "d"]
    assert [c.paired for c in family] == [True, True, True, False]
    raw = [c.p_value for c in family]
    assert [c.p_adjusted for c in family] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert family[2].verdict == "better"
    for c in family:
        assert c.p_adjusted >= c.p_value
        assert (c.verdict in ("better", "worse")) == (c.p_adjusted < 0.05)


def _null_studies(rng, studies, k=4, n=5):
    """Null studies: reference + k variants, n seeds, noise sd 2, a seed effect shared by all cells."""
    seed_effect = rng.normal(0, 1.5, (studies, 1, n))  # same seed = same data order and init
    return 76 + seed_effect + rng.normal(0, 2, (studies, k + 1, n))


def _holm_rows(p):
    """Row-wise Holm (sorted p times k..1, running max, capped at 1), vectorised over studies."""
    order = np.argsort(p, axis=1)
    steps = np.arange(p.shape[1], 0, -1)
    adjusted = np.minimum(1, np.maximum.accumulate(np.take_along_axis(p, order, 1) * steps, axis=1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, 1)
    return out


def _null_p(x, paired):
    variants, ref = x[:, 1:], x[:, :1]
    if paired:
        return sps.ttest_rel(variants, np.broadcast_to(ref, variants.shape), axis=2).pvalue
    return sps.ttest_ind(variants, ref, axis=2, equal_var=False).pvalue


@pytest.mark.parametrize("paired", [True, False])
def test_family_wise_error_at_most_5_percent(cheap_gc, paired):
    """No effect anywhere -> a better/worse verdict in at most 5% of studies (Holm controls FWER).

    1,000 studies go through compare_family and must agree exactly with a vectorised
    scipy + Holm computation; the rate itself is then measured with that computation on
    100,000 studies, because a 1,000-study estimate of a true ~4.7% rate has SD ~0.7 points and
    lands above 5% for about a third of seeds.
    """
    rng = np.random.default_rng(20240608)
    x = _null_studies(rng, 1000)
    seeds = list(range(x.shape[2])) if paired else None
    names = ["paper", "a", "b", "c", "d"]
    families = [compare_family({m: (study[i], seeds) for i, m in enumerate(names)}, "paper")
                for study in x]
    assert all(c.paired == paired for family in families for c in family)
    real = np.array([[c.p_adjusted for c in family] for family in families])
    assert real == pytest.approx(_holm_rows(_null_p(x, paired)), rel=1e-9, abs=1e-12)
    claims = np.array([[c.verdict in ("better", "worse") for c in family] for family in families])
    assert (claims == (real < 0.05)).all()

    p = _null_p(_null_studies(rng, 100_000), paired)
    fwer = (_holm_rows(p) < 0.05).any(axis=1).mean()
    assert fwer <= 0.05
    # The check has teeth: without Holm a spurious "finding" turns up in far more than 5%.
    if paired:
        assert (p < 0.05).any(axis=1).mean() > 0.15


# --- compare_axis ------------------------------------------------------------------------------


def _table(reference_flag: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(6)
    rows = []
    shifts = {"lrnet_paper": 0.0, "{3,5}": 0.06, "{3}": -0.06, "dense": 0.0}
    for dataset in ("fashion-mnist", "kmnist"):
        for seed in range(5):
            seed_effect = rng.normal(0, 0.02)
            for variant, shift in shifts.items():
                rows.append(dict(axis="kernels", variant=variant, dataset=dataset,
                                 is_reference=reference_flag and variant == "lrnet_paper",
                                 degradation="none", protocol="val-split", fold=0, seed=seed,
                                 status="ok",
                                 test_accuracy=0.76 + shift + seed_effect + rng.normal(0, 0.005),
                                 val_accuracy=0.5))
    rows.append(dict(rows[0], variant="{3,5}", status="failed", test_accuracy=0.0))
    rows.append(dict(rows[0], variant="{3,5}", seed=99, status="diverged", test_accuracy=0.1))
    rows.append(dict(rows[0], axis="links", variant="none", test_accuracy=0.1))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("flagged", [True, False])
def test_compare_axis(flagged):
    table = _table(flagged)
    out = compare_axis(table, "kernels")
    assert list(out.columns[:3]) == ["axis", "dataset", "degradation"]
    assert len(out) == 6 and set(out["reference"]) == {"lrnet_paper"}
    assert set(out["variant"]) == {"{3,5}", "{3}", "dense"}  # reference and other axes excluded
    assert out["paired"].all() and (out["n_variant"] == 5).all()  # failed/diverged rows ignored
    for (dataset, variant), row in out.set_index(["dataset", "variant"]).iterrows():
        sel = (table["dataset"] == dataset) & (table["status"] == "ok") & (table["axis"] == "kernels")
        ref = table[sel & (table["variant"] == "lrnet_paper")].sort_values("seed")
        var = table[sel & (table["variant"] == variant)].sort_values("seed")
        expected = 100 * (var["test_accuracy"].to_numpy() - ref["test_accuracy"].to_numpy()).mean()
        assert row["diff"] == pytest.approx(expected)  # points, not fractions
    by_variant = out.groupby("variant")["verdict"].agg(set)
    assert by_variant["{3,5}"] == {"better"} and by_variant["{3}"] == {"worse"}
    for _, group in out.groupby("dataset"):  # Holm within each dataset/degradation group
        expected = multipletests(group["p_value"], method="holm")[1]
        assert group["p_adjusted"].to_numpy() == pytest.approx(expected)


def test_compare_axis_edge_cases():
    table = _table()
    assert compare_axis(table, "links").empty  # no reference on that axis
    kmnist_ref = (table["dataset"] == "kmnist") & (table["variant"] == "lrnet_paper")
    out = compare_axis(table[~kmnist_ref], "kernels")
    kmnist = out[out["dataset"] == "kmnist"]
    assert len(kmnist) == 3 and (kmnist["verdict"] == "insufficient data (n<2)").all()


# --- seeds_decision ----------------------------------------------------------------------------


def test_seeds_decision():
    rng = np.random.default_rng(8)
    ref = 75 + rng.normal(0, 2, 5)
    tight = {"paper": ref, "a": ref + 1 + rng.normal(0, 0.1, 5), "b": ref - 2 + rng.normal(0, 0.1, 5)}
    d = seeds_decision(tight, "paper")
    assert not d.more_seeds and d.reason == "ci-target: every comparison's CI half-width ≤ 1.0 pts"
    assert set(d.half_widths) == {"a", "b"} and max(d.half_widths.values()) < 0.5  # paired by position
    assert d.half_widths["a"] == pytest.approx(stats.ci_half_width(tight["a"] - ref))

    noisy = {"paper": ref, "a": 75 + rng.normal(0, 2, 5)}
    d = seeds_decision(noisy, "paper")
    assert d.more_seeds and d.reason.startswith("ci-wide") and d.half_widths["a"] > 1.0

    ten = {"paper": 75 + rng.normal(0, 2, 10), "a": 75 + rng.normal(0, 2, 10)}
    assert seeds_decision(ten, "paper") == stats.SeedsDecision(
        False, "max-seeds: reached 10", seeds_decision(ten, "paper").half_widths)
    assert seeds_decision(noisy, "paper", budget_exhausted=True).reason == "budget"
    two = {"paper": ref[:2], "a": ref[:2] + 1}
    d = seeds_decision(two, "paper")
    assert d.more_seeds and d.reason.startswith("min-seeds")

    unequal = {"paper": ref, "a": 76 + rng.normal(0, 2, 4)}  # different lengths -> Welch
    ci = sps.ttest_ind(unequal["a"], ref, equal_var=False).confidence_interval(0.95)
    assert seeds_decision(unequal, "paper").half_widths["a"] == pytest.approx((ci.high - ci.low) / 2)


def test_seeds_decision_stops_when_decided():
    rng = np.random.default_rng(9)
    ref = 75 + rng.normal(0, 2, 5)
    kw = dict(target_half_width=0.01)  # a CI target no study meets: only "decided" can stop it
    clear = {"paper": ref, "a": ref + 6 + rng.normal(0, 0.5, 5), "b": ref + rng.normal(0, 0.2, 5)}
    d = seeds_decision(clear, "paper", mde_target=1.0, **kw)
    assert not d.more_seeds and d.reason == "decided: every comparison decided or MDE ≤ 1.0 pts"
    seeds = list(range(5))
    family = compare_family({k: (v, seeds) for k, v in clear.items()}, "paper")
    assert [c.verdict for c in family] == ["better", "equivalent within ±3 pts"]
    assert d.half_widths == seeds_decision(clear, "paper", **kw).half_widths  # same CIs as without

    # An inconclusive comparison whose MDE is still above the target: keep going...
    noisy = {"paper": ref, "a": ref + rng.normal(0, 3, 5)}
    (c,) = compare_family({k: (v, seeds) for k, v in noisy.items()}, "paper")
    assert c.verdict == "inconclusive"
    d = seeds_decision(noisy, "paper", mde_target=c.mde - 0.1, **kw)
    assert d.more_seeds and d.reason.startswith("ci-wide")
    # ...until more seeds could only find differences below the target.
    d = seeds_decision(noisy, "paper", mde_target=c.mde + 0.1, **kw)
    assert not d.more_seeds and d.reason.startswith("decided:")
    # The margin decides what "equivalent" means: a wide one settles the noisy comparison.
    assert seeds_decision(noisy, "paper", mde_target=0.1, margin=50.0, **kw).reason.startswith("decided:")

    # Never before min_seeds, never when the budget is gone, and nothing changes without mde_target.
    two = {"paper": ref[:2], "a": ref[:2] + 6}
    assert seeds_decision(two, "paper", mde_target=100.0, **kw).reason.startswith("min-seeds")
    assert seeds_decision(clear, "paper", mde_target=1.0, budget_exhausted=True, **kw).reason == "budget"
    assert seeds_decision(clear, "paper", **kw).reason.startswith("ci-wide")
    # Unequal lengths compare with Welch; a nan (failed run) drops out of its pair.
    unequal = {"paper": ref, "a": 81 + rng.normal(0, 0.5, 4)}
    assert seeds_decision(unequal, "paper", mde_target=0.5, **kw).reason.startswith("decided:")
    with_nan = {"paper": ref, "a": np.r_[ref[:4] + 6 + rng.normal(0, 0.3, 4), np.nan]}
    assert seeds_decision(with_nan, "paper", mde_target=0.5, **kw).reason.startswith("decided:")


def test_compare_axis_margin_and_alpha_used():
    out = compare_axis(_table(), "kernels")
    assert (out["margin"] == 3.0).all() and out["alpha_used"].to_numpy() == pytest.approx(0.05 / 3)
    assert set(out.loc[out["variant"] == "dense", "verdict"]) == {"equivalent within ±3 pts"}
    tight = compare_axis(_table(), "kernels", margin=0.05)
    assert set(tight.loc[tight["variant"] == "dense", "verdict"]) == {"inconclusive"}
    assert {"p_equivalence", "p_equivalence_adjusted"} <= set(out.columns)


def test_prediction_interval_is_for_one_run_and_needs_three():
    from study.stats import prediction_interval

    x = np.array([80.0, 82.0, 81.0, 85.0])
    low, high = prediction_interval(x)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) * np.sqrt(1 + 1 / 4)
    assert (low, high) == (pytest.approx(x.mean() - half), pytest.approx(x.mean() + half))
    _, ci_low, ci_high, _ = stats.mean_ci(x)
    assert low < ci_low and high > ci_high  # wider than the CI of the mean
    assert all(np.isnan(prediction_interval([80.0, 81.0])))


def test_clip_interval_cuts_to_the_accuracy_scale_and_says_so():
    assert stats.clip_interval(-0.65, 125.15) == (0.0, 100.0, True)
    assert stats.clip_interval(97.2, 101.3) == (97.2, 100.0, True)
    assert stats.clip_interval(80.0, 90.0) == (80.0, 90.0, False)
    low, high, clipped = stats.clip_interval(math.nan, math.nan)
    assert math.isnan(low) and math.isnan(high) and not clipped
    assert stats.clip_interval(-3.0, 2.0, bounds=(-1.0, 1.0)) == (-1.0, 1.0, True)


def test_mde_one_run_has_the_stated_power_against_the_prediction_interval():
    x = np.array([80.0, 82.0, 81.0, 85.0])
    n, s = len(x), x.std(ddof=1)
    mde = stats.mde_one_run(x)
    # power of "one new run outside the 95% prediction interval" at a true shift of mde, from scipy's noncentral t
    crit = sps.t.ppf(0.975, n - 1)
    nc = mde / (s * np.sqrt(1 + 1 / n))
    power = sps.nct.sf(crit, n - 1, nc) + sps.nct.cdf(-crit, n - 1, nc)
    assert power == pytest.approx(0.8, abs=1e-4)
    low, high = stats.prediction_interval(x)
    assert mde > (high - low) / 2  # inside the prediction interval is always closer than the MDE
    assert math.isnan(stats.mde_one_run([80.0, 81.0]))
    assert stats.mde_one_run([3.0, 3.0, 3.0]) == 0.0


# --- Welch by hand, and too few runs -------------------------------------------------------------------


def test_welch_comparison_matches_a_hand_computed_interval_and_tost():
    v, r = np.array([71.0, 74.5]), np.array([60.0, 61.5, 66.0])  # two runs are enough for Welch
    c = stats.compare(v, r, margin=3.0, variant="a", reference="b")
    a, b = v.var(ddof=1) / 2, r.var(ddof=1) / 3
    df = (a + b) ** 2 / (a**2 / 1 + b**2 / 2)
    se = math.sqrt(a + b)
    diff = v.mean() - r.mean()
    half = sps.t.ppf(0.975, df) * se
    assert (c.variant, c.reference, c.n_variant, c.n_reference, c.paired) == ("a", "b", 2, 3, False)
    assert (c.mean_variant, c.mean_reference, c.diff) == pytest.approx((v.mean(), r.mean(), diff))
    assert (c.ci_low, c.ci_high) == pytest.approx((diff - half, diff + half))
    assert c.p_value == pytest.approx(2 * sps.t.sf(abs(diff) / se, df))
    tost = max(sps.t.sf((diff + 3.0) / se, df), sps.t.cdf((diff - 3.0) / se, df))
    assert c.p_equivalence == pytest.approx(tost) and c.margin == 3.0 and c.alpha_used == 0.05


@pytest.mark.parametrize(("v", "r"), [([70.0], [60.0, 62.0, 64.0]), ([60.0, 62.0], [70.0]), ([], [1.0, 2.0])])
def test_one_run_on_a_side_is_insufficient_and_says_only_the_means(v, r):
    c = stats.compare(v, r, margin=2.5, variant="a", reference="b")
    assert c.verdict == stats.INSUFFICIENT and (c.variant, c.reference) == ("a", "b") and not c.paired
    assert (c.n_variant, c.n_reference, c.margin) == (len(v), len(r), 2.5)
    means = (np.mean(v) if v else math.nan, np.mean(r))
    assert c.mean_variant == pytest.approx(means[0], nan_ok=True) and c.mean_reference == pytest.approx(means[1])
    assert c.diff == pytest.approx(means[0] - means[1], nan_ok=True)
    for field in ("ci_low", "ci_high", "p_value", "p_adjusted", "p_equivalence", "p_equivalence_adjusted", "mde"):
        assert math.isnan(getattr(c, field)), field


def test_two_seeds_are_enough_for_an_interval_and_a_verdict():
    mean, low, high, n = stats.mean_ci([1.0, 3.0])
    half = sps.t.ppf(0.975, 1) * 1.0  # sd of [1, 3] is sqrt(2), over sqrt(2) runs
    assert (mean, n) == (2.0, 2) and (low, high) == pytest.approx((2.0 - half, 2.0 + half))
    c = stats.compare([71.0, 74.0], [70.0, 71.0], variant_seeds=[0, 1], reference_seeds=[0, 1])
    assert c.paired and c.n_variant == 2 and c.verdict == stats.INCONCLUSIVE and math.isfinite(c.mde)


def test_identical_paired_differences_collapse_the_interval_to_the_point():
    c = stats.compare([71.0, 72.0, 73.0], [70.0, 71.0, 72.0], variant_seeds=[0, 1, 2], reference_seeds=[0, 1, 2])
    assert c.paired and c.diff == pytest.approx(1.0) and (c.ci_low, c.ci_high) == pytest.approx((1.0, 1.0))
    assert c.verdict == "better" and c.p_equivalence == 0.0  # known exactly: 1 point, inside ±3


@pytest.mark.parametrize(("diff", "expected"), [(2.9, 0.0), (-2.9, 0.0), (3.0, 1.0), (-3.5, 1.0)])
def test_tost_without_spread_is_decided_by_the_margin_alone(diff, expected):
    assert stats._tost_p(diff, 0.0, 5, 3.0) == expected


def test_tost_of_an_unknown_difference_or_spread_is_nan():
    assert math.isnan(stats._tost_p(math.nan, 1.0, 5, 3.0)) and math.isnan(stats._tost_p(1.0, math.inf, 5, 3.0))


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n, ratio, alpha, d", [(3, 1.0, 0.05, 1.5), (5, 1.0, 0.025, 0.8), (10, 2.0, 0.01, 0.5),
                                                (20, 0.5, 0.05, 0.3), (4, 1.0, 0.2, 0.0)])
def test_power_is_statsmodels_noncentral_t_power(paired, n, ratio, alpha, d):
    theirs = (TTestPower().power(d, nobs=n, alpha=alpha) if paired
              else TTestIndPower().power(d, nobs1=n, alpha=alpha, ratio=ratio))
    assert stats._power(d, n, ratio, alpha, paired) == pytest.approx(float(theirs), abs=1e-9)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n, alpha", [(2, 0.05 / 3), (3, 0.01), (5, 0.05), (12, 0.025)])
def test_effect_size_gives_the_asked_power_even_where_statsmodels_gives_up(paired, n, alpha):
    d = stats._effect_size(n, 1.0, alpha, 0.8, paired)
    assert stats._power(d, n, 1.0, alpha, paired) == pytest.approx(0.8, abs=1e-6)
    assert stats._solve_effect_size(n, 1.0, alpha, 0.8, paired) == pytest.approx(d, rel=1e-6)
    assert stats._effect_size(n + 1, 1.0, alpha, 0.8, paired) < d  # more seeds detect smaller effects
    assert stats._effect_size(n, 1.0, alpha / 2, 0.8, paired) > d  # a stricter level needs larger ones
    assert stats._mde(2.5, n, 1.0, alpha, 0.8, paired=paired) == pytest.approx(2.5 * d, rel=1e-12)


def test_solve_effect_size_is_nan_when_no_effect_reaches_the_power():
    assert math.isnan(stats._solve_effect_size(2, 1.0, 1e-12, 0.999999, True))


@pytest.mark.parametrize("sd, n", [(-1.0, 5), (math.inf, 5), (math.nan, 5), (1.0, 1), (1.0, 0), (0.0, 1)])
def test_mde_is_nan_outside_its_domain(sd, n):
    assert math.isnan(stats._mde(sd, n, 1.0, 0.05, 0.8, paired=True))

    assert stats._mde(0.0, 5, 1.0, 0.05, 0.8, paired=False) == 0.0


@pytest.mark.parametrize("value, expected", [
    (None, False), (math.nan, False), (pd.NA, False), ("true", True), (" TRUE ", True), ("1", True), ("yes", True),
    ("Yes", True), ("no", False), ("false", False), ("0", False), ("", False), ("truthy", False), (1, True), (0, False),
    (True, True), (False, False), (2.5, True), (0.0, False)])
def test_truthy_reads_a_results_flag_leniently(value, expected):
    assert stats.truthy(value) is expected


def test_welch_half_width_is_half_scipys_welch_interval():
    v, r = np.array([76.2, 75.1, 77.4, 76.0]), np.array([75.0, 76.5, 75.2, 75.8, 74.9])
    ci = sps.ttest_ind(v, r, equal_var=False).confidence_interval(0.95)
    assert stats._welch_half_width(v, r) == pytest.approx((ci.high - ci.low) / 2, rel=1e-12)
    wide = sps.ttest_ind(v, r, equal_var=False).confidence_interval(0.99)
    assert stats._welch_half_width(v, r, 0.99) == pytest.approx((wide.high - wide.low) / 2, rel=1e-12)
    assert stats._welch_half_width(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == 0.0
    assert stats._welch_half_width(np.array([1.0, 1.0]), np.array([2.0, 3.0])) > 0
    assert math.isnan(stats._welch_half_width(np.array([1.0]), r)) and math.isnan(stats._welch_half_width(v, np.array([2.0])))


def test_interval_edges_are_not_clipped_and_open_or_missing_bounds_pass_through():
    assert stats.clip_interval(0.0, 100.0) == (0.0, 100.0, False)  # touching the scale is inside it
    assert stats.clip_interval(50.0, math.inf) == (50.0, math.inf, False)
    assert stats.clip_interval(-math.inf, 50.0) == (-math.inf, 50.0, False)
    low, high, clipped = stats.clip_interval(math.nan, 150.0)
    assert math.isnan(low) and high == 150.0 and clipped is False
    low, high, clipped = stats.clip_interval(-5.0, None)
    assert low == -5.0 and high is None and clipped is False


def test_prediction_and_confidence_intervals_at_their_smallest_and_other_levels():
    x = np.array([70.0, 72.0, 75.0])
    low, high = stats.prediction_interval(x)
    half = sps.t.ppf(0.975, 2) * x.std(ddof=1) * math.sqrt(1 + 1 / 3)
    assert (low, high) == (pytest.approx(x.mean() - half), pytest.approx(x.mean() + half))  # n = 3 is enough
    _, ci_low, ci_high, _ = stats.mean_ci(x, 0.99)
    assert stats.ci_half_width(x, 0.99) == pytest.approx((ci_high - ci_low) / 2)
