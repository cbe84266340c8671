"""The paper's three claims, each given a verdict computed from the study's own numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from study.report import display
from study.report.tables import LRNET, is_baseline, is_paper_baseline, verdict_kind

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
#: The data can neither support nor refute the claim (some comparison is inconclusive, none contradicts it).
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, our verdict on it, and the numbers behind the verdict."""

    key: str
    statement: str
    verdict: str
    evidence: tuple[str, ...]
    headline: str = ""

    @property
    def kind(self) -> str:
        """The verdict without its detail, for styling ("supported", "not supported", "inconclusive", "not testable")."""
        return self.verdict.split(":")[0]


def check_claims(comparisons: pd.DataFrame, costs: pd.DataFrame, models: set[str]) -> list[Claim]:
    """Verdicts on (a) accuracy, (b) parameters and (c) speed of LR-Net against the baselines.

    Args:
        comparisons: `contrasts.baselines_vs_lrnet` (each baseline − LR-Net, per dataset: LR-Net is the reference).
        costs: `tables.table_two` (median cost per model).
        models: every model with an ok clean-data row, to say what is missing.
    """
    return [_accuracy_claim(comparisons, models), _params_claim(costs), _speed_claim(costs)]


def _missing_models(models: set[str]) -> str | None:
    """Why LR-Net cannot be compared with a baseline, or None when both are present."""
    if LRNET not in models:
        return f"no ok {LRNET} rows on clean data"
    if not any(is_baseline(m) for m in models):
        return "no ok baseline rows (vgg16_*, inception_v3_*, resnet50_*, alexnet_*, resnet18_*) on clean data"
    return None


def _accuracy_claim(comparisons: pd.DataFrame, models: set[str]) -> Claim:
    statement = "(a) LR-Net is more accurate than the baselines"
    if not comparisons.empty:  # the claim is about the paper's own comparators, in the paper's protocol
        comparisons = comparisons[comparisons["variant"].map(is_paper_baseline).astype(bool)]
    missing = _missing_models(models)
    if missing or comparisons.empty:
        reason = missing or "LR-Net and the baselines share no dataset"
        return Claim("accuracy", statement, f"{NOT_TESTABLE}: {reason}", ())
    evidence = tuple(
        f"{r.dataset}: LR-Net {r.mean_reference:.2f} vs {r.variant} {r.mean_variant:.2f} "
        f"(Δ {r.variant} − LR-Net {r.diff:+.2f} pts, 95% CI [{r.ci_low:+.2f}, {r.ci_high:+.2f}], Holm p = "
        f"{display.p_value(r.p_adjusted)}) → {_outcome(r.verdict, r.mde)}"
        for r in comparisons.itertuples()
    )
    kinds = comparisons["verdict"].map(lrnet_side)
    testable = kinds[kinds != "insufficient"]
    if testable.empty:
        return Claim("accuracy", statement, f"{NOT_TESTABLE}: fewer than 2 seeds per model", evidence)
    count = testable.value_counts()
    margins = sorted({f"{m:g}" for m in comparisons.get("margin", pd.Series(dtype=float)).dropna()})
    within = f" (±{'/'.join(margins)} pts)" if margins else ""
    headline = (f"LR-Net better in {count.get('better', 0)}, worse in {count.get('worse', 0)}, "
                f"equivalent{within} in {count.get('equivalent', 0)}, inconclusive in "
                f"{count.get('inconclusive', 0)} of {len(testable)} dataset × baseline comparisons")
    if len(testable) < len(kinds):
        headline += f" ({len(kinds) - len(testable)} more with too few seeds)"
    # Worse or equivalent somewhere contradicts "more accurate"; a comparison the data cannot decide
    # leaves the claim open, which is not the same as refuting it.
    if (testable == "better").all():
        verdict = SUPPORTED
    elif testable.isin(["worse", "equivalent"]).any():
        verdict = NOT_SUPPORTED
    else:
        verdict = (f"{INCONCLUSIVE}: {count.get('inconclusive', 0)} of {len(testable)} comparisons undecided, "
                   "none contradicts the claim")
    return Claim("accuracy", statement, verdict, evidence, headline)


def lrnet_side(verdict: str) -> str:
    """A baseline's verdict against LR-Net, read from LR-Net's side (the claim is about LR-Net): a baseline worse is
    LR-Net better; equivalent, inconclusive and insufficient read the same from both sides."""
    kind = verdict_kind(verdict)
    return {"better": "worse", "worse": "better"}.get(kind, kind)


def _outcome(verdict: str, mde: float) -> str:
    """One comparison's verdict as evidence reads it: "LR-Net better", "inconclusive (MDE 3.4 pts)"."""
    kind = lrnet_side(verdict)
    if kind in ("better", "worse"):
        return f"LR-Net {kind}"
    if kind == "equivalent":
        return f"LR-Net {verdict}"
    if kind == "inconclusive":
        return f"{verdict} (MDE {display.pts(mde)} pts)"
    return verdict


def _lrnet_vs_baselines(costs: pd.DataFrame, column: str) -> tuple[float, pd.DataFrame] | str:
    """LR-Net's value of a cost column and the baselines' rows, or why they cannot be compared."""
    lrnet = costs.loc[costs["model"] == LRNET, column].dropna()
    baselines = costs.loc[costs["model"].map(is_baseline).astype(bool)].dropna(subset=[column])
    if lrnet.empty:
        return f"no {column} measured for {LRNET}"
    if baselines.empty:
        return f"no {column} measured for any baseline"
    return float(lrnet.iloc[0]), baselines


def _params_claim(costs: pd.DataFrame) -> Claim:
    statement = "(b) LR-Net has fewer parameters than the baselines"
    found = _lrnet_vs_baselines(costs, "params")
    if isinstance(found, str):
        return Claim("params", statement, f"{NOT_TESTABLE}: {found}", ())
    ours, baselines = found
    evidence = tuple(
        f"LR-Net {ours:,.0f} vs {r.model} {r.params:,.0f} ({ours / r.params:.2f}×)" for r in baselines.itertuples()
    )
    verdict = SUPPORTED if (baselines["params"] > ours).all() else NOT_SUPPORTED
    headline = (f"LR-Net {ours / 1e6:.2f} M parameters; baselines {baselines['params'].min() / 1e6:.2f}–"
                f"{baselines['params'].max() / 1e6:.2f} M")
    return Claim("params", statement, verdict, evidence, headline)


def _speed_claim(costs: pd.DataFrame) -> Claim:
    statement = "(c) LR-Net is faster than the baselines (training and inference images/s)"
    evidence, outcomes, untestable, ranges = [], [], [], []
    for column, what in (("train_img_per_s", "training"), ("infer_img_per_s", "inference")):
        found = _lrnet_vs_baselines(costs, column)
        if isinstance(found, str):
            untestable.append(found)
            continue
        ours, baselines = found
        ratios = ours / baselines[column]
        ranges.append(f"{what} {ratios.min():.2f}–{ratios.max():.2f}×")
        noise = _noise(costs, baselines)
        for r, ratio, margin in zip(baselines.itertuples(), ratios, noise, strict=True):
            outcome = "faster" if ratio > 1 + margin else "within noise" if margin and abs(ratio - 1) <= margin else "not faster"
            evidence.append(f"{what}: LR-Net {ours:,.0f} img/s vs {r.model} {getattr(r, column):,.0f} img/s "
                            f"({ratio:.2f}×{f', noise ±{100 * margin:.0f} %' if margin else ''}: {outcome})")
            outcomes.append(outcome)
    devices = sorted({d for d in costs.get("devices", pd.Series(dtype=str)).dropna() if d})
    if devices:
        evidence.append(f"measured on: {'; '.join(devices)}")
    if not outcomes:
        return Claim("speed", statement, f"{NOT_TESTABLE}: {'; '.join(untestable)}", tuple(evidence))
    evidence.extend(f"not compared: {u}" for u in untestable)
    headline = "LR-Net throughput relative to the baselines: " + ", ".join(ranges)
    verdict = NOT_SUPPORTED if "not faster" in outcomes else SUPPORTED if set(outcomes) == {"faster"} else INCONCLUSIVE
    return Claim("speed", statement, verdict, tuple(evidence), headline)


def _noise(costs: pd.DataFrame, baselines: pd.DataFrame) -> list[float]:
    """Per baseline, the relative noise margin of a speed ratio: the larger spread of the two measurements
    (`spread_pct` of Table II when every model was profiled alike; 0 for medians of trial rows)."""
    if "spread_pct" not in costs.columns:
        return [0.0] * len(baselines)
    ours = pd.to_numeric(costs.loc[costs["model"] == LRNET, "spread_pct"], errors="coerce").max()
    theirs = pd.to_numeric(baselines["spread_pct"], errors="coerce")
    return [0.0 if pd.isna(v) and pd.isna(ours) else float(max(v if pd.notna(v) else 0, ours if pd.notna(ours) else 0)) / 100
            for v in theirs]
