"""The HTML report: numbers against pandas/scipy, escaping, partial and empty studies, headless Chromium."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study.report import tables
from study.report.__main__ import main
from study.results import load_table

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("report_fixture", ROOT / "tests/fixtures/report/make_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _load_fixture_module()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two studies rendered once through the CLI: a full one and a tiny multi-objective one."""
    base = tmp_path_factory.mktemp("report")
    runs, out = base / "runs", base / "reports"
    fixture.make_study(runs, "fixture")
    tiny = fixture.make_study(runs, "tiny-mo", seeds=1, search_trials=0, journal_trials=0)
    fixture.write_journal(tiny / "optuna.journal", "tiny-mo", trials=1, multi_objective=True)
    assert main(["--runs", str(runs), "--out", str(out)]) == 0
    return runs, out


def _page(out: Path, study: str = "fixture") -> str:
    return (out / study / "index.html").read_text(encoding="utf-8")


def _paper_rows(runs: Path) -> pd.DataFrame:
    table = load_table(runs / "fixture" / "results.jsonl")
    return table[(table["axis"] == "paper") & (table["status"] == "ok") & (table["degradation"] == "none")]


def test_table_one_matches_pandas_and_scipy(built):
    runs, out = built
    csv = pd.read_csv(out / "fixture" / "table_i.csv")
    html = _page(out)
    expected = _paper_rows(runs).groupby(["model", "dataset"])["test_accuracy"]
    assert len(csv) == expected.ngroups == 9
    for (model, dataset), values in expected:
        x = values.to_numpy(dtype=float) * 100
        mean = x.mean()
        low, high = sps.t.interval(0.95, len(x) - 1, loc=mean, scale=sps.sem(x))
        row = csv[(csv["model"] == model) & (csv["dataset"] == dataset)].iloc[0]
        assert row["n"] == len(x)
        assert row["mean"] == pytest.approx(mean)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        paper = tables.PAPER_TABLE_I[{"lrnet_paper": "LR-Net", "vgg16_scratch": "VGG-16",
                                      "inception_v3_scratch": "InceptionV3"}[model]][dataset]
        assert row["paper"] == paper
        assert row["diff_vs_paper"] == pytest.approx(mean - paper)
        assert bool(row["paper_in_ci"]) == (low <= paper <= high)
        assert f">{mean:.2f}<" in html
        assert f"[{low:.2f}, {high:.2f}]" in html
        assert f"{mean - paper:+.2f}" in html


def test_table_two_medians_match_pandas(built):
    runs, out = built
    csv = pd.read_csv(out / "fixture" / "table_ii.csv").set_index("model")
    html = _page(out)
    medians = _paper_rows(runs).groupby("model")[list(tables.COST_COLUMNS)].median()
    assert set(csv.index) == set(medians.index)
    for model, row in medians.iterrows():
        for column in tables.COST_COLUMNS:
            assert csv.loc[model, column] == pytest.approx(row[column])
        assert f">{row['params']:,.0f}<" in html
        assert f">{row['flops'] / 1e6:,.2f}<" in html
        assert f">{row['train_img_per_s']:,.0f}<" in html
        assert f">{row['infer_img_per_s']:,.0f}<" in html
    assert "one multiply-add counts as one FLOP" in html


def test_lrnet_vs_baselines_is_paired_and_holm_adjusted(built):
    runs, out = built
    csv = pd.read_csv(out / "fixture" / "lrnet_vs_baselines.csv")
    rows = _paper_rows(runs)
    for dataset, group in csv.groupby("dataset"):
        raw = []
        for baseline in group["baseline"]:
            lr = rows[(rows["model"] == "lrnet_paper") & (rows["dataset"] == dataset)].set_index("seed")
            base = rows[(rows["model"] == baseline) & (rows["dataset"] == dataset)].set_index("seed")
            diff = (lr["test_accuracy"] - base["test_accuracy"]).dropna() * 100
            result = csv[(csv["dataset"] == dataset) & (csv["baseline"] == baseline)].iloc[0]
            assert result["diff"] == pytest.approx(diff.mean())
            assert bool(result["paired"])
            raw.append(sps.ttest_rel(lr["test_accuracy"].sort_index(), base["test_accuracy"].sort_index()).pvalue)
        # Holm over the dataset's baselines: the smallest p times m, then monotone.
        order = np.argsort(raw)
        holm = np.maximum.accumulate([min(1.0, p * (len(raw) - i)) for i, p in enumerate(np.sort(raw))])
        assert group["p_adjusted"].to_numpy()[order] == pytest.approx(holm)


def test_spec_strings_are_escaped(built):
    _, out = built
    html = _page(out)
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in (out / "index.html").read_text(encoding="utf-8")
    # Figure text is drawn as paths; matplotlib keeps the label only in an XML-escaped comment.
    for svg in (out / "fixture").glob("*.svg"):
        assert b"<script" not in svg.read_bytes(), svg.name


def test_page_is_self_contained_and_links_resolve(built):
    _, out = built
    html = _page(out)
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    links = [h for h in re.findall(r'href="([^"#]+)"', html) if not h.startswith("..")]
    assert {Path(h).suffix for h in links} == {".csv", ".svg"}
    for link in links:
        assert (out / "fixture" / link).is_file(), link
    assert len([h for h in links if h.endswith(".svg")]) == len(sources)  # every figure saved beside the page


def test_every_section_is_present(built):
    _, out = built
    html = _page(out)
    for title in ("Run", "Table I", "Table II", "Axis: kernels", "Training curves", "Accuracy vs FLOPs",
                  "Optuna search", "Robustness to degradation", "Claims check"):
        assert title in html
    for name in ("ablation_kernels", "pareto", "robustness", "curves_mnist", "optuna_history",
                 "optuna_importances", "optuna_parallel"):
        assert (out / "fixture" / f"{name}.svg").is_file(), name
    assert "not detectable" in html  # quick profile: the typical MDE sentence
    assert "1 history files missing" in html


def test_claims_verdicts(built):
    _, out = built
    html = _page(out)
    assert "(b) LR-Net has fewer parameters than the baselines" in html
    assert html.count(">supported<") >= 2  # fixture: fewer parameters and faster
    tiny = _page(out, "tiny-mo")
    assert "not testable: no ok baseline rows" not in tiny  # tiny-mo has baselines...
    assert "not testable: fewer than 2 seeds per model" in tiny  # ...but one seed each


def test_robustness_levels_ordered_from_clean(built):
    _, out = built
    robust = pd.read_csv(out / "fixture" / "robustness.csv")
    lrnet = robust[robust["model"] == "lrnet_paper"]
    assert list(lrnet["degradation"]) == ["none", "blur:1.0", "noise:0.2"]


def test_partial_study_lists_missing_cells(built):
    runs, out = built
    html = _page(out)
    table = load_table(runs / "fixture" / "results.jsonl")
    ok = int((table["status"] == "ok").sum())
    assert f"Partial results: {ok} of {len(table) + 5} planned cells" in html
    assert "kernels · {3} · fashion-mnist · none · val-split fold 0 · seed 3 → failed" in html
    assert "search · trial 4 · mnist · none · val-split fold 0 · seed 0 → pruned" in html
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f"{ok} / {len(table)}" in index and 'href="fixture/index.html"' in index


def test_multi_objective_journal_and_too_few_trials_are_notes(built):
    _, out = built
    tiny = _page(out, "tiny-mo")
    assert "Parameter importances need at least 2 completed trials" in tiny
    assert "Pareto-optimal trials for objectives maximize, minimize" in tiny


@pytest.mark.parametrize("study", [None, "nope"])
def test_no_results_is_one_line_and_exit_1(tmp_path, study):
    (tmp_path / "runs").mkdir()
    command = [sys.executable, "-m", "study.report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "r")]
    result = subprocess.run(command + (["--study", study] if study else []), capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    where = tmp_path / "runs" / study if study else tmp_path / "runs"
    assert result.returncode == 1
    assert result.stderr == f"error: no results in {where} — run nox -s ablations first\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_pareto_front_maximises_accuracy_and_minimises_flops():
    accuracy = pd.Series([90.0, 95.0, 94.0, 97.0, 97.0], index=list("abcde"))
    flops = pd.Series([10.0, 20.0, 30.0, 40.0, 50.0], index=list("abcde"))
    assert tables.pareto_front(accuracy, flops) == ["a", "b", "d"]


def _chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={user_data}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed (apt-get install -y chromium)")
def test_headless_chromium_loads_page_without_errors(built, tmp_path):
    _, out = built
    page = out / "fixture" / "index.html"
    shot = tmp_path / "report.png"
    loaded = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", page.as_uri(),
                       user_data=tmp_path / "profile")
    # The page has no script of its own, so any console line (CSP violation, blocked load) is a defect.
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert shot.is_file() and shot.stat().st_size > 10_000
    # Image load status needs a script, which the page's CSP forbids: probe a copy that allows one.
    probe = page.with_name("probe.html")
    html = page.read_text(encoding="utf-8").replace("style-src 'unsafe-inline'",
                                                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
    html = html.replace("</body>", "<script>addEventListener('load', () => { const i = [...document.images]; "
                        "document.body.dataset.images = i.length + ':' + i.filter(x => !(x.complete && "
                        "x.naturalWidth > 0)).length; });</script></body>")
    probe.write_text(html, encoding="utf-8")
    try:
        dom = _chromium("--dump-dom", probe.as_uri(), user_data=tmp_path / "profile").stdout
    finally:
        probe.unlink()
    status = re.search(r'data-images="(\d+):(\d+)"', dom)
    assert status, "probe script did not run"
    assert int(status.group(1)) == page.read_text(encoding="utf-8").count("<img ") > 0
    assert status.group(2) == "0", "some images did not load"


def test_rebuild_replaces_stale_outputs(built, tmp_path):
    runs, _ = built
    out = tmp_path / "reports"
    (out / "fixture").mkdir(parents=True)
    (out / "fixture" / "ablation_gone.svg").write_text("<svg/>")
    shutil.copytree(runs / "fixture", tmp_path / "runs" / "fixture")
    journal = tmp_path / "runs" / "fixture" / "optuna.journal"
    journal.unlink()  # keep this rebuild fast; the journal is covered above
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--study", "fixture"]) == 0
    assert not (out / "fixture" / "ablation_gone.svg").exists()
    assert "No optuna.journal" in _page(out)
