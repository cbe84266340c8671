"""Benchmark: the report of a 1,000-trial study (results table and Optuna journal) renders in ≤ 30 s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from study.report.build import build_reports
from study.results import load_table

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 30.0
TRIALS = 1000


def _make_study():
    spec = importlib.util.spec_from_file_location("report_fixture", ROOT / "tests/fixtures/report/make_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_study


@pytest.fixture(scope="module")
def big_study(tmp_path_factory) -> Path:
    """A study of exactly 1,000 result rows (mostly search trials) with a 1,000-trial Optuna journal."""
    runs = tmp_path_factory.mktemp("bench") / "runs"
    # 82 rows come from the paper, kernels and robustness axes of the fixture at 5 seeds.
    # kind "search": the report draws Optuna plots only for a search study, and they are what this measures
    _make_study()(runs, "big", seeds=5, search_trials=TRIALS - 82, journal_trials=TRIALS, kind="search")
    assert len(load_table(runs / "big" / "results.jsonl")) == TRIALS
    return runs


def test_report_of_1000_trials(benchmark, big_study, tmp_path):
    pages = benchmark.pedantic(build_reports, args=(big_study, tmp_path / "reports"), rounds=1, iterations=1)
    assert pages[0].is_file()
    assert benchmark.stats.stats.max <= BUDGET_S
