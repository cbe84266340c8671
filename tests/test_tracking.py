"""Tracking hooks: the report reads a search's Optuna study from a PostgreSQL storage (no journal)."""

from __future__ import annotations

import pytest

from study import results
from study.cli import main
from study.report.build import build_reports
from tests.helpers import write_tiny_dataset
from tests.pg import postgres_server, postgres_url  # noqa: F401  (fixtures)

SEARCH = """
[study]
axis = "search"
kind = "search"
base = "lrnet_paper"
datasets = ["fashion-mnist"]

[search]
kernels = [[3], [3, 5]]
links = ["paper", "none"]
blocks = [1, 1]
width_multiplier = [0.1, 0.3]
pruner = "none"

[profiles.quick]
n_trials = 2
seeds = 1
workers = 1
width = 0.25
train = { epochs = 1, train_subset = 0, val_subset = 0, batch_size = 32 }
"""


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    return tmp_path


def test_report_reads_the_optuna_section_of_a_postgresql_only_search(tiny_data, postgres_url):  # noqa: F811
    (tiny_data / "pgsearch.toml").write_text(SEARCH)
    runs, url = tiny_data / "runs", postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert main(["run", "--only", str(tiny_data / "pgsearch.toml"), "--runs", str(runs), "--storage", url,
                 "--no-report"]) == 0
    assert len(results.load_rows(results.results_path(runs, "pgsearch"))) == 2
    assert not (runs / "pgsearch" / "optuna.journal").exists()  # the trials live only in the database
    build_reports(runs, tiny_data / "without", "pgsearch")
    assert "Optuna study pgsearch" not in (tiny_data / "without" / "pgsearch" / "index.html").read_text()
    assert main(["run", "--only", str(tiny_data / "pgsearch.toml"), "--runs", str(runs), "--storage", url,
                 "--out", str(tiny_data / "reports")]) == 0  # finished: trains nothing, writes the report
    for out in ("reports", "cli"):
        if out == "cli":
            from study.report.__main__ import main as report_main

            assert report_main(["--runs", str(runs), "--out", str(tiny_data / out), "--storage", url]) == 0
        page = (tiny_data / out / "pgsearch" / "index.html").read_text()
        assert "Optuna study pgsearch: 2 trials (complete 2)" in page
        assert (tiny_data / out / "pgsearch" / "optuna_trials.csv").exists()
