"""Study kinds: every kind found from one registry, and a run directory the kit wrote before the registry
resumes without training again."""

from __future__ import annotations

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
