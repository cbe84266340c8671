"""Trials per hour of one PostgreSQL-backed grid study run by 1 and by 2 local workers (issue #7).

`python -m study run --only STUDY --storage URL --workers N`: with one worker the study runs in the
command's own process on every core; with two, each worker process gets half the cores (one torch
thread each on a 2-core machine). Twelve cells of a tiny network on real Fashion-MNIST, each on a
fresh database and run directory. Recorded in extra_info:

- trials_per_hour: 12 trials over the command's wall time (process start-up and imports included,
  as a user sees it);
- trials_per_hour_in_storage: 12 trials over first trial start to last trial end in the storage;
- speedup_vs_1_worker (on the 2-worker test, when the 1-worker test ran first in the same session).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study import storage
from tests.pg import postgres_server  # noqa: F401  (fixture)
from tests.test_scaleout import write_study

ROOT = Path(__file__).resolve().parents[2]
CELLS = 12
MEASURED: dict[int, float] = {}


@pytest.mark.parametrize("workers", [1, 2])
def test_trials_per_hour(benchmark, workers, postgres_server, fashion_root, tmp_path):  # noqa: F811
    study_file = write_study(tmp_path, f"bench{workers}", variants=6, epochs=1, train_subset=256)
    runs = []

    def setup():
        url = postgres_server.create_database(f"bench{workers}_{len(runs)}_{os.getpid()}")
        runs.append((url, tmp_path / f"runs{len(runs)}"))
        return runs[-1], {}

    def run_study(url: str, run_dir: Path) -> None:
        cmd = [sys.executable, "-m", "study", "run", "--only", str(study_file), "--storage", url,
               "--workers", str(workers), "--runs", str(run_dir), "--device", "cpu", "--no-report"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    began = time.perf_counter()
    benchmark.pedantic(run_study, setup=setup, rounds=1, iterations=1)
    wall = time.perf_counter() - began

    url, _ = runs[-1]
    study = optuna.load_study(study_name=f"bench{workers}", storage=optuna.storages.RDBStorage(storage.sqlalchemy_url(url)))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == CELLS
    span = (max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)).total_seconds()
    MEASURED[workers] = CELLS * 3600 / wall
    benchmark.extra_info.update(workers=workers, cores=len(os.sched_getaffinity(0)), trials=CELLS,
                                wall_s=round(wall, 1), trials_per_hour=round(MEASURED[workers]),
                                trials_per_hour_in_storage=round(CELLS * 3600 / span))
    if workers > 1 and 1 in MEASURED:
        benchmark.extra_info["speedup_vs_1_worker"] = round(MEASURED[workers] / MEASURED[1], 2)
