"""The CLI's own surface: `--version`, exit codes in `--help`, the distinct exit code of a run stopped with cells missing."""

from __future__ import annotations

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
