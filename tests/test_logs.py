"""Logging: a worker's run.log has a line per trial start/finish/failure with its cell and duration; -v/-q;
Optuna's logger is not silenced by importing the kit; plain progress lines with an ETA off a terminal."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from study import cells, objectives, progress
from study.cli import main
from study.studies import load_study, study_path
from tests.helpers import tiny_grid_study, write_tiny_dataset

TINY_TRAIN = 'train = { train_subset = 60, val_subset = 60, test_subset = 60, epochs = 1, batch_size = 30, precision = "fp32", fast = false }'
TWO_CELLS = tiny_grid_study(profile="seeds = 1\nwidth = 1.0\nworkers = 1\n" + TINY_TRAIN)

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\S+ \S+ (INFO|WARNING) pid \d+ study\.trials: tinylog trial (\d+) (start|done in|failed after|pruned after)")


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    main_logger = logging.getLogger("study")
    for handler in list(main_logger.handlers):
        main_logger.removeHandler(handler)
    optuna.logging.enable_default_handler()


def test_a_workers_log_has_a_line_per_trial_with_cell_and_duration(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    path = tmp_path / "tinylog.toml"
    path.write_text(TWO_CELLS)
    real_train = objectives.train

    def train(network, *args, **kwargs):
        if network.name.endswith(":none"):
            raise RuntimeError("boom: this cell cannot train")
        return real_train(network, *args, **kwargs)

    monkeypatch.setattr(objectives, "train", train)
    runs = tmp_path / "runs"
    assert main(["worker", "--study", str(path), "--runs", str(runs)]) == 1  # the broken cell fails the worker
    lines = (runs / "tinylog" / "run.log").read_text().splitlines()
    trial_lines = [line for line in lines if "study.trials" in line]
    assert trial_lines and all(LINE.match(line) for line in trial_lines)
    done = [line for line in trial_lines if " done in " in line]
    assert len(done) == 1 and "variant=paper dataset=fashion-mnist seed=0: val " in done[0]
    failed = [line for line in trial_lines if " failed after " in line]
    assert failed and all("variant=none dataset=fashion-mnist seed=0: RuntimeError: boom" in line for line in failed)
    assert all(line.split()[2] == "WARNING" for line in failed)
    # every trial that started has a closing line (done, failed or pruned), the cell named at the start
    started = {LINE.match(line).group(2) for line in trial_lines if " start: " in line}
    closed = {LINE.match(line).group(2) for line in trial_lines if " start: " not in line}
    assert started == closed and len(started) >= 2
    assert any("start: variant=paper dataset=fashion-mnist seed=0" in line for line in trial_lines)


def test_verbosity_sets_the_stderr_level_and_optuna_is_not_silenced_at_import(capsys):
    probe = ("import optuna; optuna.logging.set_verbosity(optuna.logging.INFO); import study.search; "
             "print(optuna.logging.get_verbosity() == optuna.logging.INFO)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "True"  # importing the kit leaves Optuna's logger alone
    from study.logs import configure

    log = logging.getLogger("study.test")
    configure(-1)
    log.info("hidden info")
    log.warning("shown warning")
    configure(1)
    log.debug("shown debug")
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    configure(2)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    err = capsys.readouterr().err
    assert "hidden info" not in err and "shown warning" in err and "shown debug" in err


def test_off_a_terminal_progress_is_a_plain_periodic_line_with_an_eta(tmp_path, monkeypatch):
    assert progress.eta_text(done_now=10, total=30, done_at_start=0, elapsed_s=100) == "3 min"
    assert progress.eta_text(done_now=10, total=12, done_at_start=0, elapsed_s=100) == "20 s"
    assert progress.eta_text(done_now=4, total=30, done_at_start=4, elapsed_s=100) == "?"  # nothing finished yet
    monkeypatch.setenv("STUDY_PROGRESS_S", "0")
    spec = load_study(study_path("links"))
    ctx = cells.Context(spec, "quick", tmp_path / "runs", seeds=(0, 1), commit="test")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("study.progress").addHandler(handler)
    logging.getLogger("study.progress").setLevel(logging.INFO)
    try:
        bar = progress.Progress([ctx])  # pytest's stderr is not a terminal: no live bar
        bar.start(1, ctx)
        bar.update()
        bar.close()
    finally:
        logging.getLogger("study.progress").removeHandler(handler)
        logging.getLogger("study.progress").setLevel(logging.NOTSET)
    assert bar.bar.disable
    assert "progress: study 1/1 links: 0/8 trials, ETA ?" in seen
    assert any(line.startswith("study 1/1 links: done") for line in seen)
