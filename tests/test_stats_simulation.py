"""Simulated studies: the verdicts' error rates and powers are the ones study.stats promises.

Each scenario is a family of 2 variants compared with one reference on n = 5 paired seeds, the
per-seed differences having SD 1 (a seed effect shared by all cells cancels in the pairs). 400
families go through `compare_family` and must agree exactly with a vectorised scipy + Holm
version of the verdict rule; the rates are then measured with that version on 20,000 families, so
that the binomial tolerances (3 SDs) are tight without a slow test.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from study.stats import compare_family, equivalence_power, equivalence_verdict, mde_paired
from tests.test_stats import _holm_rows

N_SEEDS = 5
ALPHA = 0.05
M = 2  # comparisons per family
THROUGH_COMPARE = 300
MEASURED = 20_000
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = 0, 1, 2, 3


@pytest.fixture(autouse=True)
def cheap_gc():
    """statsmodels' Holm runs gc.collect() per call; freezing the heap keeps the loops fast."""
    gc.freeze()
    yield
    gc.unfreeze()


def _families(rng, count, effects, sd=1.0):
    """(count, 1 + M, N_SEEDS) runs: reference first; differences from it have SD `sd`."""
    seed_effect = rng.normal(0, 2, (count, 1, N_SEEDS))
    noise = rng.normal(0, sd / math.sqrt(2), (count, 1 + M, N_SEEDS))
    shift = np.r_[0.0, effects][None, :, None]
    return 75 + seed_effect + shift + noise


def _rule(x, margin):
    """Adjusted t-test and TOST p-values and verdict codes, vectorised over families."""
    d = x[:, 1:] - x[:, :1]
    p = _holm_rows(sps.ttest_1samp(d, 0.0, axis=2).pvalue)
    p_low = sps.ttest_1samp(d, -margin, axis=2, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d, margin, axis=2, alternative="less").pvalue
    p_eq = _holm_rows(np.maximum(p_low, p_high))
    mean = d.mean(axis=2)
    verdict = np.where(p < ALPHA, np.where(mean > 0, BETTER, WORSE),
                       np.where(p_eq < ALPHA, EQUIVALENT, INCONCLUSIVE))
    return p, p_eq, verdict, d.std(axis=2, ddof=1)


def _check_compare_family_agrees(x, margin):
    """The first THROUGH_COMPARE families through compare_family, against the vectorised rule."""
    x = x[:THROUGH_COMPARE]
    p, p_eq, verdict, sd = _rule(x, margin)
    names = ["paper", "a", "b"]
    seeds = list(range(N_SEEDS))
    codes = {"better": BETTER, "worse": WORSE, equivalence_verdict(margin): EQUIVALENT,
             "inconclusive": INCONCLUSIVE}
    got = [compare_family({name: (study[i], seeds) for i, name in enumerate(names)}, "paper",
                          margin=margin) for study in x]
    assert all(c.paired and c.alpha_used == ALPHA / M for family in got for c in family)
    assert np.array([[codes[c.verdict] for c in f] for f in got]).tolist() == verdict.tolist()
    assert np.array([[c.p_adjusted for c in f] for f in got]) == pytest.approx(p, rel=1e-9, abs=1e-12)
    assert np.array([[c.p_equivalence_adjusted for c in f] for f in got]) == pytest.approx(
        p_eq, rel=1e-9, abs=1e-12)
    mde = np.array([[c.mde for c in f] for f in got])
    assert mde == pytest.approx(mde_paired(1.0, N_SEEDS, ALPHA / M) * sd, rel=1e-9)


def _tolerance(rate, count=MEASURED):
    return 3 * math.sqrt(rate * (1 - rate) / count)


@pytest.mark.parametrize("margin", [3.0, 1.5])
def test_no_effect(margin):
    """No true effect: at most 5% of families claim a difference, and equivalence shows as promised.

    A family shows equivalence for a contrast with at least the power of a TOST at alpha / m
    (Holm's first step) and at most that of an unadjusted TOST at alpha.
    """
    rng = np.random.default_rng(20240611)
    x = _families(rng, MEASURED, [0.0, 0.0])
    _check_compare_family_agrees(x, margin)
    p, p_eq, verdict, _ = _rule(x, margin)
    claims = (verdict <= WORSE).any(axis=1).mean()
    assert claims <= ALPHA + _tolerance(ALPHA)
    # The check has teeth: unadjusted, the family claims a difference far more often.
    raw = sps.ttest_1samp(x[:, 1:] - x[:, :1], 0.0, axis=2).pvalue
    assert (raw < ALPHA).any(axis=1).mean() > ALPHA + 3 * _tolerance(ALPHA)

    shown = (p_eq[:, 0] < ALPHA).mean()  # equivalence established for contrast "a"
    low = equivalence_power(1.0, N_SEEDS, margin, ALPHA / M)
    high = equivalence_power(1.0, N_SEEDS, margin, ALPHA)
    assert low - _tolerance(low) <= shown <= high + _tolerance(high)
    # The verdict says "equivalent" unless the t-test (at most ~alpha/2 here) claimed a difference.
    equivalent = (verdict[:, 0] == EQUIVALENT).mean()
    differs = (verdict[:, 0] <= WORSE).mean()
    assert equivalent == pytest.approx(shown - ((p_eq[:, 0] < ALPHA) & (verdict[:, 0] <= WORSE)).mean())
    assert equivalent >= low - _tolerance(low) - differs
    if margin == 1.5:  # mid-range power: the rate is really pinned, not just near 1
        assert 0.3 < low < high < 0.9


def test_true_effect_at_the_mde_is_found_with_80_percent_power():
    """Contrast "a" is off by exactly the MDE (alpha / m, 80% power), "b" has no effect.

    Holm's first step is Bonferroni at alpha / m, so "a" is found as better in at least 80% of
    families, and in no more than an unadjusted test at alpha would find it.
    """
    mde = mde_paired(1.0, N_SEEDS, ALPHA / M)
    rng = np.random.default_rng(20240612)
    x = _families(rng, MEASURED, [mde, 0.0])
    _check_compare_family_agrees(x, 3.0)
    _, _, verdict, _ = _rule(x, 3.0)
    better = (verdict[:, 0] == BETTER).mean()
    assert better >= 0.8 - _tolerance(0.8)
    unadjusted = TTestPower().power(effect_size=mde, nobs=N_SEEDS, alpha=ALPHA, alternative="two-sided")
    assert better <= unadjusted + _tolerance(unadjusted)
    assert (verdict[:, 0] == WORSE).mean() < 1e-3  # a wrong-sign claim is (nearly) impossible
    # "b" has no effect: Holm still keeps its false claims within alpha (not alpha / m: once "a" is
    # found, Holm tests "b" at the full alpha).
    assert (verdict[:, 1] <= WORSE).mean() <= ALPHA + _tolerance(ALPHA)


def test_effects_of_3_sd_units_are_found():
    """+3 and -3 SD units on 5 pairs: better / worse nearly always (the paired power at alpha / m)."""
    rng = np.random.default_rng(20240613)
    x = _families(rng, MEASURED, [3.0, -3.0])
    _check_compare_family_agrees(x, 3.0)
    _, _, verdict, _ = _rule(x, 3.0)
    power = TTestPower().power(effect_size=3.0, nobs=N_SEEDS, alpha=ALPHA / M, alternative="two-sided")
    assert (verdict[:, 0] == BETTER).mean() >= power - _tolerance(power)
    assert (verdict[:, 1] == WORSE).mean() >= power - _tolerance(power)
    # A true difference at the margin is (nearly) never declared equivalent.
    assert (verdict == EQUIVALENT).mean() <= ALPHA / M


# --------------------------------------------------------------------------- transfer across rungs

TRANSFER_SEEDS = 8  # the transfer study's design
TRANSFER_FAMILIES = 3000


def _transfer_verdicts(rng, changes: tuple[float, ...], sd: float, margin: float = 3.0) -> np.ndarray:
    """Verdicts of `TRANSFER_FAMILIES` simulated families through `transfer_family`: one contrast per true change
    of Δ, each seed's Δ at the low and the high rung drawn so that their difference has SD `sd`."""
    from study.stats import transfer_family

    verdicts = np.empty((TRANSFER_FAMILIES, len(changes)), dtype=object)
    for f in range(TRANSFER_FAMILIES):
        low = rng.normal(-4.0, 2.0, (len(changes), TRANSFER_SEEDS))  # Δ at the low rung, seed by seed
        high = low + np.array(changes)[:, None] + rng.normal(0, sd, low.shape)  # the change has SD `sd`
        family = {f"v{i}": (low[i], high[i]) for i in range(len(changes))}
        verdicts[f] = [t.verdict for t in transfer_family(family, "ref", doublings=2.0, margin=margin)]
    return verdicts


def test_transfer_without_an_interaction_calls_scale_dependent_at_most_alpha_of_the_time():
    verdicts = _transfer_verdicts(np.random.default_rng(24), (0.0, 0.0), sd=2.7)
    any_false = (verdicts == "scale-dependent").any(axis=1).mean()  # family-wise: Holm over the two contrasts
    assert any_false <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / TRANSFER_FAMILIES)
    assert any_false > 0.02  # the test is not vacuous: Holm spends most of α


def test_transfer_finds_an_interaction_at_the_margin_at_the_power_the_design_promises():
    sd, margin = 2.7, 3.0
    verdicts = _transfer_verdicts(np.random.default_rng(25), (margin, 0.0), sd=sd, margin=margin)
    found = (verdicts[:, 0] == "scale-dependent").mean()
    # Holm's first step tests at α/m: its power (the design's promise, Bonferroni) is a lower bound, α an upper one
    promised = TTestPower().power(effect_size=margin / sd, nobs=TRANSFER_SEEDS, alpha=ALPHA / 2)
    upper = TTestPower().power(effect_size=margin / sd, nobs=TRANSFER_SEEDS, alpha=ALPHA)
    se = math.sqrt(promised * (1 - promised) / TRANSFER_FAMILIES)
    assert promised - 3 * se <= found <= upper + 3 * se
    # and a stable contrast of the same design is declared "holds across rungs" as often as TOST's power says
    holds = (verdicts[:, 1] == "holds across rungs").mean()
    low_power, high_power = (equivalence_power(sd, TRANSFER_SEEDS, margin, alpha=a) for a in (ALPHA / 2, ALPHA))
    assert low_power - 0.03 <= holds <= high_power + 0.03


def test_sequential_seeds_keep_the_false_positive_rate_within_alpha():
    """`--seeds auto`: looks at 3, 4, … 10 paired seeds, stops at the first decided look (the runner's rule), and the
    report judges at `sequential_alpha`: under no effect at all, "better"/"worse" comes at most α of the time."""
    from study.stats import seeds_decision, sequential_alpha

    rng = np.random.default_rng(26)
    alpha = sequential_alpha(3, 10)
    runs, false = 800, 0
    for _ in range(runs):
        runs_by_seed = rng.normal(80.0, 1.0, (1 + M, 10)) + rng.normal(0.0, 1.0, 10)  # a seed effect shared by cells
        for n in range(3, 11):
            seeds = list(range(n))
            groups = {name: (runs_by_seed[i, :n], seeds) for i, name in enumerate(["ref", "a", "b"])}
            decision = seeds_decision(groups, "ref", max_seeds=10, min_seeds=3, mde_target=3.0, margin=3.0, alpha=alpha)
            if not decision.more_seeds:
                break
        verdicts = [c.verdict for c in compare_family(groups, "ref", margin=3.0, alpha=alpha)]
        false += any(v in ("better", "worse") for v in verdicts)
    assert false / runs <= ALPHA


def test_the_mde_range_covers_the_true_mde_at_its_confidence():
    """The 95 % range the report gives an observed MDE (from the SD's χ² interval) holds the design's true MDE (at
    the true SD) 95 % of the time; with 5 seeds it spans ×[0.60, 2.87] of the observed MDE."""
    from study.stats import mde_range

    rng = np.random.default_rng(261)
    sd, n, alpha = 1.6, 5, ALPHA / M
    true = mde_paired(sd, n, alpha)
    draws = 4000
    covered = 0
    for _ in range(draws):
        observed = rng.normal(0.0, sd, n).std(ddof=1)
        low, high = mde_range(observed, n, alpha)
        covered += low <= true <= high
    se = math.sqrt(0.95 * 0.05 / draws)
    assert abs(covered / draws - 0.95) <= 3 * se
    low, high = mde_range(1.0, 5, alpha)
    assert (low / mde_paired(1.0, 5, alpha), high / mde_paired(1.0, 5, alpha)) == (pytest.approx(0.599, abs=1e-3),
                                                                                  pytest.approx(2.874, abs=1e-3))
