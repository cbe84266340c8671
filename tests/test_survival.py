"""What survives what (docs/survival.md), each failure met the way a user meets it: an edited study file, a torn
last line of results.jsonl, a truncated Optuna journal, a SIGTERM to `study run`, a read-only or full runs folder,
corrupt data under `study run`, a missing or malformed study.json, bad variant inputs. Each ends in one line with
its documented exit code, keeps every finished row, and after the fix gives the contrasts of a clean run."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from study import results
from study.cli import main
from study.errors import SpecError
from study.studies import load_study
from tests.helpers import tiny_grid_study, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
PROFILE = ('seeds = 2\nworkers = {workers}\nwidth = 1.0\ntrain = {{ train_subset = {subset}, val_subset = 60, '
           'test_subset = 60, epochs = 1, batch_size = 30, precision = "fp32", fast = false }}')


def _study(subset: int = 60, workers: int = 1) -> str:
    return tiny_grid_study(profile=PROFILE.format(subset=subset, workers=workers))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(write a study file, run `study run` on it in-process) in a folder with a tiny dataset."""
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=200, test=100)))

    def write(text: str, name: str = "tinysurvive") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


def _run(path: Path, runs: Path, *extra: str) -> int:
    return main(["run", "--only", str(path), "--runs", str(runs), "--out", str(runs.parent / "reports"), *extra])


def _contrasts(runs: Path) -> pd.DataFrame:
    return pd.read_csv(runs.parent / "reports" / "contrasts.csv")[["contrast", "n", "delta", "ci_low", "ci_high", "verdict"]]


def _one_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith(("error:", "stopped"))]
    assert len(lines) == 1, lines
    return lines[0]


def test_an_edited_budget_makes_the_cells_stale_and_the_report_shows_only_the_new_rows(tiny, tmp_path, capsys):
    path, runs = tiny(_study(60)), tmp_path / "runs"
    assert _run(path, runs) == 0
    old = results.load_rows(results.results_path(runs, "tinysurvive"))
    path.write_text(_study(90))  # the budget edited in the file, no --set
    capsys.readouterr()
    assert main(["plan", "--only", str(path), "--runs", str(runs), "--no-profiling"]) == 0
    plan = capsys.readouterr().out.splitlines()
    assert plan[1].startswith("  ! paper: 2 stale cells") and plan[2].startswith("  ! none: 2 stale cells")
    assert _run(path, runs) == 0
    rows = results.load_rows(results.results_path(runs, "tinysurvive"))
    assert rows[:4] == old and len(rows) == 8  # the old rows kept, superseded
    new = rows[4:]
    assert {r["budget_images"] for r in new} == {90} and {json.loads(r["config"])["train_subset"] for r in new} == {90}
    shown = results.load_table(results.results_path(runs, "tinysurvive"))
    assert sorted(shown["test_accuracy"]) == sorted(r["test_accuracy"] for r in new)
    accuracy = {(r["variant"], r["seed"]): 100 * r["test_accuracy"] for r in new}
    delta = sum(accuracy["none", s] - accuracy["paper", s] for s in (0, 1)) / 2
    assert _contrasts(runs)["delta"].tolist() == [pytest.approx(delta, abs=1e-3)]
    page = (tmp_path / "reports" / "tinysurvive" / "index.html").read_text(encoding="utf-8")
    assert "3 steps" in page and "4 superseded rows" in page  # the profile line of the rows shown, and what was left out


def test_a_torn_last_line_loses_no_row_and_locks_no_cell(tiny, tmp_path):
    path, runs = tiny(_study()), tmp_path / "runs"
    assert _run(path, runs) == 0
    clean = _contrasts(runs)
    table = results.results_path(runs, "tinysurvive")
    data = table.read_bytes()
    table.write_bytes(data[:-40])  # a kill mid-write: the last row is torn
    assert results.torn_lines(table) == 1 and len(results.load_rows(table)) == 3
    results.append_row(table, {"study": "x", "status": "failed"})  # the next append starts a line of its own
    assert len(results.load_rows(table)) == 4 and results.torn_lines(table) == 1
    assert _run(path, runs) == 0  # the lost row comes back (from the journal that kept it), nothing is locked
    rows = [r for r in results.load_rows(table) if r["study"] == "tinysurvive"]
    assert len(rows) == 4
    pd.testing.assert_frame_equal(_contrasts(runs), clean)


def test_a_truncated_journal_is_repaired_in_one_line_and_the_run_goes_on(tiny, tmp_path, capsys):
    path, runs = tiny(_study()), tmp_path / "runs"
    assert _run(path, runs) == 0
    clean = _contrasts(runs)
    journal = runs / "tinysurvive" / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-25])  # a full disk mid-record
    capsys.readouterr()
    assert _run(path, runs) == 0
    err = capsys.readouterr().err
    assert "repaired a torn Optuna journal" in err and "finished rows are safe in results.jsonl" in err
    assert list(journal.parent.glob("optuna.journal.torn-*"))
    assert _run(path, runs) == 0  # and every later run too
    pd.testing.assert_frame_equal(_contrasts(runs), clean)


def _worker_pids(runs: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"study worker .*--runs {runs}"], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep (procps) to look for orphaned workers")
def test_sigterm_stops_the_run_and_its_workers_and_a_rerun_completes(tiny, tmp_path):
    path, runs = tiny(_study(subset=150, workers=2)), tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "study", "run", "--only", str(path), "--runs", str(runs), "--out", str(tmp_path / "reports")]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _worker_pids(runs):
        time.sleep(0.5)
    assert _worker_pids(runs), "the workers never started"
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "stopped by SIGTERM: finished results are kept; re-run the same command to resume"
    assert _worker_pids(runs) == []  # no orphan goes on training
    finished = results.load_rows(results.results_path(runs, "tinysurvive"))
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    rows = results.load_rows(results.results_path(runs, "tinysurvive"))
    assert rows[:len(finished)] == finished and len({(r["variant"], r["seed"]) for r in rows}) == 4


def _mounted(kind: str, folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    commands = {"tmpfs": [["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)]],
                "ro": [["mount", "--bind", str(folder), str(folder)], ["mount", "-o", "remount,bind,ro", str(folder)]]}
    try:
        for command in commands[kind]:
            subprocess.run(command, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def test_a_read_only_runs_folder_is_one_line_and_keeps_the_rows(tiny, tmp_path, capsys):
    path, runs = tiny(_study()), tmp_path / "runs"
    assert _run(path, runs) == 0
    before = results.results_path(runs, "tinysurvive").read_bytes()
    path.write_text(_study(90))  # work to do, in a folder that cannot take it
    if not _mounted("ro", runs):
        pytest.skip("cannot make a read-only bind mount here (needs root)")
    try:
        capsys.readouterr()
        assert _run(path, runs) == 1
        line = _one_line(capsys)
        assert "Read-only file system" in line and "pass --runs DIR on a writable disk" in line
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=True)  # lazy: a lock file still open does not block it
    assert results.results_path(runs, "tinysurvive").read_bytes() == before
    assert _run(path, runs) == 0  # the fix the line names (a writable folder): the run completes
    rows = results.load_rows(results.results_path(runs, "tinysurvive"))
    assert {r["budget_images"] for r in rows[4:]} == {90} and len(rows) == 8


def test_a_full_disk_is_one_line_and_keeps_the_rows(tiny, tmp_path, capsys):
    path, runs = tiny(_study()), tmp_path / "runs"
    if not _mounted("tmpfs", runs):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        assert _run(path, runs, "--no-report") == 0
        rows = results.load_rows(results.results_path(runs, "tinysurvive"))
        filler = runs / "filler"
        with open(filler, "wb") as fh:  # fill the disk
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        path.write_text(_study(90))
        capsys.readouterr()
        assert _run(path, runs, "--no-report") == 1
        line = _one_line(capsys)
        assert "No space left on device" in line and "free disk space" in line
        assert results.load_rows(results.results_path(runs, "tinysurvive"))[:4] == rows
        filler.unlink()  # the fix the line names: free space
        assert _run(path, runs, "--no-report") == 0
        assert len(results.load_rows(results.results_path(runs, "tinysurvive"))) >= 8
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=True)  # lazy: a lock file still open does not block it


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_data_under_study_run_is_one_line_and_exit_3(tiny, tmp_path, capsys, workers):
    path, runs = tiny(_study(workers=workers)), tmp_path / "runs"
    images = next((tmp_path / "data" / "fashion-mnist").glob("train-images*"))
    good = images.read_bytes()
    images.write_bytes(gzip.compress(gzip.decompress(good)[:5000]))  # a truncated download
    capsys.readouterr()
    assert _run(path, runs) == 3
    line = _one_line(capsys)
    assert "fashion-mnist" in line and "train-images" in line
    images.write_bytes(good)  # the fix: the data again
    from study import cells

    cells._PROTOCOLS.clear()  # this process looked at the broken split once; a fresh run would look again
    assert _run(path, runs) == 0
    assert len(results.load_rows(results.results_path(runs, "tinysurvive"))) == 4


def test_a_lost_or_malformed_study_json_changes_no_verdict(tiny, tmp_path, capsys):
    text = _study().replace('datasets = ["fashion-mnist"]', 'datasets = ["fashion-mnist"]\nequivalence_margin = 20.0')
    path, runs = tiny(text), tmp_path / "runs"
    assert _run(path, runs) == 0
    clean = _contrasts(runs)
    assert clean["verdict"].iloc[0].split()[0] in ("better", "worse", "equivalent", "inconclusive")
    meta = runs / "tinysurvive" / "study.json"
    meta.unlink()
    from study.report.__main__ import main as report

    assert report(["--runs", str(runs), "--out", str(tmp_path / "reports")]) == 0
    pd.testing.assert_frame_equal(_contrasts(runs), clean)
    page = (tmp_path / "reports" / "tinysurvive" / "index.html").read_text(encoding="utf-8")
    assert "study.json is missing: equivalence_margin 20.0, kind grid recovered from the rows" in page
    meta.write_text("{not json")
    assert _run(path, runs) == 0  # a malformed one is rewritten, with a warning
    assert json.loads(meta.read_text())["equivalence_margin"] == 20.0
    pd.testing.assert_frame_equal(_contrasts(runs), clean)


def test_blocks_zero_is_an_error_and_a_spec_file_model_is_found_beside_the_study(tmp_path):
    zero = tmp_path / "zero.toml"
    zero.write_text(tiny_grid_study().replace("blocks = 1", "blocks = 0"))
    with pytest.raises(SpecError, match=r"variants\[0\]\.blocks: got 0; allowed: a block count ≥ 1"):
        load_study(zero)
    (tmp_path / "nets").mkdir()
    shutil.copy(REPO / "ablations" / "specs" / "lrnet_paper.toml", tmp_path / "nets" / "mine.toml")
    study = tmp_path / "spec_model.toml"
    study.write_text('[study]\naxis = "links"\n\n[[variants]]\nlabel = "paper"\nreference = true\nmodel = "lrnet_paper"\n\n'
                     '[[variants]]\nlabel = "mine"\nmodel = "nets/mine.toml"\n')
    spec = load_study(study)
    assert spec.resolved["quick"]["mine"].model.digest == spec.resolved["quick"]["paper"].model.digest
    study.write_text(study.read_text().replace("nets/mine.toml", "nets/absent.toml"))
    with pytest.raises(SpecError, match=r"variants\[1\]\.model: no network spec file .*absent\.toml"):
        load_study(study)
