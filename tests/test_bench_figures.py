"""`nox -s bench`'s figures: extra_info numbers of the last saved run, compared with the previous one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

import figures  # noqa: E402  (tests/bench/figures.py, a script beside the benchmarks)


def _run(trials_per_hour: float, median: float, extra: dict | None = None) -> dict:
    info = {"trials_per_hour": trials_per_hour, "trial_wall_s": {"paper": 60.0}, "device": "cpu", "ok": True, **(extra or {})}
    return {"benchmarks": [{"name": "test_a", "fullname": "tests/bench/test_x.py::test_a", "stats": {"median": median},
                            "extra_info": info}]}


def test_figures_flatten_the_numbers_of_extra_info():
    got = figures.figures(_run(45.0, 2.0))
    assert got == {"tests/bench/test_x.py::test_a": {"trials_per_hour": 45.0, "trial_wall_s.paper": 60.0, "median_s": 2.0}}


def test_the_last_saved_run_is_compared_with_the_previous(tmp_path):
    folder = tmp_path / "Linux-CPython-3.11-64bit"
    folder.mkdir()
    (folder / "0001_abc_20261130_100000.json").write_text(json.dumps(_run(40.0, 2.0)))
    assert "(no previous saved run to compare with)" in figures.report(tmp_path)
    (folder / "0002_abc_20261130_110000.json").write_text(json.dumps(_run(50.0, 2.0, {"speedup": 1.5})))
    text = figures.report(tmp_path)
    assert text.startswith("benchmark figures of 0002_abc_20261130_110000.json against 0001_abc_20261130_100000.json")
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert lines["trials_per_hour"].split()[1] == "50" and "(was 40, +25.0 %)" in lines["trials_per_hour"]
    assert "(was 2, +0.0 %)" in lines["median_s"] and lines["speedup"].endswith("(new)")
    assert figures.report(tmp_path / "empty").startswith("no saved benchmark runs")
