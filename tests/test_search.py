"""Studies end to end on a tiny written dataset: a grid study, a multi-objective search, kill and resume, adaptive
seeds, failing cells, a busy machine, two workers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from study import cells, objectives, results, storage
from study.cli import main
from study.studies import load_study
from tests.helpers import tiny_search_study, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]

TINY_TRAIN = ('width = 1.0\nworkers = 1\ntrain = { train_subset = 60, val_subset = 60, test_subset = 60, epochs = 1, batch_size = 30, '
              'precision = "fp32", fast = false }')

GRID = f"""
[study]
axis = "links"
kind = "grid"
base = "lrnet_paper"
datasets = ["fashion-mnist"]

[[variants]]
label = "paper"
reference = true
blocks = 1
block = {{ width_multiplier = 0.25 }}

[[variants]]
label = "none"
blocks = 1
block = {{ links = "none", width_multiplier = 0.25 }}

[[variants]]
label = "dense"
blocks = 1
block = {{ links = "dense", width_multiplier = 0.25 }}

[profiles.quick]
seeds = 2
{TINY_TRAIN}
"""

PARETO = tiny_search_study('objectives = ["accuracy", "flops"]\npruner = "none"', f"n_trials = 3\nseeds = [0]\n{TINY_TRAIN}")


@pytest.fixture
def study_file(tmp_path, monkeypatch):
    """Study files over a tiny written Fashion-MNIST stand-in, so these end-to-end runs need no real data."""
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=300, test=100)))

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


def keys(path: Path) -> Counter:
    return Counter(results.row_key(r) for r in results.load_rows(path))


def test_tiny_grid_study_end_to_end(study_file, tmp_path):
    path = study_file("tinygrid", GRID)
    runs = tmp_path / "runs"
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report"]) == 0
    table = results.results_path(runs, "tinygrid")
    rows = results.load_rows(table)
    assert len(rows) == 6 and max(keys(table).values()) == 1  # 3 variants × 2 seeds, each exactly once
    assert {r["variant"] for r in rows} == {"paper", "none", "dense"}
    assert all(r["status"] == "ok" and r["protocol"] == "val-split" and r["test_size"] == 60 for r in rows)
    assert all(r["dataset"] == "fashion-mnist" and str(tmp_path / "data" / "fashion-mnist") in r["data_source"] for r in rows)
    assert {r["is_reference"] for r in rows if r["variant"] == "paper"} == {True}
    opened = storage.open_storage(runs, "tinygrid", None)
    trials = optuna.load_study(study_name="tinygrid", storage=opened).get_trials()
    assert Counter(t.state for t in trials)[optuna.trial.TrialState.COMPLETE] == 6
    # a second run trains nothing: the table and the trials are unchanged
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report"]) == 0
    assert results.load_rows(table) == rows
    assert len(optuna.load_study(study_name="tinygrid", storage=storage.open_storage(runs, "tinygrid", None)).trials) == 6


def test_tiny_multi_objective_search_yields_a_pareto_front(study_file, tmp_path):
    path = study_file("tinypareto", PARETO)
    runs = tmp_path / "runs"
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report"]) == 0
    rows = [r for r in results.load_rows(results.results_path(runs, "tinypareto")) if r["seed"] == 0]  # its trials
    assert len(rows) == 3 and all(r["axis"] == "search" for r in rows)
    study = optuna.load_study(study_name="tinypareto", storage=storage.open_storage(runs, "tinypareto", None))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = study.best_trials
    assert 1 <= len(front) <= 3
    by_flops = {r["flops"]: r["val_accuracy"] for r in rows}
    for t in front:  # the front's values are the rows' (val accuracy, FLOPs)
        assert by_flops[t.values[1]] == pytest.approx(t.values[0])


def test_killed_run_keeps_finished_rows_and_trains_only_the_missing(study_file, tmp_path):
    path = study_file("tinykill", GRID)
    runs = tmp_path / "runs"
    table = results.results_path(runs, "tinykill")
    cmd = [sys.executable, "-m", "study", "run", "--only", str(path), "--runs", str(runs), "--no-report"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while len(results.load_rows(table)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = results.load_rows(table)
    assert 2 <= len(before) < 6, "the run should have been killed mid-study"
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report"]) == 0
    after = results.load_rows(table)
    assert after[: len(before)] == before  # finished rows untouched
    assert len(after) == 6 and max(keys(table).values()) == 1  # no duplicate, none missing
    seeds = [r["seed"] for r in after]
    assert seeds == sorted(seeds)  # the resume kept the seed-major order: the killed cell before the next seed's
    study = optuna.load_study(study_name="tinykill", storage=storage.open_storage(runs, "tinykill", None))
    states = Counter(t.state for t in study.trials)
    assert states[optuna.trial.TrialState.RUNNING] == 0


def test_every_shipped_study_validates_and_sizes_its_grid():
    from study.studies import list_studies, study_path

    for name in list_studies():
        spec = load_study(study_path(name))
        ctx = cells.Context(spec, "quick", Path("/nonexistent"), seeds=tuple(range(spec.profiles["quick"].seeds)), commit="test")
        assert cells.expected_rows(ctx) >= 1
    kernels = load_study(study_path("kernels"))
    assert kernels.reference().label == "{3,5,7} (paper)"


def test_adaptive_seeds_stop_by_the_ci_criterion_and_record_why(study_file, tmp_path):
    dense = '[[variants]]\nlabel = "dense"\nblocks = 1\nblock = { links = "dense", width_multiplier = 0.25 }\n'
    assert dense in GRID
    # two variants (paper, none), trained long enough that their accuracies differ from seed to seed
    seeds_study = GRID.replace(dense, "").replace("train_subset = 60, val_subset = 60, test_subset = 60, epochs = 1",
                                                  "train_subset = 300, val_subset = 60, test_subset = 200, epochs = 2")
    assert seeds_study != GRID.replace(dense, "")
    path = study_file("tinyseeds", seeds_study)
    runs = tmp_path / "runs"
    # a loose target (±60 points) is met as soon as the minimum of 3 seeds is in
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report", "--seeds", "auto:6", "--ci-target", "60"]) == 0
    rows = results.load_rows(results.results_path(runs, "tinyseeds"))
    assert sorted({r["seed"] for r in rows}) == [0, 1, 2] and len(rows) == 6
    info = json.loads((runs / "tinyseeds" / "study.json").read_text())
    assert info["seeds_stop_reason"].startswith("ci-target")
    assert set(info["ci_half_widths"]) == {"none"} and info["ci_half_widths"]["none"] <= 60
    # an unreachable target runs to the cap and says so
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report", "--seeds", "auto:4", "--ci-target", "0.001",
                 "--mde-target", "0"]) == 0
    info = json.loads((runs / "tinyseeds" / "study.json").read_text())
    assert info["seeds_stop_reason"].startswith("max-seeds")
    assert sorted({r["seed"] for r in results.load_rows(results.results_path(runs, "tinyseeds"))}) == [0, 1, 2, 3]


def test_a_study_whose_cells_fail_exits_nonzero_in_one_line_and_spares_the_others(study_file, tmp_path, monkeypatch, capsys):
    broken, fine = study_file("tinybroken", GRID), study_file("tinyfine", GRID.replace('label = "dense"', 'label = "dense2"'))
    real_train = objectives.train

    def train(network, *args, **kwargs):
        if getattr(network, "name", "").endswith(":none") and "tinybroken" in network.name:
            raise RuntimeError("boom: this cell cannot train")
        return real_train(network, *args, **kwargs)

    monkeypatch.setattr(objectives, "train", train)
    runs = tmp_path / "runs"
    code = main(["run", "--only", f"{broken},{fine}", "--runs", str(runs), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("error: study tinybroken: 2 cells not completed") and "boom: this cell cannot train" in err
    assert "finished rows are kept" in err
    assert len(results.load_rows(results.results_path(runs, "tinybroken"))) == 4  # paper and dense, 2 seeds each
    assert len(results.load_rows(results.results_path(runs, "tinyfine"))) == 6  # the next study still ran


TIMING = ("train_img_per_s", "infer_img_per_s", "wall_s", "peak_mem_mb", "history_path")


def _busy_cores(n: int) -> list[subprocess.Popen]:
    """n processes that keep one core each at 100 % until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_same_study_gives_identical_rows_on_an_idle_and_a_busy_machine(study_file, tmp_path):
    path = study_file("tinyload", GRID)
    idle, busy = tmp_path / "idle", tmp_path / "busy"
    assert main(["run", "--only", str(path), "--runs", str(idle), "--no-report"]) == 0
    hogs = _busy_cores(os.cpu_count() or 2)
    try:
        assert main(["run", "--only", str(path), "--runs", str(busy), "--no-report"]) == 0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    first, second = (results.load_rows(results.results_path(r, "tinyload")) for r in (idle, busy))
    assert len(first) == len(second) == 6
    assert all(set(results.COLUMNS) <= set(r) for r in first)  # every writer fills the whole row
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k not in TIMING} for r in rows), key=results.row_key)  # noqa: E731
    assert strip(first) == strip(second)
    # cells ran seed-major: every variant of seed 0 before any of seed 1, so a stopped run leaves whole seeds
    assert [r["seed"] for r in first] == [0, 0, 0, 1, 1, 1]


def test_k_fold_protocols_rotate_the_test_fold_over_seeds():
    assert [cells.fold_of("kfold-test:5", s) for s in range(7)] == [0, 1, 2, 3, 4, 0, 1]
    assert cells.fold_of("val-split", 3) == 0


def test_two_local_workers_on_the_journal_run_every_cell_once_seed_major(study_file, tmp_path):
    path = study_file("tinytwo", GRID)
    runs = tmp_path / "runs"
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report", "--workers", "2"]) == 0
    rows = results.load_rows(results.results_path(runs, "tinytwo"))
    assert len(rows) == 6 and max(keys(results.results_path(runs, "tinytwo")).values()) == 1
    assert {r["threads"] for r in rows} == {max(1, (os.cpu_count() or 1) // 2)}
    study = optuna.load_study(study_name="tinytwo", storage=storage.open_storage(runs, "tinytwo", None))
    started = [t.params["seed"] for t in sorted(study.trials, key=lambda t: t.datetime_start)]
    assert started[:3] == [0, 0, 0]  # the queue is seed-major: every variant of seed 0 starts before seed 1
    # a worker never asks the sampler past the queue (measured: exactly 6 trials); a race between two workers
    # popping the last queued cell could still leave one stray (pruned) trial per worker
    assert len(study.trials) <= 6 + 2, [(t.number, t.state.name, t.params) for t in study.trials]


def test_a_run_written_by_the_older_kit_resumes_without_training_again(tmp_path, monkeypatch):
    # tests/fixtures/resume/old-run: a finished run of tinyresume.toml written by the kit at 6432b31, before the
    # results table, cells, objectives and storage got their own modules and models their resolved form
    import shutil

    from tests.helpers import write_tiny_dataset

    fixture = Path(__file__).parent / "fixtures" / "resume"
    runs = tmp_path / "runs"
    shutil.copytree(fixture / "old-run", runs)
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(objectives, "train", no_training)
    table = results.results_path(runs, "tinyresume")
    before = table.read_bytes()
    assert main(["run", "--only", str(fixture / "tinyresume.toml"), "--runs", str(runs), "--no-report"]) == 0
    assert table.read_bytes() == before
    assert len(results.load_rows(table)) == 4


def test_two_search_workers_started_together_propose_different_first_trials(tmp_path, monkeypatch):
    from study.objectives import sample_network
    from study.search import WORKER_ENV, make_study, sampler_seed
    from tests.helpers import tiny_search_study

    path = tmp_path / "tinyseeds.toml"
    path.write_text(tiny_search_study(profile="n_trials = 6"))
    ctx = cells.Context(load_study(path), "quick", tmp_path / "runs", seeds=(0,), commit="test")
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, None)
    first = {}
    for worker in ("0", "1"):
        at = dataclasses.replace(ctx, worker=worker)  # what `study worker` makes of STUDY_WORKER_INDEX
        trial = make_study(at, opened).ask()  # both on the one storage, before either has a result
        sample_network(trial, at)
        first[worker] = (sampler_seed(at), trial.params)
    assert first["0"][0] != first["1"][0] and first["0"][1] != first["1"][1]
    assert sampler_seed(dataclasses.replace(ctx, worker="0")) == first["0"][0]  # the same worker: the same seed
    assert WORKER_ENV == "STUDY_WORKER_INDEX"


def test_the_older_kits_rows_are_stale_where_the_profile_now_trains_otherwise(tmp_path, monkeypatch, capsys):
    import shutil

    from tests.helpers import write_tiny_dataset

    fixture = Path(__file__).parent / "fixtures" / "resume"
    runs = tmp_path / "runs"
    shutil.copytree(fixture / "old-run", runs)
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    path = tmp_path / "tinyresume.toml"
    path.write_text((fixture / "tinyresume.toml").read_text().replace(", fast = false, fast_eval = true", ""))
    assert main(["plan", "--only", str(path), "--runs", str(runs), "--no-profiling", "--json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["studies"]
    assert planned["stale"] == {"paper": 2, "none": 2} and planned["missing"] == 4  # the fast path trains otherwise
