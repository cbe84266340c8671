"""The CLI's own surface: `--version`, exit codes in `--help`, the distinct exit code of a run stopped with cells missing."""

from __future__ import annotations

import json
import re

import pytest

from study.cli import main
from study.errors import EXIT_INCOMPLETE
from tests.helpers import tiny_grid_study, write_tiny_dataset

TINY = tiny_grid_study(("paper",), profile="seeds = 2\nwidth = 1.0\nworkers = 1")


def test_version_and_exit_codes_are_in_the_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and re.fullmatch(r"python -m study \S+\n", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "4 `run` stopped by its time guard with cells missing" in out and "--dry-run" in out and "--set" in out


def test_a_run_stopped_by_its_time_guard_with_cells_missing_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    path = tmp_path / "tinyguard.toml"
    path.write_text(TINY)
    # a guard that is over before the first trial: nothing trains, every cell is missing
    code = main(["run", "--only", str(path), "--runs", str(tmp_path / "runs"), "--no-report", "--budget-min", "0.00001"])
    assert code == EXIT_INCOMPLETE == 4
    err = capsys.readouterr().err
    assert "budget ran out before every cell ran (missing: tinyguard 2)" in err and "(exit code 4)" in err


def test_the_gpu_check_rehearses_on_the_cpu_and_saves_its_json(tmp_path, capsys):
    # `nox -s gpu -- --tiny` runs this entry point; where nox is absent, `python3 -m study gpu --tiny` does
    data = write_tiny_dataset(tmp_path / "data")
    assert main(["gpu", "--tiny", "--out", str(tmp_path / "out"), "--data-root", str(data)]) == 0
    saved = list((tmp_path / "out").glob("gpu-check-*.json"))
    assert len(saved) == 1 and f"saved {saved[0]}" in capsys.readouterr().out
    doc = json.loads(saved[0].read_text())
    assert doc["tiny"] is True and doc["device"] == "cpu" and doc["complete"] is True and doc["skipped"] == []
    assert {r["model"] for r in doc["throughput"]} == {"lrnet_paper", "resnet18_scratch"}
    assert all(r["train_img_per_s"] > 0 and r["infer_img_per_s"] > 0 and r["batch"] == 4 for r in doc["throughput"])
    tta = doc["time_to_accuracy"]
    assert tta["model"] == "lrnet_paper ×0.25" and len(tta["test_accuracy"]) == 1 and 0 <= tta["test_accuracy"][0] <= 1
    assert tta["seeds"] == tta["seeds_planned"] == 1 and tta["train_seconds_per_seed"][0] > 0
    assert tta["reached"] == (tta["mean_test_accuracy"] >= 0.95)
    hours = doc["paper_study"]["hours_per_model"]
    assert set(hours) == {"lrnet_paper", "resnet18_scratch"} and all(h > 0 for h in hours.values())


def test_the_full_gpu_check_refuses_a_machine_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the full check would run")
    assert main(["gpu"]) == 1
    assert "`--tiny` rehearses it on the CPU" in capsys.readouterr().err
