"""The Python API (docs/api.md): its functions agree with the report, and the docs' example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import study
from study.report.__main__ import main as report
from tests.fixtures.report import make_study as fixture

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def finished_run(tmp_path):
    fixture.make_contrasts_study(tmp_path / "runs")
    return tmp_path


def test_load_results_gives_every_row_and_compare_gives_the_reports_contrasts(finished_run):
    rows = study.load_results(finished_run / "runs")
    assert len(rows) == 15 and {"git_commit", "scale", "test_accuracy", "seed"} <= set(rows.columns)
    assert report(["--runs", str(finished_run / "runs"), "--out", str(finished_run / "reports")]) == 0
    shown = pd.read_csv(finished_run / "reports" / "contrasts.csv")
    ours = study.compare(rows).assign(contrast=lambda c: c["variant"] + " − " + c["reference"]).set_index("contrast")
    shown = shown.set_index("contrast")
    assert sorted(ours.index) == sorted(shown.index)
    for contrast, row in shown.iterrows():
        assert (round(ours.loc[contrast, "diff"], 4), round(ours.loc[contrast, "ci_low"], 4),
                round(ours.loc[contrast, "ci_high"], 4), ours.loc[contrast, "verdict"]) == \
            (row["delta"], row["ci_low"], row["ci_high"], row["verdict"])
    assert len(study.load_results(finished_run / "nothing")) == 0


def test_build_and_profile_a_model():
    model = study.build_model("lrnet_paper")
    assert sum(p.numel() for p in model.parameters()) == study.profile_model("lrnet_paper", timing=False)["params"]
    spec = study.profile_model(REPO / "ablations" / "specs" / "lrnet_paper.toml", timing=False)
    assert spec["flops"] == 269_963_612 and spec["flops_counter"] == "fvcore"


def test_the_docs_example_runs_as_written(finished_run):
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", block], cwd=finished_run, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "15 finished rows from 1 studies" in done.stdout and "worse" in done.stdout
    assert (finished_run / "accuracy_per_seed.png").stat().st_size > 10_000
