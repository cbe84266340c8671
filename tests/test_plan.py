"""`study plan` / `study run --dry-run`: the right cells, done/missing from the results table, time estimates
with their source, the search bands' rejected share; and nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study import cells, objectives, results
from study.cli import main
from study.errors import SpecError
from study.kinds import search as search_kind
from study.overrides import parse_overrides
from study.studies import load_study
from tests.helpers import tiny_grid_study, write_tiny_dataset

TINY_TRAIN = 'train = { train_subset = 60, val_subset = 60, test_subset = 60, epochs = 1, batch_size = 30, precision = "fp32" }'
GRID = tiny_grid_study(("paper", "none", "dense"), profile="seeds = 2\nwidth = 1.0\nworkers = 1\n" + TINY_TRAIN)

SEARCH = """
[study]
axis = "search"
kind = "search"
base = "lrnet_paper"

[search]
kernels = [[3], [3, 5]]
links = ["paper", "none"]
blocks = [1, 2]
width_multiplier = [0.1, 0.5]

[profiles.quick]
n_trials = 5
width = 1.0
train = { train_subset = 60, epochs = 1, batch_size = 30, precision = "fp32" }
"""


@pytest.fixture
def no_training(monkeypatch):
    """Any training fails the test: a plan must train nothing."""
    def refuse(*args, **kwargs):
        raise AssertionError("a plan trained a model")

    monkeypatch.setattr(objectives, "train", refuse)
    monkeypatch.setattr("study.train.train", refuse)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


def _finished_row(ctx, variant: str, seed: int, wall_s: float, flops: int) -> dict:
    protocol = cells.resolve_protocol("fashion-mnist")
    return {"study": ctx.spec.name, "axis": ctx.spec.axis, "variant": variant, "dataset": "fashion-mnist",
            "degradation": "none", "protocol": protocol, "fold": 0, "seed": seed, "profile": "quick", "status": "ok",
            "wall_s": wall_s, "flops": flops}


def test_dry_run_lists_every_cell_marks_the_done_ones_and_trains_nothing(tiny, tmp_path, no_training, capsys):
    path, runs = tiny("tinyplan", GRID), tmp_path / "runs"
    spec = load_study(path, ())
    ctx = cells.Context(spec, "quick", runs, seeds=(0, 1), commit="test")
    flops = spec.resolved["quick"]["paper"].flops
    results.append_row(ctx.results_path, _finished_row(ctx, "paper", 0, 12.0, flops))
    results.append_row(ctx.results_path, {**_finished_row(ctx, "none", 0, 99.0, 1), "status": "failed"})  # not done
    before = ctx.results_path.read_bytes()

    assert main(["run", "--dry-run", "--json", "--only", str(path), "--runs", str(runs), "--no-profiling"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (study,) = doc["studies"]
    listed = [(c["variant"], c["seed"], c["done"]) for c in study["cells"]]
    assert listed == [("paper", 0, True), ("none", 0, False), ("dense", 0, False),  # seed-major, as the run queues them
                     ("paper", 1, False), ("none", 1, False), ("dense", 1, False)]
    assert study["missing"] == 5
    by_label = {c["variant"]: c for c in study["cells"]}
    assert {label: by_label[label]["flops"] for label in by_label} == {
        label: spec.resolved["quick"][label].flops for label in ("paper", "none", "dense")}
    assert by_label["dense"]["params"] == spec.resolved["quick"]["dense"].params
    # the measured variant's own mean wall time; the others scaled by FLOPs from that rate
    assert study["seconds"]["paper"] == [12.0, "measured"]
    dense_flops = spec.resolved["quick"]["dense"].flops
    assert study["seconds"]["dense"] == [pytest.approx(12.0 * dense_flops / flops), "measured, FLOPs-scaled"]
    assert doc["remaining_s"] == pytest.approx(sum(study["seconds"][c[0]][0] for c in listed if not c[2]))
    # nothing ran: the table is as it was, no Optuna journal, no history
    assert ctx.results_path.read_bytes() == before
    assert sorted(p.name for p in (runs / "tinyplan").iterdir()) == ["results.jsonl"]  # no journal, history, study.json


def test_plan_table_and_profiled_estimate_without_any_rows(tiny, tmp_path, no_training, capsys):
    path = tiny("tinyfresh", GRID)
    assert main(["plan", "--only", str(path), "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "study tinyfresh (grid, profile quick): 0/6 cells done" in out
    lines = [line for line in out.splitlines() if line.strip().startswith(("paper", "none", "dense"))]
    assert len(lines) == 3 and all("0,1" in line for line in lines)  # both seeds missing for every variant
    assert "(profiled)" in lines[0] and "(profiled, FLOPs-scaled)" in lines[1]
    assert "nothing was trained" in out
    assert not (tmp_path / "runs").exists()


def test_search_plan_reports_the_share_the_bands_reject(tiny, tmp_path, no_training):
    open_band = load_study(tiny("tinysearch", SEARCH), ())
    ctx = cells.Context(open_band, "quick", tmp_path / "runs", seeds=(0,), commit="test")
    assert search_kind.band_rejection(ctx, samples=40) == (0, {})
    shut = load_study(tiny("tinysearch", SEARCH), parse_overrides(["search.flops_band=[0, 1]"]))
    rejected, reasons = search_kind.band_rejection(cells.Context(shut, "quick", tmp_path / "runs", seeds=(0,)), samples=40)
    assert rejected == 40 and reasons == {"flops above the band": 40}
    # a band at the median FLOPs of the space rejects a share strictly between none and all
    flops = sorted(_sampled_flops(ctx, 40))
    middle = load_study(tiny("tinysearch", SEARCH), parse_overrides([f"search.flops_band=[0, {flops[20]}]"]))
    rejected, _ = search_kind.band_rejection(cells.Context(middle, "quick", tmp_path / "runs", seeds=(0,)), samples=40)
    assert rejected == sum(f > flops[20] for f in flops) and 0 < rejected < 40
    p = search_kind.search_plan(cells.Context(middle, "quick", tmp_path / "runs", seeds=(0,)), samples=40, profile=False)
    assert (p.trials, p.trials_done, p.missing, p.band_rejected) == (5, 0, 5, rejected)


def _sampled_flops(ctx, n: int) -> list[int]:
    """FLOPs of the same uniform draws, counted by fvcore on the built network (the search's own check)."""
    import optuna

    from study.measure import count_flops

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [count_flops(objectives.sample_network(study.ask(), ctx)[0].build())["flops"] for _ in range(n)]


def test_plan_of_a_bad_study_is_the_loaders_one_line(tiny, capsys):
    path = tiny("tinybad", GRID.replace('links = "none"', 'links = "nonee"'))
    with pytest.raises(SpecError):
        load_study(path, ())
    assert main(["plan", "--only", str(path), "--no-profiling"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
