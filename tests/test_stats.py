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


def test_compare_axis_never_guesses_the_reference_from_a_name():
    assert compare_axis(_table(reference_flag=False), "kernels").empty  # "lrnet_paper" is not flagged: no reference


def test_compare_axis():
    table = _table()
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


# --- edges pinned for mutation testing: each assertion checked against scipy/statsmodels or by hand ---------------


def test_default_side_names_and_a_missing_reference_is_named_in_the_error():
    c = compare([77.0, 78.0, 79.0], [74.0, 75.0, 76.0])
    assert (c.variant, c.reference) == ("variant", "reference")
    with pytest.raises(KeyError, match=r"reference group 'paper' not in \['a', 'b'\]"):
        compare_family({"a": [1.0, 2.0], "b": [2.0, 3.0]}, "paper")
    with pytest.raises(KeyError, match=r"reference group 'paper' not in \['a'\]"):
        seeds_decision({"a": [1.0, 2.0, 3.0]}, "paper")
    with pytest.raises(ValueError, match="3 values but 2 seeds"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], variant_seeds=[0, 1], reference_seeds=[0, 1, 2])


def test_none_is_a_missing_run_like_nan():
    """A run without a value (None, as a JSON null reads) drops out wherever a nan does."""
    assert stats.mean_ci([70.0, None, 72.0])[::3] == (71.0, 2)
    v, r = [77.0, None, 78.5, 79.0], [74.0, 75.0, 76.5]
    c = compare(v, r)
    res = sps.ttest_ind([77.0, 78.5, 79.0], r, equal_var=False)
    assert c.n_variant == 3 and c.p_value == pytest.approx(res.pvalue)
    out = stats.holm([0.01, None, 0.03])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.03)
    d = seeds_decision({"paper": [75.0, 72.0, 78.0, None, 74.0], "a": [76.0, None, 79.1, 75.2, 75.5]}, "paper")
    diffs = np.array([1.0, 1.1, 1.5])  # the seeds with a value on both sides
    low, high = sps.t.interval(0.95, 2, loc=diffs.mean(), scale=sps.sem(diffs))
    assert d.half_widths["a"] == pytest.approx((high - low) / 2)


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the constant side
def test_welch_with_one_side_without_spread_uses_scipys_interval_and_statsmodels_tost():
    # var / n is exactly 1 on the varying side ([74, 76]: sample variance 2, two runs).
    for v, r in (([74.0, 76.0], [75.0, 75.0, 75.0]), ([75.0, 75.0, 75.0], [74.0, 76.0]),
                 ([72.0, 73.0, 75.0], [74.0, 74.0])):
        c = compare(v, r)
        res = sps.ttest_ind(v, r, equal_var=False)
        ci = res.confidence_interval(0.95)
        assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert c.ci_high - c.ci_low > 1  # the spread of one side still widens the interval
        assert c.p_equivalence == pytest.approx(ttost_ind(np.array(v), np.array(r), -3.0, 3.0, usevar="unequal")[0])


def test_welch_without_any_spread_knows_the_difference_exactly():
    c = compare([75.0, 75.0, 75.0], [74.0, 74.0, 74.0])
    assert c.paired is False and (c.ci_low, c.ci_high) == (1.0, 1.0)
    assert c.p_equivalence == 0.0 and c.mde == 0.0  # 1 point, known exactly, inside ±3
    assert stats.compare([70.0], [60.0, 62.0]).paired is False


def test_an_empty_side_gives_nan_means_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on the way to nan
        c = compare([], [74.0, 75.0])
        d = compare([74.0, 75.0], [])
    assert math.isnan(c.mean_variant) and math.isnan(d.mean_reference) and c.verdict == stats.INSUFFICIENT


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the constant side
def test_welch_half_width_with_one_side_without_spread_is_scipys():
    for v, r in (([74.0, 76.0], [75.0, 75.0]), ([75.0, 75.0], [74.0, 76.0]), ([70.0, 73.0, 71.0], [72.0, 72.0])):
        ci = sps.ttest_ind(v, r, equal_var=False).confidence_interval(0.95)
        assert stats._welch_half_width(np.array(v), np.array(r)) == pytest.approx((ci.high - ci.low) / 2)
        assert (ci.high - ci.low) / 2 > 1


def test_seeds_for_mde_edges():
    assert seeds_for_mde(1.0, math.inf, 0.05) is None  # an unusable target
    assert seeds_for_mde(math.inf, 1.0, 0.05) is None
    assert seeds_for_mde(0.0, 0.0, 0.05) == 2  # identical differences: an MDE of 0 meets a target of 0
    # sd 0.1, target 0.5: a standardised effect of 5, checked with the noncentral t directly.
    n = seeds_for_mde(0.1, 0.5, 0.05)
    assert _paired_power(5.0, n, 0.05) >= 0.8 > _paired_power(5.0, n - 1, 0.05)
    n = seeds_for_mde(2.0, 3.0, 0.025)
    assert seeds_for_mde(2.0, 3.0, 0.025, max_seeds=n) == n  # max_seeds itself is allowed
    n90 = seeds_for_mde(2.0, 3.0, 0.05, power=0.9)
    assert _paired_power(1.5, n90, 0.05) >= 0.9 > _paired_power(1.5, n90 - 1, 0.05)
    # An effect of 0.4002 SD needs 51 pairs: one more than the default cap of 50.
    assert _paired_power(0.4002, 51, 0.05) >= 0.8 > _paired_power(0.4002, 50, 0.05)
    assert seeds_for_mde(1.0, 0.4002, 0.05) is None
    assert seeds_for_mde(1.0, 0.4002, 0.05, max_seeds=51) == 51


def test_equivalence_power_domain():
    for alpha in (0.0, 0.5, -0.1):
        with pytest.raises(ValueError, match="alpha must be in"):
            equivalence_power(1.0, 5, 1.0, alpha)
    for sd, margin, true_diff in ((-1.0, 1.0, 0.0), (math.inf, 1.0, 0.0), (math.nan, 1.0, 0.0),
                                  (1.0, 1.0, math.inf), (1.0, math.nan, 0.0)):
        assert math.isnan(equivalence_power(sd, 5, margin, 0.05, true_diff)), (sd, margin, true_diff)
    assert equivalence_power(1.0, 5, 0.0, 0.05) == 0.0  # no difference is inside ±0
    assert equivalence_power(1.0, 5, -1.0, 0.05) == 0.0
    # Without spread the TOST is decided by the margin alone, which is open: a difference at it is not inside.
    assert equivalence_power(0.0, 5, 1.0, 0.05, true_diff=1.0) == 0.0
    assert equivalence_power(0.0, 5, 1.0, 0.05, true_diff=0.99) == 1.0


def test_equivalence_power_of_two_pairs_matches_monte_carlo():
    """Two pairs (one degree of freedom) are enough for a TOST: 4,000 simulated designs judged by scipy."""
    rng = np.random.default_rng(12)
    d = rng.normal(0.0, 1.0, (4000, 2))
    p_low = sps.ttest_1samp(d, -3.0, axis=1, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d, 3.0, axis=1, alternative="less").pvalue
    rate = (np.maximum(p_low, p_high) < 0.05).mean()
    power = equivalence_power(1.0, 2, 3.0, 0.05)
    assert 0.05 < power < 0.95
    assert abs(rate - power) <= 3 * math.sqrt(power * (1 - power) / 4000)


def test_verdict_needs_p_strictly_below_alpha():
    assert stats._verdict(1.0, 0.05, math.nan, 3.0, 0.05, False) == stats.INCONCLUSIVE
    assert stats._verdict(1.0, 0.0499, math.nan, 3.0, 0.05, False) == "better"
    assert stats._verdict(1.0, 0.5, 0.05, 3.0, 0.05, False) == stats.INCONCLUSIVE
    assert stats._verdict(1.0, 0.5, 0.0499, 3.0, 0.05, False) == "equivalent within ±3 pts"


def test_a_zero_margin_is_allowed_and_never_shows_equivalence():
    v, r = np.array([76.2, 75.1, 77.4, 76.0]), np.array([75.0, 76.5, 75.2, 75.8, 74.9])
    c = compare(v, r, margin=0.0)
    assert c.margin == 0.0 and c.p_equivalence >= 0.5
    assert c.p_equivalence == pytest.approx(ttost_ind(v, r, 0.0, 0.0, usevar="unequal")[0])
    assert not c.verdict.startswith("equivalent")


def test_a_tuple_of_two_values_is_a_group_of_values_not_values_and_seeds():
    family = compare_family({"paper": (74.0, 75.0, 76.0), "a": (77.0, 78.5)}, "paper")
    res = sps.ttest_ind([77.0, 78.5], [74.0, 75.0, 76.0], equal_var=False)
    assert (family[0].n_variant, family[0].paired) == (2, False) and family[0].p_value == pytest.approx(res.pvalue)


def test_mde_one_run_at_a_unit_sd():
    x = np.array([1.0, 2.0, 3.0])  # sample SD exactly 1
    mde = stats.mde_one_run(x)
    nc = mde / math.sqrt(1 + 1 / 3)
    crit = sps.t.ppf(0.975, 2)
    assert sps.nct.sf(crit, 2, nc) + sps.nct.cdf(-crit, 2, nc) == pytest.approx(0.8, abs=1e-4)


def test_solved_effect_size_below_one():
    """The bracket starts at 0: a design that detects less than one SD is solved too (statsmodels agrees here)."""
    for paired in (True, False):
        theirs = (TTestPower().solve_power(nobs=20, alpha=0.05, power=0.8) if paired
                  else TTestIndPower().solve_power(nobs1=40, ratio=1.0, alpha=0.05, power=0.8))
        assert theirs < 1
        n = 20 if paired else 40
        assert stats._solve_effect_size(n, 1.0, 0.05, 0.8, paired) == pytest.approx(float(theirs), rel=1e-6)


# --- seeds_decision: each stop rule at its boundary ----------------------------------------------------------------


def _paired_half_width(d):
    d = np.asarray(d, dtype=float)
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    return (high - low) / 2


def test_seeds_decision_at_exactly_min_seeds():
    ref = np.array([75.0, 72.0, 78.0])
    tight = {"paper": ref, "a": ref + [1.0, 1.1, 0.9]}
    d = seeds_decision(tight, "paper")  # default min_seeds = 3: three seeds are enough
    assert d.more_seeds is False and d.reason.startswith("ci-target")
    assert d.half_widths == {"a": pytest.approx(_paired_half_width([1.0, 1.1, 0.9]))} and d.half_widths["a"] < 1
    wide = {"paper": ref, "a": ref + [3.0, -2.0, 1.0]}
    d = seeds_decision(wide, "paper")
    assert d.more_seeds is True and d.reason == (
        f"ci-wide: widest CI half-width {_paired_half_width([3.0, -2.0, 1.0]):.1f} pts > 1.0 pts")
    d = seeds_decision({"paper": ref[:2], "a": ref[:2] + 1}, "paper")
    assert d.reason == "min-seeds: have 2, need 3" and d.half_widths == {"a": 0.0}  # identical differences
    clear = {"paper": ref, "a": ref + [6.1, 5.9, 6.0]}
    assert compare(clear["a"], ref, variant_seeds=[0, 1, 2], reference_seeds=[0, 1, 2]).verdict == "better"
    d = seeds_decision(clear, "paper", target_half_width=0.01, mde_target=0.5)
    assert d.more_seeds is False and d.reason == "decided: every comparison decided or MDE ≤ 0.5 pts"


def test_seeds_decision_half_width_target_is_inclusive():
    ref = np.array([75.0, 72.0, 78.0, 74.0])
    d = seeds_decision({"paper": ref, "a": ref + 2.0}, "paper", target_half_width=0.0)  # identical differences
    assert d.half_widths == {"a": 0.0} and d.more_seeds is False and d.reason.startswith("ci-target")


def test_seeds_decision_budget_and_max_seeds_keep_the_half_widths():
    ref = np.array([75.0, 72.0, 78.0, 74.0, 76.0])
    diffs = [3.0, -2.0, 1.0, 4.0, -1.5]
    groups = {"paper": ref, "a": ref + diffs}
    expected = {"a": pytest.approx(_paired_half_width(diffs))}
    d = seeds_decision(groups, "paper", budget_exhausted=True)
    assert (d.more_seeds, d.reason, d.half_widths) == (False, "budget", expected) and d.more_seeds is False
    d = seeds_decision(groups, "paper", max_seeds=5)
    assert (d.more_seeds, d.reason, d.half_widths) == (False, "max-seeds: reached 5", expected)


def test_seeds_decision_default_margin_is_three_points():
    ref = np.array([75.0, 72.0, 78.0, 74.0, 76.0])
    d = np.array([-4.5, 4.5, -1.0, 1.0, 0.0])
    # statsmodels' TOST: not equivalent within ±3 (p 0.054), equivalent within ±4 (p 0.026).
    assert ttost_paired(ref + d, ref, -3, 3)[0] > 0.05 > ttost_paired(ref + d, ref, -4, 4)[0]
    groups = {"paper": ref, "a": ref + d}
    kw = dict(target_half_width=0.01, mde_target=1.0)
    assert seeds_decision(groups, "paper", **kw).reason.startswith("ci-wide")
    assert seeds_decision(groups, "paper", margin=4.0, **kw).reason.startswith("decided:")


def test_seeds_decision_with_only_the_reference_or_an_unknown_width():
    d = seeds_decision({"paper": [75.0, 72.0, 78.0]}, "paper")
    assert d.more_seeds is True and d.reason.startswith("ci-wide") and d.half_widths == {}
    # "b" has one seed with a value on both sides, so its half-width is unknown (nan): that counts as widest.
    nan = math.nan
    groups = {"paper": [70.0, 71.0, 72.0, nan, nan, nan], "a": [75.0, 71.0, 74.0, nan, nan, nan],
              "b": [nan, nan, 73.0, 74.0, 75.0, 76.0]}
    d = seeds_decision(groups, "paper")
    assert d.half_widths["a"] == pytest.approx(_paired_half_width([5.0, 0.0, 2.0])) and math.isnan(d.half_widths["b"])
    assert d.reason == "ci-wide: widest CI half-width nan pts > 1.0 pts" and d.more_seeds is True


def test_seeds_decision_pairs_by_position_only_for_equal_lengths():
    ref = np.array([75.0, 70.0, 80.0, 73.0, 77.0])
    a = ref[:4] + [1.0, 1.05, 0.95, 1.0]  # one seed short: Welch, not pairs by position
    assert sps.ttest_ind(a, ref, equal_var=False).pvalue > 0.5  # Welch cannot see the 1-point shift
    d = seeds_decision({"paper": ref, "a": a}, "paper", target_half_width=0.01, mde_target=1.0)
    assert d.more_seeds is True and d.reason.startswith("ci-wide")


def test_an_mde_of_exactly_the_target_is_decided():
    # Identical runs with a zero margin: TOST cannot show ±0, the test has nothing to reject, but the MDE is 0.
    ref = [75.0, 72.0, 78.0]
    (c,) = compare_family({"paper": (ref, [0, 1, 2]), "a": (ref, [0, 1, 2])}, "paper", margin=0.0)
    assert c.verdict == stats.INCONCLUSIVE and c.mde == 0.0
    assert stats._all_decided({"paper": ref, "a": ref}, "paper", 0.0, 0.0)


# --- compare_axis and typical_mde: table handling ------------------------------------------------------------------


def _run(variant, value, *, seed=0, axis="k", dataset="fm", degradation="none", **extra):
    """One ok row; the variant named "paper" is flagged the reference unless `is_reference` says otherwise."""
    extra.setdefault("is_reference", variant == "paper")
    return dict(axis=axis, variant=variant, dataset=dataset, degradation=degradation, seed=seed, status="ok",
                test_accuracy=value, **extra)


COLUMNS = ["axis", "dataset", "degradation", *(f.name for f in stats.dataclasses.fields(Comparison))]


def test_compare_axis_without_a_comparison_is_an_empty_table_with_all_columns():
    no_ref = pd.DataFrame([_run(v, 0.7 + 0.01 * s, seed=s) for v in ("a", "b") for s in range(3)])
    out = compare_axis(no_ref, "k")
    assert out.empty and list(out.columns) == COLUMNS
    only_ref = pd.DataFrame([_run("paper", 0.7 + 0.01 * s, seed=s) for s in range(3)])
    out = compare_axis(only_ref, "k")
    assert out.empty and list(out.columns) == COLUMNS


def test_compare_axis_rows_name_their_axis_and_skip_text_values():
    rows = [_run(v, 0.7 + shift + 0.01 * s, seed=s) for v, shift in (("paper", 0.0), ("a", 0.02)) for s in range(3)]
    rows.append(_run("a", "n/a", seed=3))  # a value that is not a number is no run
    out = compare_axis(pd.DataFrame(rows), "k")
    assert list(out["axis"]) == ["k"] and list(out["n_variant"]) == [3]
    assert out["diff"].iloc[0] == pytest.approx(2.0)


def test_compare_axis_reference_flag_wins_over_the_paper_name():
    rows = [_run(v, 0.7 + shift + 0.01 * s, seed=s, is_reference=v == "base")
            for v, shift in (("base", 0.0), ("paper", 0.03), ("a", 0.01)) for s in range(3)]
    out = compare_axis(pd.DataFrame(rows), "k")
    assert set(out["reference"]) == {"base"} and set(out["variant"]) == {"paper", "a"}
    two = [dict(r, is_reference=r["variant"] != "a") for r in rows]
    with pytest.raises(ValueError, match=r"several reference variants flagged on one axis: \['base', 'paper'\]"):
        compare_axis(pd.DataFrame(two), "k")


def test_compare_axis_pairs_by_protocol_fold_and_seed():
    rng = np.random.default_rng(13)
    keys = [(p, f, s) for p in ("val-split", "cv") for f in (0, 1) for s in (0, 1)]
    base = {k: 0.75 + rng.normal(0, 0.03) for k in keys}  # each (protocol, fold, seed) its own split and init
    shift = {k: 0.01 + rng.normal(0, 0.002) for k in keys}
    rows = [_run(v, base[k] + (shift[k] if v == "a" else 0.0), seed=k[2], protocol=k[0], fold=k[1],
                 is_reference=v == "paper") for v in ("paper", "a") for k in keys]
    (row,) = compare_axis(pd.DataFrame(rows), "k").to_dict("records")
    ref = np.array([base[k] for k in keys]) * 100
    res = sps.ttest_rel(ref + np.array([shift[k] for k in keys]) * 100, ref)
    assert row["paired"] and row["n_variant"] == 8 and row["p_value"] == pytest.approx(res.pvalue)


def test_compare_axis_runs_without_a_seed_do_not_pair():
    rows = [_run(v, 0.7 + shift + 0.01 * i, seed=math.nan, fold=f)
            for v, shift in (("paper", 0.0), ("a", 0.02)) for f in (0, 1) for i in range(2)]
    (row,) = compare_axis(pd.DataFrame(rows), "k").to_dict("records")
    x = 70 + np.array([0.0, 1.0, 0.0, 1.0])
    res = sps.ttest_ind(x + 2, x, equal_var=False)
    assert row["paired"] is False and row["n_variant"] == 4 and row["p_value"] == pytest.approx(res.pvalue)


def test_compare_axis_keeps_a_missing_degradation_as_a_group_in_sorted_order():
    rows = [_run(v, 0.7 + shift + 0.01 * s, seed=s, dataset=ds, degradation=None)
            for ds in ("kmnist", "fashion-mnist") for v, shift in (("paper", 0.0), ("a", 0.02)) for s in range(3)]
    out = compare_axis(pd.DataFrame(rows), "k")
    assert list(out["dataset"]) == ["fashion-mnist", "kmnist"] and out["degradation"].isna().all()


def test_typical_mde_cells_are_axis_variant_dataset_degradation():
    rows = []
    for i, (axis, ds, deg) in enumerate((a, d, g) for a in ("k", "l") for d in ("fm", "km") for g in ("none", "blur")):
        for dv in (-1.0, 1.0):  # two runs per cell, 1 point either side of the cell's own mean
            rows.append(_run("v", (70.0 + 5 * i + dv) / 100, axis=axis, dataset=ds, degradation=deg))
    rows.append(_run("v", "n/a"))  # not a number: no run
    table = pd.DataFrame(rows)
    mde = stats.typical_mde(table)  # within-cell SD sqrt(2), 2 runs per cell
    effect = mde / math.sqrt(2)
    assert TTestIndPower().power(effect, nobs1=2, alpha=0.05, ratio=1.0) == pytest.approx(0.8, abs=1e-6)
    assert stats.typical_mde(table, n=2) == pytest.approx(mde)


def test_typical_mde_keeps_cells_without_a_degradation_and_needs_within_cell_spread():
    rows = [_run("v", x / 100, degradation=None) for x in (70.0, 72.0, 74.0)]  # variance 4
    rows += [_run("v", x / 100, degradation="blur") for x in (70.0, 71.0, 72.0)]  # variance 1
    mde = stats.typical_mde(pd.DataFrame(rows))
    d3 = TTestIndPower().solve_power(nobs1=3, ratio=1.0, alpha=0.05, power=0.8)
    assert mde == pytest.approx(d3 * math.sqrt((2 * 4 + 2 * 1) / 4), rel=1e-6)
    singles = pd.DataFrame([_run(v, 0.7) for v in ("a", "b", "c")])  # no cell with two runs: no SD
    assert math.isnan(stats.typical_mde(singles, n=3))
    one_pair = pd.DataFrame([_run("a", 0.70), _run("a", 0.72), _run("b", 0.7), _run("c", 0.8)])  # one dof
    d3 = TTestIndPower().solve_power(nobs1=3, ratio=1.0, alpha=0.05, power=0.8)
    assert stats.typical_mde(one_pair, n=3) == pytest.approx(d3 * math.sqrt(2), rel=1e-6)
