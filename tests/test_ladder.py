"""Ladders: a study whose profile declares rungs trains every cell at every rung, paired by seed; the report
gives each contrast per rung and its transfer verdict; a stopped run resumes between rungs without
retraining a finished one; rows an identical run already trained are reused; `steps` writes a budget as
it is spoken. Tiny networks on IDX files the tests write: each run takes seconds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import study.train
from study import objectives, results
from study.cli import main
from study.errors import SpecError
from study.profiles import PROFILES, override
from study.studies import load_study
from tests.helpers import tiny_grid_study, write_tiny_dataset

TRAIN = ('seeds = 3\nworkers = 1\nwidth = 1.0\ntrain = {{ val_subset = 60, test_subset = 60, epochs = 1, batch_size = 30, '
         'precision = "fp32", fast = false }}\n{budget}')
LADDER = tiny_grid_study(links=("paper", "none", "dense"), profile=TRAIN.format(budget="rungs = [{ steps = 1 }, { steps = 2 }]"))
ONE_RUNG = tiny_grid_study(links=("paper", "none", "dense"), profile=TRAIN.format(budget="steps = 1"))


@pytest.fixture
def study_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=200, test=100)))

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


def _run(path: Path, runs: Path, out: Path) -> int:
    return main(["run", "--only", str(path), "--runs", str(runs), "--out", str(out)])


def _training_refused_when(monkeypatch, refuse) -> list[int]:
    """Patch training so that a config `refuse(cfg)` picks fails; returns the subsets actually trained."""
    real, trained = study.train.train, []

    def train(model, task, cfg, **kwargs):
        if refuse(cfg):
            raise RuntimeError(f"planted failure: trained a {cfg.train_subset}-image budget")
        trained.append(cfg.train_subset)
        return real(model, task, cfg=cfg, **kwargs)

    monkeypatch.setattr(objectives, "train", train)
    return trained


def test_a_ladder_trains_every_cell_at_every_rung_and_reports_each_contrast_per_rung_and_its_transfer(study_file, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "reports"
    assert _run(study_file("tinyladder", LADDER), runs, out) == 0
    rows = results.load_rows(results.results_path(runs, "tinyladder"))
    assert len(rows) == 2 * 3 * 3 and {r["status"] for r in rows} == {"ok"}
    assert {(r["rung"], r["budget_images"], r["epochs"]) for r in rows} == {("1 step, full width", 30, 1),
                                                                          ("2 steps, full width", 60, 1)}
    assert all(r["scale"] == r["rung"] for r in rows)
    accuracy = {(r["rung"], r["variant"], r["seed"]): 100 * r["test_accuracy"] for r in rows}

    def delta(rung, variant):
        return np.array([accuracy[rung, variant, s] - accuracy[rung, "paper", s] for s in range(3)])

    csv = pd.read_csv(out / "contrasts.csv")
    csv[["rung", "low_rung", "high_rung"]] = csv[["rung", "low_rung", "high_rung"]].fillna("")
    per_rung = csv[csv["kind"] == "contrast"]
    assert per_rung["contrast"].tolist() == [f"{v} − paper · at {r}" for v in ("none", "dense")
                                             for r in ("1 step, full width", "2 steps, full width")]
    for record in per_rung.to_dict("records"):
        assert record["delta"] == pytest.approx(delta(record["rung"], record["contrast"].split(" ")[0]).mean(), abs=1e-3)
    transfer = csv[csv["kind"] == "transfer"].set_index("contrast")
    assert len(transfer) == 2
    none = transfer.loc["none − paper: 1 step, full width → 2 steps, full width"]
    change = delta("2 steps, full width", "none") - delta("1 step, full width", "none")
    assert none["delta"] == pytest.approx(change.mean(), abs=1e-3) and none["n"] == 3
    assert (none["low_rung"], none["high_rung"]) == ("1 step, full width", "2 steps, full width")
    assert none["per_doubling"] == pytest.approx(change.mean(), abs=1e-3)  # 2 steps is one doubling of 1 step
    if change.std(ddof=1) > 0:  # the paired t interval of the change, unadjusted
        low, high = scipy_stats.t.interval(0.95, 2, loc=change.mean(), scale=change.std(ddof=1) / np.sqrt(3))
        assert (none["ci_low"], none["ci_high"]) == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))
    assert none["verdict"] in ("holds across rungs", "scale-dependent", "inconclusive")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Does each verdict hold as the scale grows?" in index and none["verdict"] in index
    assert "at 2 steps, full width" in index
    page = (out / "tinyladder" / "index.html").read_text(encoding="utf-8")
    assert "Transfer across rungs" in page and "transfer_none" in page  # the section and its figure


def test_a_run_stopped_between_rungs_resumes_without_retraining_the_finished_rung(study_file, tmp_path, monkeypatch):
    path, runs, out = study_file("tinyresume", LADDER), tmp_path / "runs", tmp_path / "reports"
    _training_refused_when(monkeypatch, lambda cfg: cfg.train_subset == 60)  # the second rung fails: the run stops
    assert _run(path, runs, out) == 1
    first = results.load_rows(results.results_path(runs, "tinyresume"))
    assert len(first) == 9 and {r["rung"] for r in first} == {"1 step, full width"}
    trained = _training_refused_when(monkeypatch, lambda cfg: cfg.train_subset == 30)  # the finished rung must not train
    assert _run(path, runs, out) == 0
    assert trained == [60] * 9
    rows = results.load_rows(results.results_path(runs, "tinyresume"))
    assert rows[:9] == first and len(rows) == 18
    assert [r["seed"] for r in rows[9:]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # the second rung seed-major too


def test_a_rung_an_identical_run_already_trained_is_reused_not_retrained(study_file, tmp_path, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "reports"
    assert _run(study_file("tinyone", ONE_RUNG), runs, out) == 0  # the default-run analogue: one scale, 1 step
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "every verdict above was measured at one scale (1 step, full width)" in index
    assert "No study of <code>ablations/</code> checks them at another scale." in index  # axis "links" has no ladder file
    trained = _training_refused_when(monkeypatch, lambda cfg: cfg.train_subset == 30)
    assert _run(study_file("tinytransfer", LADDER), runs, out) == 0
    assert trained == [60] * 9
    one = {(r["variant"], r["seed"]): r for r in results.load_rows(results.results_path(runs, "tinyone"))}
    reused = [r for r in results.load_rows(results.results_path(runs, "tinytransfer")) if r["rung"] == "1 step, full width"]
    assert len(reused) == 9 and {r["reused_from"] for r in reused} == {"tinyone"}
    assert all(r["test_accuracy"] == one[r["variant"], r["seed"]]["test_accuracy"] for r in reused)
    section = (out / "index.html").read_text(encoding="utf-8").split('<h2 id="study-tinyone">')[1].split("<h2")[0]
    assert 'The transfer study <a href="#study-tinytransfer">tinytransfer</a> checked them on a ladder' in section
    assert section.count('<span class="badge') >= 2 + 2  # two contrasts, and their two transfer verdicts


def test_the_default_runs_index_gives_the_command_that_checks_its_scale(tmp_path):
    from study.report.build import write_index
    from study.report.load import load_run
    from tests.fixtures.report import make_study as fixture

    runs = tmp_path / "runs"
    fixture.make_contrasts_study(runs)
    write_index([load_run(runs / "contrasts")], tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert ("every verdict above was measured at one scale (450 steps, width ×0.25), a proxy of the paper's. Whether "
            "they hold at a larger budget is not checked in this runs directory: <code>nox -s ablations -- --only "
            "transfer</code> checks it (~60 min on 2 CPU cores).") in " ".join(index.split())


def test_plan_counts_and_estimates_each_rung(study_file, tmp_path, capsys):
    path, runs = study_file("tinyplan", LADDER), tmp_path / "runs"
    rows = [{"study": "tinyplan", "axis": "links", "variant": v, "dataset": "fashion-mnist", "degradation": "none",
             "protocol": "val-split", "fold": 0, "seed": s, "profile": "quick", "rung": "1 step, full width",
             "status": "ok", "wall_s": 10.0, "flops": 1} for v in ("paper", "none", "dense") for s in range(3)]
    for row in rows:
        results.append_row(results.results_path(runs, "tinyplan"), row)
    assert main(["plan", "--only", str(path), "--runs", str(runs), "--json", "--no-profiling"]) == 0
    (study,) = json.loads(capsys.readouterr().out)["studies"]
    assert study["rungs"] == {"1 step, full width": {"cells": 9, "missing": 0, "remaining_s": 0.0},
                              "2 steps, full width": {"cells": 9, "missing": 9, "remaining_s": pytest.approx(9 * 20.0)}}
    assert study["seconds"]["none @ 2 steps, full width"] == [20.0, "measured at 1 step, full width, budget-scaled"]
    assert [c["rung"] for c in study["cells"]] == ["1 step, full width"] * 9 + ["2 steps, full width"] * 9


def test_steps_write_a_budget_as_it_is_spoken():
    quick = override(PROFILES["quick"], {"steps": 1800}, "f.toml")
    assert (quick.train.train_subset, quick.train.epochs, quick.steps()) == (57_600, 1, 1800)
    assert quick.scale == "1,800 steps, width ×0.25" and "steps=1800" in quick.describe()
    assert override(PROFILES["quick"], {"steps": 450}, "f.toml").train == PROFILES["quick"].train  # the default, exactly
    two = override(PROFILES["quick"], {"steps": 900, "train": {"epochs": 2}}, "f.toml")
    assert (two.train.train_subset, two.train.epochs) == (14_400, 2)


@pytest.mark.parametrize(("table", "message"), [
    ({"steps": 0}, "f.toml: profiles.quick.steps: got 0; allowed: an integer ≥ 1"),
    ({"steps": 45, "train": {"epochs": 7}}, "f.toml: profiles.quick.steps: 45 steps of batch 32 do not split into 7 equal "
                                            "epochs; allowed: a multiple of 7"),
    ({"rungs": [{"steps": 450}]}, "f.toml: profiles.quick.rungs: got [{\"steps\": 450}]; allowed: a list of at least two"),
    ({"rungs": [{"steps": 450}, {"lr": 0.1}]}, "f.toml: profiles.quick.rungs[1].lr: unknown key; allowed: steps, epochs, "
                                              "train_subset, width"),
    ({"rungs": [{"steps": 900}, {"steps": 450}]}, "are not in order of size; allowed: the smallest rung first"),
    ({"rungs": [{"steps": 450}, {"train_subset": 14400}]}, "two rungs have the same scale"),
])
def test_a_bad_ladder_is_one_line_naming_the_key(table, message):
    with pytest.raises(SpecError) as err:
        override(PROFILES["quick"], table, "f.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_transfer_study_pairs_the_default_contrasts_at_450_and_1800_steps():
    spec = load_study(Path(__file__).parent.parent / "ablations" / "transfer.toml", ())
    default = load_study(Path(__file__).parent.parent / "ablations" / "contrasts.toml", ())
    quick = spec.profiles["quick"]
    assert [r.rung for r in quick.rungs] == ["450 steps, width ×0.25", "1,800 steps, width ×0.25"]
    low = quick.rungs[0]
    # the first rung is the default run exactly, so its rows are reused: same networks, same training config
    assert dataclasses.asdict(low.train) == dataclasses.asdict(default.profiles["quick"].train)
    transfer_nets = {label: r.model.digest for label, r in spec.resolved_at("quick", low.rung).items()}
    assert transfer_nets == {label: r.model.digest for label, r in default.resolved["quick"].items()}
    assert [r.rung for r in spec.profiles["paper"].rungs] == ["1 epoch, full width", "8 epochs, full width",
                                                               "≤ 1,000 epochs (early stopping), full width"]
    assert spec.expected_min == {"quick": 60.0}


def test_an_edited_rung_trains_the_new_rung_and_keeps_the_finished_ones(study_file, tmp_path):
    path, runs, out = study_file("tinyedit", LADDER), tmp_path / "runs", tmp_path / "reports"
    assert _run(path, runs, out) == 0
    path.write_text(LADDER.replace("{ steps = 2 }", "{ steps = 3 }"))  # the top rung's budget edited in the file
    assert _run(path, runs, out) == 0  # the rung is an int parameter: a new label is no new Optuna value space
    rows = results.load_rows(results.results_path(runs, "tinyedit"))
    assert len(rows) == 27 and {r["budget_images"] for r in rows[18:]} == {90}
    transfer = pd.read_csv(out / "contrasts.csv").query("kind == 'transfer'")
    assert set(transfer["high_rung"]) == {"3 steps, full width"}  # the transfer compares the ladder the file declares
