"""Report tables: pure pandas computations over one study's results table (no plotting, no HTML).

Accuracies come out in percentage points (fraction × 100) so they read like the paper's Table I.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from study import stats
from study.models import registered
from study.results import KEY

ACCURACY = "test_accuracy"
SCALE = 100.0
#: Accuracy in points lives in [0, 100]: intervals are cut to it and marked where they had to be.
ACCURACY_BOUNDS = (0.0, SCALE)
#: A difference of two accuracies in points lies in [-100, 100]: intervals are cut to it and marked.
DIFFERENCE_BOUNDS = (-SCALE, SCALE)
CLEAN = "none"
LRNET = "lrnet_paper"
#: Axes that are not "variant vs paper configuration" comparisons and get their own sections.
DATASET_ORDER = ("mnist", "fashion-mnist", "oracle-mnist", "kmnist")
COST_COLUMNS = ("params", "flops", "train_img_per_s", "infer_img_per_s", "peak_mem_mb")

#: The paper's Table I (accuracy %), docs/paper.md §2.
PAPER_TABLE_I: dict[str, dict[str, float]] = {
    "VGG-16": {"mnist": 92.40, "fashion-mnist": 74.20, "oracle-mnist": 52.60},
    "InceptionV3": {"mnist": 93.31, "fashion-mnist": 94.44, "oracle-mnist": 92.60},
    "LR-Net": {"mnist": 99.47, "fashion-mnist": 95.03, "oracle-mnist": 95.13},
}
#: Columns that identify one training run whatever axis recorded it, so a run shared by two axes
#: (the paper configuration is every axis's reference) counts once when axes are pooled.
RUN_IDENTITY = ("model", "spec_hash", "dataset", "degradation", "protocol", "fold", "seed", "profile")


def is_baseline(model: str) -> bool:
    """Whether a model is a registered baseline (`<arch>_scratch` / `<arch>_paper`: the model registry says)."""
    entry = registered(model)
    return bool(entry and entry.baseline)


def paper_model(model: str) -> str | None:
    """The paper's Table I row a model is compared with (the model registry's `paper_row`), or None."""
    entry = registered(model)
    return entry.paper_row or None if entry else None


def model_order(models) -> list[str]:
    """LR-Net first, then the baselines, then other variants, each alphabetically."""
    return sorted(set(models), key=lambda m: (m != LRNET, not is_baseline(m), str(m)))


def dataset_order(datasets) -> list[str]:
    """The paper's datasets in the paper's order, then any others alphabetically."""
    known = {name: i for i, name in enumerate(DATASET_ORDER)}
    return sorted(set(datasets), key=lambda d: (known.get(d, len(known)), str(d)))


def degradation_order(degradations) -> list[str]:
    """Clean first, then by kind and numeric level ("blur:0.5" before "blur:1.0")."""

    def key(label: str):
        if label == CLEAN:
            return (0, ())
        parts = []
        for part in str(label).split("+"):
            kind, _, level = part.partition(":")
            try:
                parts.append((kind, float(level), ""))
            except ValueError:
                parts.append((kind, 0.0, level))
        return (1, tuple(parts))

    return sorted(set(degradations), key=key)


def verdict_kind(verdict) -> str:
    """better / worse / equivalent (within ±M pts) / insufficient (n<2) / inconclusive (anything else)."""
    text = str(verdict)
    if text in stats.DECIDED:
        return text
    if text.startswith("equivalent"):
        return "equivalent"
    if text == stats.INSUFFICIENT or text.startswith("insufficient"):
        return "insufficient"
    return "inconclusive"


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that finished with a usable result."""
    return table[table["status"] == "ok"]


def table_one_axes(rows: pd.DataFrame) -> set[str]:
    """Table I's axis, whatever it is called: the axis that trained the registered baselines (the model registry says
    which) on clean data, the one with the most such rows where an older table recorded a run on several axes; an
    empty set when no axis trained a baseline."""
    if rows.empty:
        return set()
    baseline = rows["model"].astype(str).map(is_baseline).astype(bool)
    if "degradation" in rows.columns:
        baseline &= rows["degradation"].fillna(CLEAN) == CLEAN
    counts = rows.loc[baseline, "axis"].dropna().astype(str).value_counts(sort=False)
    return {str(counts.idxmax())} if len(counts) else set()


def pooled(rows: pd.DataFrame, winners: set[str] | None = None) -> pd.DataFrame:
    """Rows with each training run once, however many axes recorded it (the record of an axis of `winners`, by
    default Table I's axes, wins)."""
    one = table_one_axes(rows) if winners is None else winners
    rows = rows.sort_values("axis", key=lambda axis: axis.isin(one), kind="stable")
    if rows.empty:
        return rows
    identity = rows.groupby(list(RUN_IDENTITY), dropna=False, sort=False).ngroup()
    return rows[~identity.duplicated(keep="last")].sort_index()


def trained_baselines(table: pd.DataFrame) -> bool:
    """Whether a study's main rows include a paper baseline (Tables I and II and the claims are about them)."""
    return bool(main_rows(table)["model"].dropna().astype(str).map(is_baseline).any())


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Clean-data ok rows behind Tables I and II: the axes that trained the baselines if the study has any (a study
    that recorded several axes), else all axes pooled."""
    rows = ok_rows(table)
    one = table_one_axes(rows)
    rows = rows[rows["degradation"].fillna(CLEAN) == CLEAN]
    return rows[rows["axis"].isin(one)] if one else pooled(rows)


def per_seed(rows: pd.DataFrame, by: list[str], metric: str = ACCURACY, scale: float = SCALE) -> pd.DataFrame:
    """One value per seed and group (k-fold folds averaged first, so n counts seeds)."""
    rows = rows.dropna(subset=[metric])
    values = rows.assign(value=pd.to_numeric(rows[metric]) * scale)
    return values.groupby([*by, "seed"], sort=False, dropna=False)["value"].mean().reset_index()


def summarise(seeds: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and 95% t-interval over seeds per group, with n; the interval cut to [0, 100] (`ci_clipped` says so)."""
    records = []
    for key, group in seeds.groupby(by, sort=False, dropna=False):
        mean, low, high, n = stats.mean_ci(group["value"].to_numpy())
        low, high, clipped = stats.clip_interval(low, high, ACCURACY_BOUNDS)
        key = key if isinstance(key, tuple) else (key,)
        records.append({**dict(zip(by, key, strict=True)), "n": n, "mean": mean, "ci_low": low, "ci_high": high,
                        "ci_clipped": clipped})
    return pd.DataFrame(records, columns=[*by, "n", "mean", "ci_low", "ci_high", "ci_clipped"])


def sort_like(frame: pd.DataFrame, **orders: list) -> pd.DataFrame:
    """Rows sorted by the given order of values per column (values not listed go last)."""
    keys = {col: frame[col].astype(str).map({str(v): i for i, v in enumerate(order)}).fillna(len(order))
            for col, order in orders.items()}
    return frame.assign(**{f"_{c}": k for c, k in keys.items()}).sort_values(
        [f"_{c}" for c in keys], kind="stable"
    ).drop(columns=[f"_{c}" for c in keys]).reset_index(drop=True)


def table_one(table: pd.DataFrame, proxy: bool = False) -> pd.DataFrame:
    """Table I: test accuracy mean ± 95% CI per model × dataset × protocol, beside the paper's number.

    The paper's numbers are single runs, so they are checked against our 95% prediction interval for
    one run (`paper_in_range`, n ≥ 3 only); `paper_agrees` also needs |Δ| within `mde_one_run`, the
    shift of one run this design detects with 80% power. CI and prediction interval are cut to [0, 100]
    (`ci_clipped`, `pi_clipped`). Rows of a k-fold protocol on the test split alone are a
    low-data setting (`low_data`): they are never put beside the paper's numbers, and neither is a `proxy`
    study's (a reduced budget or width: accuracy after a few hundred steps is another quantity than the paper's
    converged accuracy), whose `paper` and every column derived from it stay empty.
    """
    by = ["model", "dataset", "protocol"]
    seeds = per_seed(main_rows(table), by)
    out = summarise(seeds, by)
    groups = [group["value"].to_numpy() for _, group in seeds.groupby(by, sort=False, dropna=False)]
    intervals = [stats.clip_interval(*stats.prediction_interval(x), ACCURACY_BOUNDS) for x in groups]
    out["pi_low"] = [low for low, _, _ in intervals]
    out["pi_high"] = [high for _, high, _ in intervals]
    out["pi_clipped"] = [clipped for _, _, clipped in intervals]
    out["mde_one_run"] = [stats.mde_one_run(x) for x in groups]
    out["low_data"] = out["protocol"].astype(str).str.startswith("kfold")
    out["paper"] = [
        np.nan if low or proxy else PAPER_TABLE_I.get(paper_model(m) or "", {}).get(d, np.nan)
        for m, d, low in zip(out["model"], out["dataset"], out["low_data"], strict=True)
    ]
    out["diff_vs_paper"] = out["mean"] - out["paper"]
    out["lr"] = [_trained_with(main_rows(table), dict(zip(by, key, strict=True)))
                 for key in zip(out["model"], out["dataset"], out["protocol"], strict=True)]
    inside = (out["paper"] >= out["pi_low"]) & (out["paper"] <= out["pi_high"])
    testable = out["paper"].notna() & out["pi_low"].notna()
    out["paper_in_range"] = inside.where(testable).astype("boolean")
    # Agreement is only claimed for a gap this design could have detected: inside the range and within the MDE.
    out["paper_agrees"] = (out["paper_in_range"].fillna(False) & (out["diff_vs_paper"].abs() <= out["mde_one_run"]))
    return sort_like(out, dataset=dataset_order(out["dataset"]), model=model_order(out["model"]))


def _trained_with(rows: pd.DataFrame, group: dict) -> str:
    """The learning rate (and weight decay, when any) a group's rows trained with, from their `config`:
    a tuned value where the study had a tuning stage, else the profile's."""
    for key, value in group.items():
        rows = rows[rows[key].astype(str) == str(value)]
    configs = [json.loads(c) for c in rows.get("config", pd.Series(dtype=object)).dropna() if isinstance(c, str)]
    values = sorted({(c.get("lr"), c.get("weight_decay") or 0.0) for c in configs}, key=str)
    return ", ".join(f"{lr:g}" + (f" (wd {wd:g})" if wd else "") for lr, wd in values if lr is not None)


def tuning_table(tuning: dict, profile: str) -> pd.DataFrame:
    """One row per tuned model of a study's `tuning.json` under `profile`: its choice and every point's
    validation accuracy (%), in the grid's order."""
    models = tuning.get(profile, {}).get("models", {})
    records = []
    for label, entry in models.items():
        points = entry.get("points", [])
        chosen = next((p for p in points if p["lr"] == entry["lr"] and p["weight_decay"] == entry["weight_decay"]), {})
        records.append({"model": label, "lr": entry["lr"], "weight_decay": entry["weight_decay"],
                        "val_accuracy": SCALE * chosen["val_accuracy"] if chosen.get("val_accuracy") is not None else np.nan,
                        "points": "; ".join(
                            f"{p['lr']:g}" + (f"/wd {p['weight_decay']:g}" if p["weight_decay"] else "") + " → "
                            + (f"{SCALE * p['val_accuracy']:.1f}" if p.get("status") == "ok" else str(p.get("status")))
                            for p in points)})
    frame = pd.DataFrame(records, columns=["model", "lr", "weight_decay", "val_accuracy", "points"])
    return sort_like(frame, model=model_order(frame["model"]))


def is_paper_baseline(model: str) -> bool:
    """Whether a model is one of the paper's own comparators (VGG-16, InceptionV3, ResNet-50), in either protocol."""
    entry = registered(model)
    return bool(entry and entry.paper_comparator)


TABLE_TWO_COLUMNS = ("model", "rows", *COST_COLUMNS, "train_img_per_s_fast", "infer_img_per_s_fast", "spread_pct",
                     "batch", "source", "devices", "flops_counter")


def table_two(table: pd.DataFrame, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table II: one row per model. From `costs` (`study.costs`: every model profiled alike, throughput and
    peak memory in the stock fp32 eager setting, the fast setting beside it) when measured, else the
    medians over each model's ok trial rows (their own batch and precision: `source` says which)."""
    if costs is not None and len(costs):
        return _measured_table_two(costs)
    rows = ok_rows(table)
    one = table_one_axes(rows)
    if one:
        rows = rows[rows["axis"].isin(one)]
    if rows.empty:
        return pd.DataFrame(columns=list(TABLE_TWO_COLUMNS))
    costs = rows[["model", *COST_COLUMNS]].copy()
    costs[list(COST_COLUMNS)] = costs[list(COST_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    grouped = costs.groupby("model", sort=False)
    out = grouped[list(COST_COLUMNS)].median()
    out.insert(0, "rows", grouped.size())
    out["devices"] = rows.groupby("model", sort=False)["device"].agg(
        lambda d: ", ".join(sorted({str(x) for x in d.dropna()}))
    )
    out["flops_counter"] = _counters(rows)
    out = out.reset_index().assign(source="trials")
    return sort_like(out.reindex(columns=TABLE_TWO_COLUMNS), model=model_order(out["model"]))


def _measured_table_two(costs: pd.DataFrame) -> pd.DataFrame:
    latest = costs.drop_duplicates(["model", "setting"], keep="last").set_index(["setting", "model"])
    stock = latest.loc["stock"] if "stock" in latest.index.get_level_values(0) else latest.iloc[0:0].droplevel(0)
    fast = latest.loc["fast"] if "fast" in latest.index.get_level_values(0) else stock.iloc[0:0]
    out = pd.DataFrame({
        "model": stock.index, "rows": 1, "params": stock["params"].values, "flops": stock["flops"].values,
        "train_img_per_s": stock["train_img_per_s"].values, "infer_img_per_s": stock["infer_img_per_s"].values,
        "peak_mem_mb": stock["peak_mem_mb"].values,
        "train_img_per_s_fast": fast["train_img_per_s"].reindex(stock.index).values,
        "infer_img_per_s_fast": fast["infer_img_per_s"].reindex(stock.index).values,
        "spread_pct": stock[["train_spread_pct", "infer_spread_pct"]].max(axis=1).values,
        "batch": stock["batch"].values, "source": "profiled alike", "devices": stock["device_name"].values,
        "flops_counter": _counters(stock.reset_index()).reindex(stock.index).values,
    })
    return sort_like(out.reindex(columns=TABLE_TWO_COLUMNS), model=model_order(out["model"]))


def _counters(rows: pd.DataFrame) -> pd.Series:
    """Which counter gave each model's FLOPs: fvcore, or torch's dispatch counter where fvcore failed (older rows
    that do not say were counted by fvcore)."""
    counter = rows["flops_counter"] if "flops_counter" in rows.columns else pd.Series("fvcore", index=rows.index)
    return counter.fillna("fvcore").astype(str).groupby(rows["model"], sort=False).agg(lambda c: ", ".join(sorted(set(c))))


def ablation_axes(table: pd.DataFrame) -> list[str]:
    """The axes of a table that recorded several (an older run) whose variants are compared with a flagged reference,
    in first-seen order: not Table I's axis (its own family, `contrasts.baselines_vs_lrnet`) nor an axis tested on
    degraded data (each level is compared with clean data instead)."""
    rows = ok_rows(table)
    degraded = set(rows.loc[rows["degradation"].fillna(CLEAN) != CLEAN, "axis"].dropna().astype(str))
    flagged = set(rows.loc[rows["is_reference"].map(truthy), "axis"].dropna().astype(str)) \
        if "is_reference" in rows.columns else set()
    skip = table_one_axes(rows) | degraded
    return [a for a in rows["axis"].dropna().astype(str).unique() if a in flagged and a not in skip]


def axis_points(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per-seed accuracy of every variant on one axis, reference first (the data behind the axis plot)."""
    rows = ok_rows(table)
    rows = rows[rows["axis"] == axis].assign(is_reference=lambda r: r["is_reference"].map(truthy))
    seeds = per_seed(rows, ["variant", "is_reference", "dataset", "degradation"])
    variants = list(dict.fromkeys(
        seeds.sort_values("is_reference", ascending=False, kind="stable")["variant"]
    ))
    return sort_like(seeds, dataset=dataset_order(seeds["dataset"]), variant=variants)


def model_points(main: pd.DataFrame) -> pd.DataFrame:
    """Per-seed accuracy of every model of Table I, LR-Net first, in the shape `axis_points` gives an axis."""
    seeds = per_seed(main.assign(degradation=main["degradation"].fillna(CLEAN)), ["model", "dataset", "degradation"])
    seeds = seeds.rename(columns={"model": "variant"}).assign(is_reference=lambda d: d["variant"] == LRNET)
    return sort_like(seeds, dataset=dataset_order(seeds["dataset"]), variant=model_order(seeds["variant"]))


truthy = stats.truthy  # a results-file flag read leniently (JSON may carry true, "true" or 1)


def pareto_points(table: pd.DataFrame) -> pd.DataFrame:
    """Mean clean accuracy and median FLOPs per network and dataset, flagged where on the Pareto front."""
    rows = ok_rows(table)
    one = table_one_axes(rows)
    rows = rows[rows["degradation"].fillna(CLEAN) == CLEAN].copy()
    rows["flops"] = pd.to_numeric(rows["flops"], errors="coerce")
    rows["params"] = pd.to_numeric(rows["params"], errors="coerce")
    rows = rows.dropna(subset=["flops", ACCURACY])
    columns = ["dataset", "protocol", "network", "axis", "variant", "model", "n", "accuracy", "flops",
               "params", "on_front"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    # The same network on several axes (every axis's reference) is one point, named as Table I's axis names it.
    rows["network"] = rows["spec_hash"].fillna(rows["model"]).astype(str)
    rows["label"] = np.where(rows["axis"].isin(one), rows["model"].astype(str),
                             rows["axis"].astype(str) + ": " + rows["variant"].astype(str))
    named = rows.sort_values("axis", key=lambda a: ~a.isin(one), kind="stable").drop_duplicates("network")
    rows = pooled(rows, one).drop(columns=["label", "axis", "variant"]).merge(
        named[["network", "label", "axis", "variant"]], on="network"
    )
    rows["accuracy"] = pd.to_numeric(rows[ACCURACY]) * SCALE
    out = rows.groupby(["dataset", "protocol", "network"], sort=False).agg(
        label=("label", "first"), axis_name=("axis", "first"), variant=("variant", "first"),
        model=("model", "first"), n=("seed", "size"), accuracy=("accuracy", "mean"), flops=("flops", "median"),
        params=("params", "median"),
    ).reset_index().rename(columns={"axis_name": "axis"})  # "axis" cannot be a keyword of agg()
    out["on_front"] = False
    for _, group in out.groupby(["dataset", "protocol"], sort=False):
        out.loc[pareto_front(group["accuracy"], group["flops"]), "on_front"] = True
    out = out.drop(columns="network").rename(columns={"label": "network"})
    return sort_like(out.sort_values(["flops", "accuracy"], ascending=[True, False]),
                   dataset=dataset_order(out["dataset"]))[columns]


def pareto_front(accuracy: pd.Series, flops: pd.Series) -> list:
    """Index labels of the points no other point beats on both accuracy (max) and FLOPs (min)."""
    order = pd.DataFrame({"a": accuracy, "f": flops}).sort_values(["f", "a"], ascending=[True, False])
    front, best = [], -np.inf
    for label, row in order.iterrows():
        if row["a"] > best:
            front.append(label)
            best = row["a"]
    return front


def robustness_table(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy mean ± 95% CI per model × dataset × degradation, clean accuracy included as "none"."""
    rows = ok_rows(table).assign(degradation=lambda r: r["degradation"].fillna(CLEAN))
    tested = set(rows.loc[rows["degradation"] != CLEAN, "axis"].dropna().astype(str))  # axes with degraded rows
    degraded = rows[rows["axis"].isin(tested)]
    columns = ["model", "dataset", "protocol", "degradation", "n", "mean", "ci_low", "ci_high", "ci_clipped"]
    if degraded.empty:
        return pd.DataFrame(columns=columns)
    same_models = rows["model"].isin(degraded["model"]) & rows["dataset"].isin(degraded["dataset"])
    clean = rows[same_models & (rows["degradation"] == CLEAN)]
    combined = pooled(pd.concat([clean, degraded]), table_one_axes(rows))
    by = ["model", "dataset", "protocol", "degradation"]
    out = summarise(per_seed(combined, by), by)
    return sort_like(out, dataset=dataset_order(out["dataset"]), model=model_order(out["model"]),
                   degradation=degradation_order(out["degradation"]))[columns]


def status_counts(table: pd.DataFrame) -> pd.DataFrame:
    """How many rows ended in each status."""
    counts = table["status"].fillna("unknown").value_counts()
    return counts.rename_axis("status").reset_index(name="rows")


def unfinished_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Recorded cells (one run key each) without an ok result, with the status they ended in."""
    rows = table[table["status"] != "ok"]
    columns = [c for c in KEY if c not in ("study", "profile")] + ["model", "status"]
    return rows[columns].reset_index(drop=True)


def compute_seconds(table: pd.DataFrame) -> float:
    """Total wall time of every recorded run, whatever its status."""
    return float(pd.to_numeric(table["wall_s"], errors="coerce").fillna(0).sum())
