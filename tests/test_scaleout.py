"""Scale-out (issue #7): many `python -m study worker` processes on one study in a real PostgreSQL.

The server is started by the tests themselves (tests/pg.py); the workers train tiny networks on the
real Fashion-MNIST, one torch thread each.
"""

from __future__ import annotations

import collections
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study import cli, results
from study import storage as kit_storage
from study.errors import KitError
from tests.helpers import write_tiny_dataset
from tests.pg import postgres_server, postgres_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_S = 2  # the workers' heartbeat here: a dead worker's trial is failed after 3 × 2 s
VARIANTS = (("paper", "paper", (3, 5, 7)), ("none", "none", (3, 5, 7)), ("residual", "residual", (3, 5, 7)),
            ("dense", "dense", (3, 5, 7)), ("paper-k35", "paper", (3, 5)), ("none-k35", "none", (3, 5)))


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A tiny written Fashion-MNIST stand-in (the workers inherit STUDY_DATA_ROOT): no real data needed."""
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data", train=300, test=100)))


def write_study(folder: Path, name: str, variants: int = 6, epochs: int = 1, train_subset: int = 64) -> Path:
    """A grid study of `variants` tiny networks × 2 seeds on Fashion-MNIST, with a tiny quick profile."""
    lines = ["[study]", f'name = "{name}"', 'axis = "links"', 'kind = "grid"', 'base = "lrnet_paper"',
             'datasets = ["fashion-mnist"]', ""]
    for i, (label, links, kernels) in enumerate(VARIANTS[:variants]):
        lines += ["[[variants]]", f'label = "{label}"', f"reference = {'true' if i == 0 else 'false'}",
                  f'block = {{ links = "{links}", kernels = {list(kernels)}, width_multiplier = 0.25 }}', "blocks = 1", ""]
    lines += ["[profiles.quick]", "seeds = 2", "width = 1.0", "workers = 1",
              f"train = {{ train_subset = {train_subset}, val_subset = 64, test_subset = 64, epochs = {epochs}, "
              'batch_size = 32, precision = "fp32", fast = false }']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_worker(study: Path, storage: str, runs: Path, log: Path) -> subprocess.Popen:
    """`python -m study worker` as a separate process with one torch thread."""
    env = dict(os.environ, STUDY_THREADS="1", OMP_NUM_THREADS="1", STUDY_HEARTBEAT_S=str(HEARTBEAT_S))
    cmd = [sys.executable, "-m", "study", "worker", "--study", str(study), "--storage", storage, "--runs", str(runs)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_run(study: Path, storage: str, runs: Path, log: Path, workers: int) -> subprocess.Popen:
    """`python -m study run --workers N`: N local worker processes on the shared storage."""
    env = dict(os.environ, STUDY_HEARTBEAT_S=str(HEARTBEAT_S))
    cmd = [sys.executable, "-m", "study", "run", "--only", str(study), "--storage", storage, "--workers", str(workers),
           "--runs", str(runs), "--device", "cpu", "--no-report"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> None:
    """Wait for every worker; a non-zero exit or a hang fails with the workers' output."""
    end = time.time() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("workers did not finish in time:\n" + "\n".join(log.read_text()[-3000:] for log in logs))
    codes = [p.returncode for p in procs]
    assert codes == [0] * len(procs), "\n".join(log.read_text()[-3000:] for log in logs)


def load(storage: str, name: str) -> optuna.Study:
    """The study as a reader sees it (no heartbeat of its own)."""
    return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(kit_storage.sqlalchemy_url(storage)))


def cell(params_or_row) -> tuple[str, int]:
    return params_or_row["variant"], int(params_or_row["seed"])


def check_every_cell_once(study: optuna.Study, runs: Path, name: str, cells: int) -> dict[tuple[str, int], dict]:
    """One row per cell, no duplicate, none missing; each row written by the one COMPLETE trial of its cell."""
    rows = results.load_rows(results.results_path(runs, name))
    keys = collections.Counter(results.row_key(r) for r in rows)
    assert len(keys) == cells, f"{cells - len(keys)} cells have no row"
    assert max(keys.values()) == 1, f"duplicate rows: {[k for k, n in keys.items() if n > 1]}"
    assert all(r["status"] != "failed" for r in rows)
    complete = collections.Counter(cell(t.params) for t in study.get_trials(states=(TrialState.COMPLETE,)))
    assert len(complete) == cells and set(complete.values()) == {1}, f"COMPLETE trials per cell: {complete}"
    trials = {t.number: t for t in study.get_trials()}
    by_cell = {cell(r): r for r in rows}
    for row in rows:
        trial = trials[row["trial_number"]]
        assert trial.state == TrialState.COMPLETE and cell(trial.params) == cell(row)
    return by_cell


# --------------------------------------------------------------------------- storage URLs


def test_plain_postgresql_url_uses_psycopg3():
    assert kit_storage.sqlalchemy_url("postgresql://u:pw@db.lan:5432/optuna") == "postgresql+psycopg://u:pw@db.lan:5432/optuna"
    assert kit_storage.sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert kit_storage.sqlalchemy_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert kit_storage.sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_missing_driver_is_one_line_naming_the_extra(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    for url in ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        with pytest.raises(KitError) as err:
            kit_storage.open_storage(Path("."), "x", url)
        assert "pip install 'lrnet-study-kit[postgres]'" in str(err.value) and "\n" not in str(err.value)


def test_unreachable_server_is_one_line_without_password(tmp_path):
    with socket_closed_port() as port:
        with pytest.raises(KitError) as err:
            kit_storage.open_storage(tmp_path, "x", f"postgresql://kit:secret@127.0.0.1:{port}/optuna")
    text = str(err.value)
    assert "cannot open it" in text and "secret" not in text and "\n" not in text


class socket_closed_port:
    """A loopback port nothing listens on (bound, never listening, for the duration)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_heartbeat_is_overridable_by_env(monkeypatch):
    monkeypatch.setenv("STUDY_HEARTBEAT_S", "3")
    assert kit_storage.heartbeat_s() == 3
    monkeypatch.delenv("STUDY_HEARTBEAT_S")
    assert kit_storage.heartbeat_s() == kit_storage.HEARTBEAT_S


# --------------------------------------------------------------------------- many workers, one study


@pytest.mark.slow
def test_three_workers_run_every_cell_exactly_once(tmp_path, postgres_url, tiny_data):  # noqa: F811
    study_file = write_study(tmp_path, "scaleout3")
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")  # the plain URL a user types
    runs = tmp_path / "runs"
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [start_worker(study_file, url, runs, log) for log in logs]
    wait_all(procs, logs)

    study = load(url, "scaleout3")
    check_every_cell_once(study, runs, "scaleout3", cells=12)
    owners = {t.user_attrs["owner"] for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(owners) >= 2, f"one worker did all the work: {owners}"

    # the storage alone rebuilds the table on a machine that shares nothing else
    elsewhere = tmp_path / "elsewhere"
    export = ["worker", "--study", str(study_file), "--storage", url, "--runs", str(elsewhere), "--export"]
    assert cli.main(export) == 0
    assert kit_storage.export_rows(url, "scaleout3", elsewhere) == 0  # idempotent
    with pytest.raises(KitError, match="no study 'nosuch' in the storage"):
        kit_storage.export_rows(url, "nosuch", elsewhere)
    mine = {results.row_key(r): r for r in results.load_rows(results.results_path(runs, "scaleout3"))}
    theirs = {results.row_key(r): r for r in results.load_rows(results.results_path(elsewhere, "scaleout3"))}
    assert theirs.keys() == mine.keys()
    assert all(theirs[k]["test_accuracy"] == mine[k]["test_accuracy"] for k in mine)


@pytest.mark.slow
def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(tmp_path, postgres_url, tiny_data):  # noqa: F811
    # 3 epochs so a trial is caught after its first epoch was reported, with training still to do
    study_file = write_study(tmp_path, "scaleoutkill", variants=3, epochs=3, train_subset=96)
    runs = tmp_path / "runs"
    logs = [tmp_path / "victim.log", tmp_path / "run.log"]
    victim_proc = start_worker(study_file, postgres_url, runs, logs[0])
    victim, end = None, time.time() + 120
    while victim is None and time.time() < end and victim_proc.poll() is None:
        time.sleep(0.1)
        try:
            running = load(postgres_url, "scaleoutkill").get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the worker has not created the study yet
            continue
        victim = next((t for t in running if t.intermediate_values), None)  # training has begun
    assert victim is not None, f"no trial was caught mid-training:\n{logs[0].read_text()[-3000:]}"
    victim_proc.send_signal(signal.SIGKILL)
    killed_at = datetime.datetime.now()
    victim_proc.wait()

    # `study run --workers 2` (one torch thread each on 2 cores) finishes the study
    wait_all([start_run(study_file, postgres_url, runs, logs[1], workers=2)], logs[1:2])

    study = load(postgres_url, "scaleoutkill")
    by_cell = check_every_cell_once(study, runs, "scaleoutkill", cells=6)
    failed = study.trials[victim.number]
    assert failed.state == TrialState.FAIL
    # failed by the heartbeat going stale (3 beats), not at once by anything else
    assert failed.datetime_complete - killed_at >= datetime.timedelta(seconds=2 * HEARTBEAT_S - 0.5)
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, f"retries of trial {victim.number}: {[t.number for t in retries]}"
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    assert by_cell[cell(victim.params)]["trial_number"] == retry.number
