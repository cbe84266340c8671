"""The tuning stage of a grid study: every model gets the same recorded lr × weight-decay budget on the
validation split before the grid, the grid trains each with its choice, and Table I shows it."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from study import cells, costs, results, train, tuning
from study.cli import main
from study.errors import SpecError
from study.report.load import load_run
from study.studies import load_study
from tests.helpers import write_tiny_dataset

STUDY = """
[study]
axis = "paper"
base = "lrnet_paper"
datasets = ["fashion-mnist"]

[[variants]]
label = "lrnet_paper"
reference = true
model = "lrnet_paper"

[[variants]]
label = "resnet18_scratch"
model = "resnet18_scratch"

[tuning]
lr = [1e-6, 3e-3]
weight_decay = [0.0, 1e-4]

[profiles.quick]
seeds = 2
workers = 1
width = 0.25
train = { train_subset = 120, val_subset = 60, test_subset = 60, batch_size = 20, precision = "fp32", fast = false }
"""


@pytest.fixture
def study_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=200, test=100)))
    path = tmp_path / "tiny_paper.toml"
    path.write_text(STUDY)
    return path


def _run(path, tmp_path, *extra) -> int:
    return main(["run", "--only", str(path), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "reports"), *extra])


def test_each_model_trains_with_the_point_its_tuning_chose_on_validation(study_file, tmp_path, monkeypatch):
    monkeypatch.setattr(costs, "measure", lambda *a, **k: 0)  # Table II's profiling is tested in test_costs
    tested = []
    original = train._final_evaluation
    monkeypatch.setattr(train, "_final_evaluation", lambda *a, **k: tested.append(a[4]) or original(*a, **k))
    assert _run(study_file, tmp_path) == 0
    record = load_run(tmp_path / "runs" / "tiny_paper").tuning["quick"]  # the report's reader of tuning.json
    assert record["budget"]["points"] == 4 and record["budget"]["selected_on"] == "best mean validation accuracy over 2 seeds"
    rows = results.load_rows(results.results_path(tmp_path / "runs", "tiny_paper"))
    assert len(rows) == 4 and len(tested) == 4  # the 16 tuning runs never evaluated the test split
    for label, entry in record["models"].items():
        points = entry["points"]
        assert [(p["lr"], p["weight_decay"]) for p in points] == [(1e-6, 0.0), (1e-6, 1e-4), (3e-3, 0.0), (3e-3, 1e-4)]
        for p in points:  # each point chosen on its mean over the two tuning seeds (a failed run counts 0)
            assert [r["seed"] for r in p["runs"]] == [1000, 1001]
            assert p["val_accuracy"] == pytest.approx(sum(r["val_accuracy"] or 0.0 for r in p["runs"]) / 2)
        best = max(points, key=lambda p: p["val_accuracy"])  # max keeps the first of ties: grid order
        assert (entry["lr"], entry["weight_decay"]) == (best["lr"], best["weight_decay"])
        used = {(json.loads(r["config"])["lr"], json.loads(r["config"])["weight_decay"]) for r in rows if r["variant"] == label}
        assert used == {(best["lr"], best["weight_decay"])}
        assert all(f"tuned lr {best['lr']:g}" in r["train_config"] for r in rows if r["variant"] == label)
    assert any(e["lr"] != 1e-6 for e in record["models"].values())  # a rate that cannot learn was not chosen everywhere
    folder = tmp_path / "reports" / "tiny_paper"
    assert "Tuning: the same budget for every model" in (folder / "index.html").read_text(encoding="utf-8")
    shown = pd.read_csv(folder / "tuning.csv").set_index("model")
    table_one = pd.read_csv(folder / "table_i.csv")
    for label, entry in record["models"].items():
        assert (shown.loc[label, "lr"], shown.loc[label, "weight_decay"]) == (entry["lr"], entry["weight_decay"])
        text = f"{entry['lr']:g}" + (f" (wd {entry['weight_decay']:g})" if entry["weight_decay"] else "")
        assert table_one.loc[table_one["model"].str.startswith(label), "lr"].astype(str).tolist() == [text]


def test_a_rerun_neither_tunes_nor_trains_again(study_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(costs, "measure", lambda *a, **k: 0)
    plan = ["plan", "--only", str(study_file), "--runs", str(tmp_path / "runs"), "--no-profiling", "--set",
            "tuning.weight_decay=[0.0]"]
    assert main(plan) == 0
    assert "+ first 8 tuning runs (lrnet_paper 4, resnet18_scratch 4)" in capsys.readouterr().out
    assert _run(study_file, tmp_path, "--no-report", "--set", "tuning.weight_decay=[0.0]") == 0
    capsys.readouterr()
    assert main(plan) == 0
    assert "tuning runs" not in capsys.readouterr().out
    before = results.results_path(tmp_path / "runs", "tiny_paper").read_bytes()
    record = tuning.tuning_path(tmp_path / "runs", "tiny_paper").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(tuning, "train", refuse)
    monkeypatch.setattr(train, "_fit", refuse)
    assert _run(study_file, tmp_path, "--no-report", "--set", "tuning.weight_decay=[0.0]") == 0
    assert results.results_path(tmp_path / "runs", "tiny_paper").read_bytes() == before
    assert json.loads(tuning.tuning_path(tmp_path / "runs", "tiny_paper").read_text()) == json.loads(record)


def test_a_passed_deadline_stops_the_tuning_and_no_cell_trains_untuned(study_file, tmp_path):
    spec = load_study(study_file)
    ctx = cells.Context(spec, "quick", tmp_path / "runs", seeds=(0,))
    assert tuning.tune(ctx, deadline=time.time() - 1) is False and ctx.tuned == {}
    assert _run(study_file, tmp_path, "--budget-min", "0.0001", "--no-report") == 4  # exit: cells missing
    assert not results.results_path(tmp_path / "runs", "tiny_paper").exists()


@pytest.mark.parametrize("table, problem", [
    ("[tuning]\nlr = []", "tuning.lr: got []; allowed: a non-empty list of distinct numbers in (0, 1)"),
    ("[tuning]\nlr = [0.001, 0.001]", "tuning.lr: got [0.001, 0.001]; allowed: a non-empty list of distinct numbers"),
    ("[tuning]\nweight_decay = [-0.1]", "tuning.weight_decay[0]: got -0.1; allowed: a number in [0, 1)"),
    ("[tuning]\ndataset = \"mnist\"", "tuning.dataset: got \"mnist\""),
    ("[tuning]\nsteps = 3", "tuning.steps"),
    ("[profiles.quick]\ndatasets = [\"mnist\"]", "profiles.quick.datasets: 'mnist' is not one of the study's datasets"),
])
def test_a_bad_tuning_or_profile_dataset_is_one_line(tmp_path, table, problem):
    path = tmp_path / "bad.toml"
    path.write_text('[study]\naxis = "links"\ndatasets = ["fashion-mnist"]\n\n[[variants]]\nlabel = "a"\nmodel = "lrnet_half"\n\n'
                    + table + "\n")
    with pytest.raises(SpecError, match=re.escape(problem)) as err:
        load_study(path)
    assert "\n" not in str(err.value)


def test_a_search_study_has_no_tuning_stage(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[study]\naxis = "search"\nkind = "search"\n\n[tuning]\nlr = [0.001]\n')
    with pytest.raises(SpecError, match="a search study has no tuning stage"):
        load_study(path)
