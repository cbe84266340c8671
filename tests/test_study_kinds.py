"""One tiny run per study kind, report included, on IDX files the test writes: a grid, robustness, a
single-objective search with a pruner and a FLOPs band, and a multi-objective search.

(tests/test_search.py runs grids further: resume, failures, workers.) Each study trains networks of one
MK block on 60 images for an epoch or two, so a run takes seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from study import results, storage
from study.cli import main
from tests.helpers import tiny_grid_study, tiny_search_study, write_tiny_dataset

TRAIN = ('seeds = {seeds}\nworkers = 1\nwidth = 1.0\ntrain = {{ train_subset = 60, val_subset = 60, test_subset = 60, '
         'epochs = {epochs}, batch_size = 30, precision = "fp32", fast = false }}')

GRID = tiny_grid_study(profile=TRAIN.format(seeds=3, epochs=2))

ROBUSTNESS = """
[study]
axis = "robustness"
kind = "robustness"
base = "lrnet_paper"
datasets = ["fashion-mnist"]
degradations = ["none", "blur:1.0", "noise:0.2"]

[[variants]]
label = "paper"
reference = true
blocks = 1
block = { width_multiplier = 0.25 }
head = { hidden = [32] }

[[variants]]
label = "none"
blocks = 1
block = { links = "none", width_multiplier = 0.25 }
head = { hidden = [32] }

[profiles.quick]
""" + TRAIN.format(seeds=2, epochs=1)

def _search(flops_max: str, objectives: str, pruner: str, n_trials: int) -> str:
    return tiny_search_study(f'flops_band = [0, {flops_max}]\nobjectives = {objectives}\npruner = "{pruner}"',
                             f"n_trials = {n_trials}\n" + TRAIN.format(seeds="[0]", epochs=2), kernels="[[3], [3, 5, 7]]")


@pytest.fixture
def run_study(tmp_path, monkeypatch):
    """Write a study file, run it with the report, and return (runs dir, report dir)."""
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=200, test=100)))

    def run(name: str, text: str, code: int = 0) -> tuple[Path, Path]:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        runs, out = tmp_path / "runs", tmp_path / "reports"
        assert main(["run", "--only", str(path), "--runs", str(runs), "--out", str(out)]) == code
        assert (out / "index.html").is_file() and (out / "contrasts.csv").is_file()
        assert (out / name / "index.html").is_file()
        return runs, out

    return run


def _page(out: Path, name: str) -> str:
    return (out / name / "index.html").read_text(encoding="utf-8")


def test_grid_study_reports_the_paired_contrast_its_rows_give(run_study):
    runs, out = run_study("tinygridreport", GRID)
    rows = results.load_rows(results.results_path(runs, "tinygridreport"))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    accuracy = {(r["variant"], r["seed"]): 100 * r["test_accuracy"] for r in rows}
    diffs = np.array([accuracy["none", s] - accuracy["paper", s] for s in (0, 1, 2)])
    contrast = pd.read_csv(out / "contrasts.csv")
    contrast = contrast[contrast["study"] == "tinygridreport"]
    assert contrast["contrast"].tolist() == ["none − paper"] and contrast["n"].tolist() == [3]
    row = contrast.iloc[0]
    assert row["delta"] == pytest.approx(diffs.mean(), abs=1e-3)  # Δ is the mean paired difference, in points
    if diffs.std(ddof=1) > 0:  # the paired t interval (one comparison: Holm changes nothing)
        low, high = scipy_stats.t.interval(0.95, 2, loc=diffs.mean(), scale=diffs.std(ddof=1) / np.sqrt(3))
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))
    assert row["verdict"].split()[0] in ("better", "worse", "equivalent", "inconclusive")
    page = _page(out, "tinygridreport")
    assert f"{row['delta']:.2f}" in page and "(of 1 comparison)" in page  # the study page's axis table and summary
    assert f"1 {row['verdict'].split()[0]}" in page
    assert "tinygridreport" in (out / "index.html").read_text(encoding="utf-8")


def test_robustness_study_tests_every_model_at_every_level_and_reports_it(run_study):
    runs, out = run_study("tinyrobust", ROBUSTNESS)
    rows = results.load_rows(results.results_path(runs, "tinyrobust"))
    # 2 variants × 2 seeds cells, each written as one row per degradation level (the clean one first)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert Counter((r["variant"], r["degradation"]) for r in rows) == {
        (v, d): 2 for v in ("paper", "none") for d in ("none", "blur:1.0", "noise:0.2")}
    # The degraded rows test the clean-trained network: same training, its own test accuracy.
    by_cell = {}
    for r in rows:
        by_cell.setdefault((r["variant"], r["seed"]), {})[r["degradation"]] = r
    for levels in by_cell.values():
        assert len({levels[d]["val_accuracy"] for d in levels}) == 1
        assert all(0.0 <= levels[d]["test_accuracy"] <= 1.0 for d in levels)
    robustness = (out / "tinyrobust" / "robustness.csv").read_text()
    assert "blur:1.0" in robustness and "noise:0.2" in robustness
    assert "Robustness to degradation" in _page(out, "tinyrobust")


def test_single_objective_search_prunes_out_of_band_and_by_median(run_study):
    text = _search("8e6", '["accuracy"]', "median", 4)
    runs, out = run_study("tinysearch", text)
    study = optuna.load_study(study_name="tinysearch", storage=storage.open_storage(runs, "tinysearch", None))
    trials = study.get_trials(deepcopy=False)
    assert [d.name for d in study.directions] == ["MAXIMIZE"]
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    # Outside the FLOPs band: pruned before training, the reason kept on the trial.
    assert rejected and all(t.state == optuna.trial.TrialState.PRUNED for t in rejected)
    assert all(t.user_attrs["flops"] > 8e6 and t.user_attrs["rejected"].startswith("flops ") for t in rejected)
    every = results.load_rows(results.results_path(runs, "tinysearch"))
    rows = [r for r in every if r["seed"] == 0]  # the search's own trials
    confirming = [r for r in every if r["seed"] != 0]
    trained = [t for t in trials if "rejected" not in t.user_attrs]
    assert all(t.user_attrs["flops"] <= 8e6 for t in trained)
    assert len(trained) == 4  # n_trials counts the trials that trained, not the ones the band rejected
    statuses = Counter(r["status"] for r in rows)
    assert set(statuses) <= {"ok", "pruned"} and statuses["ok"] >= 1
    # A row per trained trial, pruned ones included; none for the networks the band rejected untrained.
    assert len(rows) == len(trained)
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert statuses["pruned"] == sum(t.state == optuna.trial.TrialState.PRUNED for t in trained)
    assert pruned  # the median pruner cut at least one trained trial
    by_number = {t.number: t for t in trials}
    for row in pruned:  # recorded at the epoch the pruner cut it, with that epoch's validation accuracy
        step, value = max(by_number[row["trial_number"]].intermediate_values.items())
        assert row["epochs"] == step and row["val_accuracy"] == pytest.approx(value)
    for row in rows:
        assert json.loads(row["search_params"]).keys() >= {"kernels", "links", "lr"}
    best = study.best_trial
    assert best.value == pytest.approx(max(r["val_accuracy"] for r in rows if r["status"] == "ok"))
    assert "Search" in _page(out, "tinysearch")
    # no best point rests on one seed: the top candidates by validation accuracy were trained at 2 more seeds
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["val_accuracy"])[:3]
    assert sorted((r["variant"], r["seed"]) for r in confirming) == sorted((r["variant"], s) for r in ok for s in (1, 2))
    assert all(r["search_params"] == next(o for o in ok if o["variant"] == r["variant"])["search_params"] for r in confirming)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "after its top " in index and "over 3 seeds" in index


def test_multi_objective_search_reports_a_pareto_front(run_study):
    text = _search("inf", '["accuracy", "flops"]', "none", 3)
    text = text.replace("flops_band = [0, inf]\n", "").replace("[[3], [3, 5, 7]]", "[[3], [3, 5]]")
    runs, out = run_study("tinymo", text)
    every = results.load_rows(results.results_path(runs, "tinymo"))
    rows = [r for r in every if r["seed"] == 0]  # the search's trials; the others confirm its candidates
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"} and len(every) == 3 + 3 * 2
    study = optuna.load_study(study_name="tinymo", storage=storage.open_storage(runs, "tinymo", None))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = {(t.values[0], t.values[1]) for t in study.best_trials}
    points = [(r["val_accuracy"], float(r["flops"])) for r in rows]
    # The front is exactly the rows no other row beats on both objectives.
    dominated = {p for p in points for q in points if q != p and q[0] >= p[0] and q[1] <= p[1]}
    assert front == set(points) - dominated
    html = _page(out, "tinymo")
    assert "Accuracy vs FLOPs" in html
