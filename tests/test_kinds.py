"""Study kinds: every kind found from one registry, and a run directory the kit wrote before the registry
resumes without training again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from study import objectives, results
from study.cli import main
from tests.helpers import write_tiny_dataset

RESUME = Path(__file__).parent / "fixtures" / "resume"


@pytest.mark.parametrize("name", ["tinykinds", "tinyrobust", "tinysearch"])
def test_a_run_written_before_the_kind_registry_resumes_without_training_again(name, tmp_path, monkeypatch):
    # tests/fixtures/resume/current-run: finished runs of a ladder, a robustness and a search study, written by the
    # kit at f2bdae5 (before the kind registry, the typed coercer and the contrasts computed once)
    runs = tmp_path / "runs"
    shutil.copytree(RESUME / "current-run" / name, runs / name)
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(objectives, "train", no_training)
    table = results.results_path(runs, name)
    before = table.read_bytes()
    assert main(["run", "--only", str(RESUME / f"{name}.toml"), "--runs", str(runs), "--no-report"]) == 0
    assert table.read_bytes() == before


NOISE_STUDY = """
[study]
axis = "noise"
kind = "noise"
description = "how far apart the reference lands over seeds"
datasets = ["fashion-mnist"]

[profiles.quick]
seeds = 3
workers = 1
keep_weights = false
width = 0.25
steps = 10
train = { epochs = 1, val_subset = 0, batch_size = 16, eval_batch_size = 100 }

[[variants]]
label = "paper"
reference = true
blocks = 1

[[variants]]
label = "none"
blocks = 1
block = { links = "none" }
"""


def test_a_kind_of_ones_own_runs_plans_and_reports_end_to_end_through_the_registry(tmp_path, monkeypatch, capsys):
    # the documented route (docs/architecture.md, "Extending the kit"): one module (tests/toykind.py) that registers
    # its kind, named in $STUDY_KINDS; no file of another kind is touched
    from study.kinds import registry

    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    monkeypatch.setenv(registry.PLUGINS_ENV, "tests.toykind")
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))  # the test's registration ends with it
    path = tmp_path / "noisy.toml"
    path.write_text(NOISE_STUDY)
    runs, out = tmp_path / "runs", tmp_path / "reports"

    assert main(["plan", "--only", str(path), "--runs", str(runs), "--no-profiling", "--json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["studies"]
    assert planned["kind"] == "noise" and planned["missing"] == 3 and {c["variant"] for c in planned["cells"]} == {"paper"}

    assert main(["run", "--only", str(path), "--runs", str(runs), "--out", str(out)]) == 0
    rows = results.load_rows(results.results_path(runs, "noisy"))
    assert sorted((r["variant"], r["seed"], r["kind"]) for r in rows) == [("paper", s, "noise") for s in (0, 1, 2)]
    provenance = json.loads((runs / "noisy" / "study.json").read_text())
    assert provenance["kind"] == "noise" and provenance["roles"]["seed"] == "replicate"

    page = (out / "noisy" / "index.html").read_text(encoding="utf-8")
    assert "Seed spread" in page and (out / "noisy" / "seed_spread.csv").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "noise floor" in index and "over 3 seeds" in index
    assert "noisy" not in (out / "contrasts.csv").read_text()  # a kind without contrasts adds none

    # a re-run trains nothing: every cell is done
    monkeypatch.setattr(objectives, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    assert main(["run", "--only", str(path), "--runs", str(runs), "--no-report"]) == 0


def test_an_unknown_kind_is_one_line_naming_the_known_ones_and_how_to_add_one(tmp_path, capsys):
    path = tmp_path / "odd.toml"
    path.write_text(NOISE_STUDY.replace('kind = "noise"', 'kind = "nosie"'))
    assert main(["plan", "--only", str(path), "--no-profiling"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "study.kind" in err and "grid, robustness, search" in err and "STUDY_KINDS" in err
