"""The claims check and the LR-Net-vs-baseline table, verdict by verdict, against numbers computed by hand.

Every verdict `check_claims` can give (supported / not supported / inconclusive / not testable) is
reached for each claim (accuracy, parameters, speed), and `tables.lrnet_vs_baselines`' interval,
Holm p-values and verdicts are recomputed here from the raw per-seed accuracies with scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study import stats
from study.report import claims, contrasts, tables
from study.report.claims import INCONCLUSIVE, NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED, check_claims

MODELS = {"lrnet_paper", "vgg16_scratch", "inception_v3_scratch"}


def _comparisons(*rows: tuple[str, str]) -> pd.DataFrame:
    """A `contrasts.baselines_vs_lrnet` frame with one row per (baseline, LR-Net's verdict): the row holds the
    baseline's side (variant − reference), so LR-Net "better" is stored as the baseline "worse"."""
    return pd.DataFrame([{
        "dataset": "mnist", "protocol": "val-split", "variant": baseline, "reference": tables.LRNET, "mean_reference": 99.0,
        "mean_variant": 97.0, "diff": -2.0, "ci_low": -3.5, "ci_high": -0.5, "p_value": 0.01, "p_adjusted": 0.02,
        "mde": 1.5, "margin": 3.0, "verdict": _baseline_side(verdict),
    } for baseline, verdict in rows])


def _baseline_side(verdict: str) -> str:
    return {"better": "worse", "worse": "better"}.get(verdict, verdict)


def _costs(**models: dict) -> pd.DataFrame:
    """A `table_two` frame: one row per model with the cost columns given (missing ones are nan)."""
    return pd.DataFrame([{"model": m, "rows": 3, **{c: values.get(c, math.nan) for c in tables.COST_COLUMNS},
                          "devices": values.get("devices", "cpu")} for m, values in models.items()],
                        columns=["model", "rows", *tables.COST_COLUMNS, "devices"])


def _no_costs() -> pd.DataFrame:
    return _costs()


def _accuracy(comparisons: pd.DataFrame, models=MODELS):
    return check_claims(comparisons, _no_costs(), set(models))[0]


# --- (a) accuracy ---------------------------------------------------------------------------------

def test_accuracy_supported_only_when_better_against_every_paper_baseline():
    claim = _accuracy(_comparisons(("vgg16_scratch", "better"), ("inception_v3_scratch", "better")))
    assert claim.key == "accuracy" and claim.verdict == SUPPORTED and claim.kind == "supported"
    assert claim.headline.startswith("LR-Net better in 2, worse in 0, equivalent (±3 pts) in 0, inconclusive in 0 of 2")
    assert len(claim.evidence) == 2
    assert claim.evidence[0] == ("mnist: LR-Net 99.00 vs vgg16_scratch 97.00 (Δ vgg16_scratch − LR-Net -2.00 pts, "
                                 "95% CI [-3.50, -0.50], Holm p = 0.020) → LR-Net better")


@pytest.mark.parametrize("contradiction", ["worse", stats.equivalence_verdict(3.0)])
def test_accuracy_not_supported_when_any_comparison_contradicts(contradiction):
    claim = _accuracy(_comparisons(("vgg16_scratch", "better"), ("inception_v3_scratch", contradiction)))
    assert claim.verdict == NOT_SUPPORTED and claim.kind == "not supported"


def test_accuracy_inconclusive_when_undecided_and_never_contradicted():
    claim = _accuracy(_comparisons(("vgg16_scratch", "better"), ("inception_v3_scratch", stats.INCONCLUSIVE),
                                   ("resnet50_scratch", stats.INCONCLUSIVE)))
    assert claim.kind == INCONCLUSIVE
    assert claim.verdict == f"{INCONCLUSIVE}: 2 of 3 comparisons undecided, none contradicts the claim"
    assert claim.evidence[1].endswith("→ inconclusive (MDE 1.50 pts)")


def test_accuracy_counts_comparisons_with_too_few_seeds_apart():
    claim = _accuracy(_comparisons(("vgg16_scratch", "better"), ("inception_v3_scratch", stats.INSUFFICIENT)))
    assert claim.verdict == SUPPORTED  # the one testable comparison is better
    assert "of 1 dataset × baseline comparisons (1 more with too few seeds)" in claim.headline
    assert claim.evidence[1].endswith(f"→ {stats.INSUFFICIENT}")


@pytest.mark.parametrize(("comparisons", "models", "reason"), [
    (_comparisons(("vgg16_scratch", "better")), {"vgg16_scratch"}, "no ok lrnet_paper rows on clean data"),
    (_comparisons(("vgg16_scratch", "better")), {"lrnet_paper", "my_variant"}, "no ok baseline rows"),
    (pd.DataFrame(), MODELS, "LR-Net and the baselines share no dataset"),
    # AlexNet and ResNet-18 are the kit's extra baselines, not the paper's comparators: no claim about them
    (_comparisons(("alexnet_scratch", "better"), ("resnet18_scratch", "worse")), MODELS,
     "LR-Net and the baselines share no dataset"),
    (_comparisons(("vgg16_scratch", stats.INSUFFICIENT)), MODELS, "fewer than 2 seeds per model"),
])
def test_accuracy_not_testable_says_why(comparisons, models, reason):
    claim = _accuracy(comparisons, models)
    assert claim.kind == NOT_TESTABLE and claim.statement == "(a) LR-Net is more accurate than the baselines"
    assert claim.verdict.startswith(f"{NOT_TESTABLE}: {reason}")
    # the comparisons it could not judge stay listed as evidence (one line each); none when nothing was compared
    assert isinstance(claim.evidence, tuple) and len(claim.evidence) == (reason == "fewer than 2 seeds per model")


# --- (b) parameters -------------------------------------------------------------------------------

def test_params_supported_when_smaller_than_every_baseline():
    costs = _costs(lrnet_paper={"params": 1e6}, vgg16_scratch={"params": 14.7e6}, resnet18_scratch={"params": 11.2e6},
                   my_variant={"params": 0.5e6})  # a non-baseline variant is not a comparator
    claim = check_claims(pd.DataFrame(), costs, MODELS)[1]
    assert claim.key == "params" and claim.verdict == SUPPORTED
    assert claim.evidence == ("LR-Net 1,000,000 vs vgg16_scratch 14,700,000 (0.07×)",
                              "LR-Net 1,000,000 vs resnet18_scratch 11,200,000 (0.09×)")
    assert claim.headline == "LR-Net 1.00 M parameters; baselines 11.20–14.70 M"


@pytest.mark.parametrize("theirs", [0.9e6, 1e6])  # fewer, or as many (not "fewer") than LR-Net
def test_params_not_supported_when_a_baseline_is_not_larger(theirs):
    costs = _costs(lrnet_paper={"params": 1e6}, vgg16_scratch={"params": 14.7e6}, alexnet_scratch={"params": theirs})
    assert check_claims(pd.DataFrame(), costs, MODELS)[1].verdict == NOT_SUPPORTED


@pytest.mark.parametrize(("costs", "reason"), [
    (_costs(vgg16_scratch={"params": 14.7e6}), "no params measured for lrnet_paper"),
    (_costs(lrnet_paper={"params": 1e6}, vgg16_scratch={}), "no params measured for any baseline"),
    (_costs(lrnet_paper={"params": 1e6}, my_variant={"params": 2e6}), "no params measured for any baseline"),
])
def test_params_not_testable_says_why(costs, reason):
    claim = check_claims(pd.DataFrame(), costs, MODELS)[1]
    assert claim.verdict == f"{NOT_TESTABLE}: {reason}" and claim.evidence == ()


# --- (c) speed ------------------------------------------------------------------------------------

def test_speed_supported_when_faster_in_training_and_inference():
    costs = _costs(lrnet_paper={"train_img_per_s": 1000, "infer_img_per_s": 4000, "devices": "H200"},
                   vgg16_scratch={"train_img_per_s": 250, "infer_img_per_s": 1000, "devices": "H200"})
    claim = check_claims(pd.DataFrame(), costs, MODELS)[2]
    assert claim.key == "speed" and claim.verdict == SUPPORTED
    assert claim.headline == "LR-Net throughput relative to the baselines: training 4.00–4.00×, inference 4.00–4.00×"
    assert claim.evidence == ("training: LR-Net 1,000 img/s vs vgg16_scratch 250 img/s (4.00×: faster)",
                              "inference: LR-Net 4,000 img/s vs vgg16_scratch 1,000 img/s (4.00×: faster)",
                              "measured on: H200")


def test_speed_not_supported_when_slower_anywhere():
    costs = _costs(lrnet_paper={"train_img_per_s": 1000, "infer_img_per_s": 4000},
                   vgg16_scratch={"train_img_per_s": 250, "infer_img_per_s": 1000},
                   alexnet_scratch={"train_img_per_s": 900, "infer_img_per_s": 5000})
    claim = check_claims(pd.DataFrame(), costs, MODELS)[2]
    assert claim.verdict == NOT_SUPPORTED
    assert "inference 0.80–4.00×" in claim.headline


def test_speed_judged_on_what_was_measured_and_says_what_was_not():
    costs = _costs(lrnet_paper={"train_img_per_s": 1000}, vgg16_scratch={"train_img_per_s": 250})
    claim = check_claims(pd.DataFrame(), costs, MODELS)[2]
    assert claim.verdict == SUPPORTED
    assert "not compared: no infer_img_per_s measured for lrnet_paper" in claim.evidence


def test_speed_not_testable_when_nothing_was_timed():
    costs = _costs(lrnet_paper={"params": 1e6}, vgg16_scratch={"params": 2e6})
    claim = check_claims(pd.DataFrame(), costs, MODELS)[2]
    assert claim.verdict == (f"{NOT_TESTABLE}: no train_img_per_s measured for lrnet_paper; "
                             "no infer_img_per_s measured for lrnet_paper")
    assert claim.evidence == ("measured on: cpu",)  # where it was (not) timed is still said


# --- the LR-Net vs baseline table against a hand-computed paired t interval ------------------------

LRNET = [0.990, 0.985, 0.992, 0.988, 0.991]
#: Clearly worse than LR-Net (about 5 points), with seed noise of its own.
VGG = [0.940, 0.932, 0.945, 0.936, 0.943]
#: Within a fraction of a point of LR-Net on every seed.
INCEPTION = [0.989, 0.986, 0.990, 0.989, 0.990]


def _results_table() -> pd.DataFrame:
    rows = []
    for model, accuracies in (("lrnet_paper", LRNET), ("vgg16_scratch", VGG), ("inception_v3_scratch", INCEPTION)):
        for seed, accuracy in enumerate(accuracies):
            rows.append({"model": model, "dataset": "mnist", "protocol": "val-split", "seed": seed, "axis": "paper",
                         "status": "ok", "degradation": "none", "test_accuracy": accuracy})
    # Rows the table must ignore: a failed run, a degraded run, and another axis' record of a run.
    rows.append({**rows[0], "status": "failed", "seed": 9, "test_accuracy": 0.1})
    rows.append({**rows[0], "degradation": "blur:1.0", "test_accuracy": 0.5})
    rows.append({**rows[5], "axis": "kernels", "test_accuracy": 0.2})
    return pd.DataFrame(rows)


def _hand_paired(lrnet, baseline):
    """Mean difference (points), 95% paired t interval, two-sided p and the TOST p against ±3 points."""
    d = (np.array(lrnet) - np.array(baseline)) * 100
    n = len(d)
    mean, se = d.mean(), d.std(ddof=1) / math.sqrt(n)
    half = sps.t.ppf(0.975, n - 1) * se
    p = 2 * sps.t.sf(abs(mean) / se, n - 1)
    p_tost = max(sps.t.sf((mean + 3.0) / se, n - 1), sps.t.cdf((mean - 3.0) / se, n - 1))
    return mean, mean - half, mean + half, p, p_tost


def test_baselines_vs_lrnet_matches_a_hand_computed_paired_interval_and_verdicts():
    out = contrasts.baselines_vs_lrnet(_results_table(), margin=3.0).set_index("variant")
    assert list(out.index) == ["inception_v3_scratch", "vgg16_scratch"]
    hand = {b: _hand_paired(LRNET, v) for b, v in (("vgg16_scratch", VGG), ("inception_v3_scratch", INCEPTION))}
    for baseline, (mean, low, high, p, _) in hand.items():  # hand: LR-Net − baseline; the table: baseline − LR-Net
        row = out.loc[baseline]
        assert bool(row["paired"]) and row["n_reference"] == row["n_variant"] == 5 and row["reference"] == "lrnet_paper"
        assert row["mean_reference"] == pytest.approx(np.mean(LRNET) * 100)
        assert row["diff"] == pytest.approx(-mean)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((-high, -low))
        assert row["p_value"] == pytest.approx(p)
    # Holm over the two baselines of mnist: smaller p × 2, the larger p × 1, made monotone.
    ps = sorted((hand[b][3], b) for b in hand)
    assert out.loc[ps[0][1], "p_adjusted"] == pytest.approx(min(1.0, 2 * ps[0][0]))
    assert out.loc[ps[1][1], "p_adjusted"] == pytest.approx(max(min(1.0, 2 * ps[0][0]), ps[1][0]))
    tosts = sorted((hand[b][4], b) for b in hand)
    assert out.loc[tosts[0][1], "p_equivalence_adjusted"] == pytest.approx(min(1.0, 2 * tosts[0][0]))
    # About 5 points ahead of VGG with a tight interval: the baseline is "worse" (variant − reference, as everywhere)
    assert hand["vgg16_scratch"][1] > 0 and out.loc["vgg16_scratch", "verdict"] == "worse"
    # Within 0.2 points of InceptionV3 on every seed: the TOST bounds the difference inside ±3.
    assert out.loc["inception_v3_scratch", "verdict"] == stats.equivalence_verdict(3.0)
    claim = check_claims(out.reset_index(), _no_costs(), MODELS)[0]
    assert claim.verdict == NOT_SUPPORTED  # equivalent to InceptionV3 is not "more accurate"


def test_a_baseline_ahead_of_lrnet_is_better_and_the_claim_reads_lrnet_worse():
    table = _results_table()
    worse = table["model"] == "lrnet_paper"
    table.loc[worse, "test_accuracy"] = table.loc[worse, "test_accuracy"] - 0.10  # 10 points behind InceptionV3
    out = contrasts.baselines_vs_lrnet(table).set_index("variant")
    lrnet = [a - 0.10 for a in LRNET]
    mean, low, high, _, _ = _hand_paired(lrnet, INCEPTION)
    row = out.loc["inception_v3_scratch"]
    assert row["diff"] == pytest.approx(-mean) and mean < -5
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-high, -low))
    assert row["verdict"] == "better"
    claim = check_claims(out.reset_index(), _no_costs(), MODELS)[0]
    assert claim.verdict == NOT_SUPPORTED
    assert any(e.startswith("mnist: LR-Net") and e.endswith("→ LR-Net worse") for e in claim.evidence)


# --- what each claim says, word for word, where a slip would mislead a reader -------------------------

def test_claims_come_in_order_with_their_statements_whatever_the_data():
    for comparisons, costs in ((pd.DataFrame(), _no_costs()),
                               (_comparisons(("vgg16_scratch", "better")),
                                _costs(lrnet_paper={"params": 1, "train_img_per_s": 2, "infer_img_per_s": 2},
                                       vgg16_scratch={"params": 2, "train_img_per_s": 1, "infer_img_per_s": 1}))):
        claims = check_claims(comparisons, costs, MODELS)
        assert [c.key for c in claims] == ["accuracy", "params", "speed"]
        assert [c.statement for c in claims] == [
            "(a) LR-Net is more accurate than the baselines",
            "(b) LR-Net has fewer parameters than the baselines",
            "(c) LR-Net is faster than the baselines (training and inference images/s)",
        ]
    assert _accuracy(_comparisons(("vgg16_scratch", stats.INSUFFICIENT))).key == "accuracy"


def test_accuracy_headline_counts_each_kind_and_evidence_names_each_outcome():
    claim = _accuracy(_comparisons(("vgg16_scratch", "worse"), ("inception_v3_scratch", stats.equivalence_verdict(3.0)),
                                   ("resnet50_scratch", stats.INCONCLUSIVE), ("vgg16_paper", "better"),
                                   ("inception_v3_paper", "better")))
    assert claim.headline == ("LR-Net better in 2, worse in 1, equivalent (±3 pts) in 1, inconclusive in 1 of 5 "
                              "dataset × baseline comparisons")
    assert [e.rsplit("→ ", 1)[1] for e in claim.evidence] == [
        "LR-Net worse", "LR-Net equivalent within ±3 pts", "inconclusive (MDE 1.50 pts)", "LR-Net better", "LR-Net better"]


def test_accuracy_headline_without_margins_or_with_several():
    undecided = _comparisons(("vgg16_scratch", stats.INCONCLUSIVE), ("inception_v3_scratch", stats.INCONCLUSIVE))
    claim = _accuracy(undecided.drop(columns="margin"))
    assert claim.headline.startswith("LR-Net better in 0, worse in 0, equivalent in 0, inconclusive in 2 of 2")
    assert claim.verdict == f"{INCONCLUSIVE}: 2 of 2 comparisons undecided, none contradicts the claim"
    claim = _accuracy(undecided.assign(margin=[2.0, 3.0]))
    assert "equivalent (±2/3 pts) in 0" in claim.headline


def test_speed_tie_is_not_faster():
    costs = _costs(lrnet_paper={"train_img_per_s": 1000, "infer_img_per_s": 4000},
                   vgg16_scratch={"train_img_per_s": 1000, "infer_img_per_s": 1000})
    assert check_claims(pd.DataFrame(), costs, MODELS)[2].verdict == NOT_SUPPORTED


def test_speed_lists_each_device_once():
    costs = _costs(lrnet_paper={"train_img_per_s": 2, "devices": "H200"}, vgg16_scratch={"train_img_per_s": 1, "devices": "cpu"},
                   resnet18_scratch={"train_img_per_s": 1, "devices": "H200"})
    assert "measured on: H200; cpu" in check_claims(pd.DataFrame(), costs, MODELS)[2].evidence


def test_the_noise_margin_is_the_larger_spread_of_the_two_measurements():
    costs = pd.DataFrame({"model": ["lrnet_paper", "lrnet_paper", "vgg16_paper", "resnet50_paper", "alexnet_paper"],
                          "spread_pct": [3.0, 12.0, 5.0, 20.0, np.nan]})
    baselines = costs[costs["model"] != "lrnet_paper"]
    assert claims._noise(costs, baselines) == pytest.approx([0.12, 0.20, 0.12])  # LR-Net's worst spread counts
    unknown = costs.assign(spread_pct=[np.nan, np.nan, "7.5", np.nan, 1.0])
    assert claims._noise(unknown, unknown[unknown["model"] != "lrnet_paper"]) == pytest.approx([0.075, 0.0, 0.01])
    assert claims._noise(costs.drop(columns="spread_pct"), baselines.drop(columns="spread_pct")) == [0.0, 0.0, 0.0]


def test_a_missing_or_unreadable_spread_counts_as_zero_beside_a_small_one():
    costs = pd.DataFrame({"model": ["lrnet_paper", "vgg16_paper", "resnet50_paper"], "spread_pct": [0.5, np.nan, "n/a"]})
    baselines = costs[costs["model"] != "lrnet_paper"]
    assert claims._noise(costs, baselines) == pytest.approx([0.005, 0.005])  # not 1 % for the missing ones
    theirs = costs.assign(spread_pct=["n/a", 0.5, 0.25])  # LR-Net's own spread unreadable: theirs alone
    assert claims._noise(theirs, theirs[theirs["model"] != "lrnet_paper"]) == pytest.approx([0.005, 0.0025])


def test_the_speed_evidence_names_the_ratio_the_noise_and_a_gap_exactly_at_the_noise_is_within_it():
    costs = pd.DataFrame({"model": ["lrnet_paper", "vgg16_paper"], "params": [1e6, 1.5e7],
                          "train_img_per_s": [75.0, 100.0], "infer_img_per_s": [400.0, 100.0], "spread_pct": [25.0, 5.0]})
    speed = next(c for c in claims.check_claims(pd.DataFrame(), costs, {"lrnet_paper", "vgg16_paper"}) if c.key == "speed")
    assert speed.evidence[:2] == ("training: LR-Net 75 img/s vs vgg16_paper 100 img/s (0.75×, noise ±25 %: within noise)",
                                  "inference: LR-Net 400 img/s vs vgg16_paper 100 img/s (4.00×, noise ±25 %: faster)")
    assert speed.verdict == claims.INCONCLUSIVE
    wide = costs.assign(spread_pct=[60.0, 5.0])
    speed = next(c for c in claims.check_claims(pd.DataFrame(), wide, {"lrnet_paper", "vgg16_paper"}) if c.key == "speed")
    assert speed.evidence[0] == "training: LR-Net 75 img/s vs vgg16_paper 100 img/s (0.75×, noise ±60 %: within noise)"
    quiet = costs.assign(spread_pct=[0.0, 0.0])
    speed = next(c for c in claims.check_claims(pd.DataFrame(), quiet, {"lrnet_paper", "vgg16_paper"}) if c.key == "speed")
    assert speed.evidence[0] == "training: LR-Net 75 img/s vs vgg16_paper 100 img/s (0.75×: not faster)"

