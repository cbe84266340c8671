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

from study import stats
from study.report import display, summary, tables
from study.report.__main__ import main
from study.report.build import _verdict_cell
from study.report.claims import NOT_SUPPORTED, SUPPORTED, check_claims
from study.results import load_table
from study.studies import list_studies

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
        half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) * (1 + 1 / len(x)) ** 0.5  # one run's 95% PI
        assert (row["pi_low"], row["pi_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
        if len(x) >= 3:
            assert bool(row["paper_in_range"]) == (mean - half <= paper <= mean + half)
        else:
            assert pd.isna(row["paper_in_range"]) and pd.isna(row["pi_low"])
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



# --- the summary of a whole run: reports/index.html and reports/contrasts.csv ---------------------

OLD_STUDY = "b-old-kernels"  # sorts before "contrasts": the summary must still put contrasts first
CSV_HEADER = "study,contrast,n,delta,ci_low,ci_high,mde,verdict"
NO_LINKS = "no links (FLOP-matched)"
SINGLE = "single kernel {3} (FLOP-matched)"


@pytest.fixture(scope="module")
def run_summary(tmp_path_factory):
    """The default run (the contrasts study) beside an old-style grid study, rendered through the CLI."""
    base = tmp_path_factory.mktemp("summary")
    runs, out = base / "runs", base / "reports"
    fixture.make_contrasts_study(runs)
    fixture.make_old_grid_study(runs, OLD_STUDY)
    assert main(["--runs", str(runs), "--out", str(out)]) == 0
    return runs, out


def _paired_points(runs: Path, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed accuracy (points) of a contrast variant and of the paper block, seed-aligned."""
    table = load_table(runs / "contrasts" / "results.jsonl").set_index("seed")
    ref = table[table["variant"] == fixture.CONTRAST_REFERENCE]["test_accuracy"].sort_index()
    var = table[table["variant"] == variant]["test_accuracy"].sort_index()
    assert list(ref.index) == list(var.index) == list(fixture.CONTRAST_SEEDS)
    return var.to_numpy(float) * 100, ref.to_numpy(float) * 100


def _section(html: str, study: str) -> str:
    """The index's section of one study (from its heading to the next h2)."""
    start = html.index(f'<h2 id="study-{study}">')
    return html[start:html.index("<h2", start + 1)]


def _rows(section: str, table_class: str) -> list[list[str]]:
    body = section[section.index(f'<table class="{table_class}">'):]
    body = body[:body.index("</table>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]]


def test_contrasts_csv_has_one_row_per_contrast_contrasts_study_first(run_summary):
    runs, out = run_summary
    text = (out / "contrasts.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == CSV_HEADER
    csv = pd.read_csv(out / "contrasts.csv")
    assert list(csv["study"]) == ["contrasts", "contrasts", OLD_STUDY]
    assert list(csv["contrast"][:2]) == [f"{SINGLE} − paper block", f"{NO_LINKS} − paper block"]
    assert list(csv["verdict"]) == [stats.equivalence_verdict(3.0), "worse", "worse"]
    assert list(csv["n"]) == [5, 5, 3]
    for row, variant in zip(csv.itertuples(), (SINGLE, NO_LINKS), strict=False):
        var, ref = _paired_points(runs, variant)
        assert row.delta == pytest.approx(var.mean() - ref.mean(), abs=1e-4)
        ci = sps.ttest_rel(var, ref).confidence_interval(0.95)
        assert (row.ci_low, row.ci_high) == (pytest.approx(ci.low, abs=1e-4), pytest.approx(ci.high, abs=1e-4))
        assert 0 < row.mde < 3
    # The fixture's design, independently of the rows: −4.1 points every seed, and +0.08 on average.
    assert csv["delta"][1] == pytest.approx(-4.1, abs=1e-4)
    assert csv["delta"][0] == pytest.approx(100 * np.mean(fixture.CONTRAST_VARIANTS[SINGLE][0]), abs=1e-4)
    old = load_table(runs / OLD_STUDY / "results.jsonl")
    means = old.groupby("variant")["test_accuracy"].mean() * 100
    assert csv["contrast"][2] == "{3} − {3,5,7}"
    assert csv["delta"][2] == pytest.approx(means["{3}"] - means["{3,5,7}"], abs=1e-4)


def test_index_leads_with_the_contrasts_table_and_answers(run_summary):
    runs, out = run_summary
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.index('id="study-contrasts"') < html.index(f'id="study-{OLD_STUDY}"')
    section = _section(html, "contrasts")
    assert "Pre-registered contrasts: multi-kernel vs single kernel, links vs no links (FLOP-matched)" in section
    assert f"<dd>{fixture.CONTRAST_PROFILE}</dd>" in section and "PROXY" in fixture.CONTRAST_PROFILE
    assert '<span class="badge proxy">PROXY</span>' in section
    assert 'href="contrasts/index.html"' in section
    header = re.findall(r"<th>(.*?)</th>", section[section.index('<table class="contrasts">'):].split("</thead>")[0])
    assert header == ["contrast", "n (pairs)", "Δ (points)", "95 % CI", "MDE", "verdict"]
    rows = _rows(section, "contrasts")
    assert [r[0] for r in rows] == [f"{SINGLE} − paper block", f"{NO_LINKS} − paper block"]
    for row, variant in zip(rows, (SINGLE, NO_LINKS), strict=True):
        var, ref = _paired_points(runs, variant)
        ci = sps.ttest_rel(var, ref).confidence_interval(0.95)
        assert row[1:4] == ["5", f"{var.mean() - ref.mean():+.2f}", f"[{ci.low:+.2f}, {ci.high:+.2f}]"]
    assert '<td class="text equiv">equivalent within ±3 pts</td>' in section
    assert '<td class="text bad">worse</td>' in section
    var, ref = _paired_points(runs, NO_LINKS)
    ci = sps.ttest_rel(var, ref).confidence_interval(0.95)
    def signed(x: float) -> str:  # prose uses the minus sign, not a hyphen
        return f"{x:+.1f}".replace("-", summary.MINUS)

    assert (f"No links (FLOP-matched) is worse than the paper block by {ref.mean() - var.mean():.1f} points "
            f"[95 % CI {signed(ci.low)}, {signed(ci.high)}]") in section
    assert "Single kernel {3} (FLOP-matched) is equivalent to the paper block within ±3 points" in section
    assert "0 better, 1 worse, 1 equivalent (±3 pts), 0 inconclusive (of 2 comparisons)" in section


def test_index_shows_matched_and_raw_cost(run_summary):
    _, out = run_summary
    rows = {r[0]: r for r in _rows(_section((out / "index.html").read_text(encoding="utf-8"), "contrasts"), "costs")}
    assert list(rows) == [fixture.CONTRAST_REFERENCE, SINGLE, NO_LINKS]
    for label, (_, flops, params, raw_flops, raw_params, width) in fixture.CONTRAST_VARIANTS.items():
        assert rows[label][2:] == ["FLOPs", f"×{width:g}", display.mega(flops), display.count(params),
                                   display.mega(raw_flops), display.count(raw_params)]
    assert rows[SINGLE][4:] == ["24.10", "310,000", "9.80", "128,000"]
    assert rows[fixture.CONTRAST_REFERENCE][2] == "–"


def test_index_lists_studies_not_run_with_their_command(run_summary):
    _, out = run_summary
    html = (out / "index.html").read_text(encoding="utf-8")
    not_run = html[html.index('<h2 id="not-run">'):]
    missing = [name for name in list_studies() if name not in ("contrasts", OLD_STUDY)]
    assert missing, "ablations/ should hold studies besides contrasts"
    for name in missing:
        assert f"<strong>{name}</strong>" in not_run
        assert f"<code>nox -s ablations -- --only {name}</code>" in not_run
    assert "--only contrasts" not in html


def test_index_tolerates_runs_without_the_newer_fields(run_summary):
    _, out = run_summary
    section = _section((out / "index.html").read_text(encoding="utf-8"), OLD_STUDY)
    assert "no description recorded" in section and "quick profile" in section
    assert "PROXY" not in section
    assert _rows(section, "contrasts")[0][0] == "{3} − {3,5,7}"
    assert 'href="b-old-kernels/index.html"' in section


def test_study_page_uses_the_new_verdicts(run_summary):
    _, out = run_summary
    page = (out / "contrasts" / "index.html").read_text(encoding="utf-8")
    assert "contrasts: 0 better, 1 worse, 1 equivalent (±3 pts), 0 inconclusive (of 2 comparisons)" in page
    assert 'equiv">equivalent within ±3 pts</td>' in page and 'bad">worse</td>' in page
    assert "no detectable" not in page
    assert "PROXY · profile quick" in page  # subtitle
    assert "9.80" in page and "17.20" in page  # raw MFLOPs in the page's cost table


def test_built_index_summarises_the_fixture_study(built):
    runs, out = built
    csv = pd.read_csv(out / "contrasts.csv")
    assert list(dict.fromkeys(csv["study"])) == ["fixture", "tiny-mo"]  # no study.json kind: grid, by its axes
    expected = stats.compare_axis(load_table(runs / "fixture" / "results.jsonl"), "kernels")
    assert len(expected) == 6  # three variants against {3,5,7} on two datasets
    rows = csv[csv["study"] == "fixture"].set_index("contrast")
    for r in expected.itertuples():
        row = rows.loc[f"{r.variant} − {r.reference} · {r.dataset}"]
        assert row["verdict"] == r.verdict
        assert row["delta"] == pytest.approx(r.diff, abs=1e-4)
        assert row["mde"] == pytest.approx(r.mde, abs=1e-4)
    assert rows.index[0] == "{3,5} − {3,5,7} · mnist"  # datasets in the paper's order
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; − {3,5,7} · mnist" in index


@pytest.mark.parametrize(("verdict", "kind", "css"), [
    ("better", "better", "good"), ("worse", "worse", "bad"),
    (stats.equivalence_verdict(2.5), "equivalent", "equiv"), (stats.INCONCLUSIVE, "inconclusive", "muted"),
    (stats.INSUFFICIENT, "insufficient", "muted"),
])
def test_verdict_kinds_and_styles(verdict, kind, css):
    assert tables.verdict_kind(verdict) == kind
    assert display.verdict_class(verdict) == css
    assert _verdict_cell({"verdict": verdict}) == (verdict, css)


def _claim(*verdicts: str):
    comparisons = pd.DataFrame([{
        "dataset": "mnist", "baseline": ("vgg16_scratch", "inception_v3_paper", "resnet50_paper")[i], "mean_lrnet": 99.0, "mean_baseline": 98.0, "diff": 1.0,
        "ci_low": -1.0, "ci_high": 3.0, "p_adjusted": 0.2, "mde": 3.4, "margin": 3.0, "verdict": v,
    } for i, v in enumerate(verdicts)])
    costs = pd.DataFrame(columns=["model", *tables.COST_COLUMNS])
    return check_claims(comparisons, costs, {"lrnet_paper", "vgg16_scratch"})[0]


def test_accuracy_claim_the_data_cannot_decide_is_inconclusive():
    undecided = _claim("better", stats.INCONCLUSIVE)
    assert undecided.kind == "inconclusive" and NOT_SUPPORTED not in undecided.verdict
    assert "inconclusive in 1 of 2" in undecided.headline
    assert any("inconclusive (MDE 3.40 pts)" in e for e in undecided.evidence)
    assert _claim("better", "better").verdict == SUPPORTED
    assert _claim("better", "worse", stats.INCONCLUSIVE).verdict == NOT_SUPPORTED
    equivalent = _claim("better", stats.equivalence_verdict(3.0))
    assert equivalent.verdict == NOT_SUPPORTED and "equivalent (±3 pts) in 1" in equivalent.headline


def test_inconclusive_answer_names_the_mde():
    record = {"variant": "no links", "reference": "paper block", "verdict": stats.INCONCLUSIVE, "diff": 1.24,
              "ci_low": -2.0, "ci_high": 4.5, "mde": 3.44, "margin": 3.0, "n_variant": 5, "n_reference": 5}
    text = summary.answer(record)
    assert text.startswith("Inconclusive: the data cannot tell no links from the paper block")
    assert "MDE 3.4 pts" in text and f"{summary.MINUS}2.0" in text


def test_k_fold_rows_go_to_a_low_data_table_never_beside_the_paper():
    rows = []
    for protocol in ("val-split", "kfold-test:5"):
        for seed, acc in enumerate((0.95, 0.96, 0.94)):
            rows.append({"study": "s", "axis": "paper", "variant": "lrnet_paper", "model": "lrnet_paper", "spec_hash": "h",
                         "dataset": "mnist", "degradation": "none", "protocol": protocol, "fold": seed % 5, "seed": seed,
                         "profile": "quick", "status": "ok", "test_accuracy": acc + (0.04 if protocol == "val-split" else 0)})
    one = tables.table_one(pd.DataFrame(rows)).set_index("protocol")
    assert not one.loc["val-split", "low_data"] and one.loc["val-split", "paper"] == tables.PAPER_TABLE_I["LR-Net"]["mnist"]
    assert one.loc["kfold-test:5", "low_data"] and pd.isna(one.loc["kfold-test:5", "paper"])
    assert pd.isna(one.loc["kfold-test:5", "paper_in_range"])
    # the paper's 99.47 against one run's 95% prediction interval of 99, 100, 98 (n = 3)
    x = np.array([99.0, 100.0, 98.0])
    half = sps.t.ppf(0.975, 2) * x.std(ddof=1) * np.sqrt(1 + 1 / 3)
    assert one.loc["val-split", "pi_high"] == pytest.approx(99.0 + half)
    assert bool(one.loc["val-split", "paper_in_range"])


def test_a_significant_difference_inside_the_margin_says_it_is_small():
    record = {"variant": "single kernel", "reference": "paper block", "verdict": "better", "diff": 0.19,
              "ci_low": 0.07, "ci_high": 0.31, "margin": 3.0, "mde": 0.2, "n_variant": 5, "n_reference": 5}
    text = summary.answer(record)
    assert text.startswith("Single kernel is better than the paper block by 0.2 points")
    assert "a real but small difference, its whole CI inside the ±3-point equivalence margin" in text
    assert "small" not in summary.answer({**record, "diff": 4.0, "ci_low": 2.0, "ci_high": 6.0})
