"""Tracking hooks: the report reads a search's Optuna study from a PostgreSQL storage (no journal), and
`study run --track tensorboard` writes each epoch's metrics (or says in one line that the extra is missing)."""

from __future__ import annotations

import csv

import pytest

from study import results, tracking
from study.cli import main
from study.report.build import build_reports
from tests.helpers import tiny_search_study, write_tiny_dataset
from tests.pg import postgres_server, postgres_url  # noqa: F401  (fixtures)

SEARCH = tiny_search_study('pruner = "none"', "n_trials = 2\nseeds = 1\nworkers = 1\nwidth = 0.25\n"
                                          "train = { epochs = 1, train_subset = 0, val_subset = 0, batch_size = 32 }")


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_ROOT", str(write_tiny_dataset(tmp_path / "data")))
    return tmp_path


def test_report_reads_the_optuna_section_of_a_postgresql_only_search(tiny_data, postgres_url):  # noqa: F811
    (tiny_data / "pgsearch.toml").write_text(SEARCH)
    runs, url = tiny_data / "runs", postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert main(["run", "--only", str(tiny_data / "pgsearch.toml"), "--runs", str(runs), "--storage", url,
                 "--no-report"]) == 0
    rows = results.load_rows(results.results_path(runs, "pgsearch"))
    assert len([r for r in rows if r["seed"] == 0]) == 2  # the search's trials (the others confirm its candidates)
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


GRID = """
[study]
axis = "links"
kind = "grid"
base = "lrnet_paper"
datasets = ["fashion-mnist"]

[[variants]]
label = "paper"
reference = true
blocks = 1

[profiles.quick]
seeds = 1
workers = 1
width = 0.25
train = { epochs = 3, patience = 10, train_subset = 0, val_subset = 0, batch_size = 32 }
"""


def test_track_tensorboard_without_the_package_is_one_line_before_any_training(tiny_data, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    monkeypatch.setenv(tracking.ENV, "")  # restored after the test
    (tiny_data / "tinytrack.toml").write_text(GRID)
    runs = tiny_data / "runs"
    assert main(["run", "--only", str(tiny_data / "tinytrack.toml"), "--runs", str(runs), "--track", "tensorboard",
                 "--no-report"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: --track tensorboard: the tensorboard package is not installed: "
                   "pip install 'lrnet-study-kit[tensorboard]'")
    assert not results.results_path(runs, "tinytrack").exists()


def test_track_tensorboard_writes_each_epochs_history_row_live(tiny_data, monkeypatch):
    pytest.importorskip("tensorboard", reason="the optional extra is not installed: pip install 'lrnet-study-kit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv(tracking.ENV, "")  # restored after the test
    (tiny_data / "tinytrack.toml").write_text(GRID)
    runs = tiny_data / "runs"
    assert main(["run", "--only", str(tiny_data / "tinytrack.toml"), "--runs", str(runs), "--track", "tensorboard",
                 "--no-report"]) == 0
    (row,) = results.load_rows(results.results_path(runs, "tinytrack"))
    (cell,) = (runs / "tinytrack" / "tensorboard").iterdir()
    events = EventAccumulator(str(cell))
    events.Reload()
    with open(runs / "tinytrack" / row["history_path"]) as fh:
        epoch_ends = [r for r in csv.DictReader(fh) if r["epoch_end"] == "1"]
    assert len(epoch_ends) == row["epochs"] == 3
    for name in ("val_acc", "val_loss", "train_loss", "lr"):
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([float(r[name]) for r in epoch_ends], rel=1e-6)


def test_optuna_dashboard_opens_the_runs_journal_unchanged(tiny_data):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (docs/tracking.md: pip install optuna-dashboard)")
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    (tiny_data / "tinytrack.toml").write_text(GRID)
    runs = tiny_data / "runs"
    assert main(["run", "--only", str(tiny_data / "tinytrack.toml"), "--runs", str(runs), "--no-report"]) == 0
    app = wsgi(str(runs / "tinytrack" / "optuna.journal"))  # what `optuna-dashboard runs/<study>/optuna.journal` serves
    environ = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    assert status[0].startswith("200")
    (study,) = json.loads(body)["study_summaries"]
    assert study["study_name"] == "tinytrack"
