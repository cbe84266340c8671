"""The HTML report: numbers against pandas/scipy, escaping, partial and empty studies, headless Chromium."""

from __future__ import annotations

import html as htmllib
import importlib.util
import json
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
from study.report import contrasts, display, summary, tables
from study.report.__main__ import main
from study.report.claims import NOT_SUPPORTED, SUPPORTED, check_claims
from study.report.sections import verdict_cell as _verdict_cell
from study.results import load_table
from study.studies import list_studies

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
#: The studies of the finished quick run (`quick_run`) and where the Chromium test keeps its screenshots.
QUICK_STUDIES = ("contrasts", "paper", "robustness", "search")
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("report_fixture", ROOT / "tests/fixtures/report/make_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _load_fixture_module()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three studies rendered once through the CLI: a full one, a tiny one, and a multi-objective search of one trial."""
    base = tmp_path_factory.mktemp("report")
    runs, out = base / "runs", base / "reports"
    fixture.make_study(runs, "fixture")
    tiny = fixture.make_study(runs, "tiny-mo", seeds=1, search_trials=0, journal_trials=0)
    fixture.write_journal(tiny / "optuna.journal", "tiny-mo", trials=1, multi_objective=True)
    fixture.make_search_study(runs, "tiny-search", trials=1, multi_objective=True)
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
        pi = (max(mean - half, 0.0), min(mean + half, 100.0))  # cut to the accuracy scale, and marked so
        assert (row["pi_low"], row["pi_high"]) == (pytest.approx(pi[0]), pytest.approx(pi[1]))
        assert bool(row["pi_clipped"]) == (mean - half < 0 or mean + half > 100)
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


def test_baselines_vs_lrnet_is_paired_and_holm_adjusted(built):
    runs, out = built
    csv = pd.read_csv(out / "fixture" / "baselines_vs_lrnet.csv").rename(columns={"variant": "baseline"})
    rows = _paper_rows(runs)
    for dataset, group in csv.groupby("dataset"):
        raw = []
        for baseline in group["baseline"]:
            lr = rows[(rows["model"] == "lrnet_paper") & (rows["dataset"] == dataset)].set_index("seed")
            base = rows[(rows["model"] == baseline) & (rows["dataset"] == dataset)].set_index("seed")
            diff = (base["test_accuracy"] - lr["test_accuracy"]).dropna() * 100  # variant − reference
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
                  "Robustness to degradation", "Claims check"):
        assert title in html
    for name in ("ablation_kernels", "pareto", "robustness", "curves_mnist", "table_i_models"):
        assert (out / "fixture" / f"{name}.svg").is_file(), name
    # a grid study's journal holds its cells (variant, dataset, seed), not a search: no Optuna plots
    assert "Search" not in re.findall(r"<h2[^>]*>\d+ ([^<]+) <a", html) and not list((out / "fixture").glob("optuna*"))
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
    tiny = _page(out, "tiny-search")
    assert "Parameter importances and parallel coordinates need at least 2 completed trials" in tiny
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
@pytest.mark.parametrize("page_name", ["index", *QUICK_STUDIES])
def test_headless_chromium_loads_every_page_without_errors(quick_run, tmp_path, page_name):
    """The index and every study page: no console line, every image loads; a screenshot is kept in test-artifacts/."""
    _, out = quick_run
    page = out / "index.html" if page_name == "index" else out / page_name / "index.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{page_name}.png"
    shot.unlink(missing_ok=True)
    loaded = _chromium(f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", page.as_uri(),
                       user_data=tmp_path / "profile")
    # The page has no script of its own, so any console line (CSP violation, blocked load) is a defect.
    console = [line for line in loaded.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert shot.is_file() and shot.stat().st_size > 10_000
    # Image load status needs a script, which the page's CSP forbids: probe a copy that allows one.
    probe = page.with_name("probe.html")
    text = page.read_text(encoding="utf-8").replace("style-src 'unsafe-inline'",
                                                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
    text = text.replace("</body>", "<script>addEventListener('load', () => { const i = [...document.images]; "
                        "document.body.dataset.images = i.length + ':' + i.filter(x => !(x.complete && "
                        "x.naturalWidth > 0)).length; });</script></body>")
    probe.write_text(text, encoding="utf-8")
    try:
        dom = _chromium("--dump-dom", probe.as_uri(), user_data=tmp_path / "profile").stdout
    finally:
        probe.unlink()
    status = re.search(r'data-images="(\d+):(\d+)"', dom)
    assert status, "probe script did not run"
    assert int(status.group(1)) == page.read_text(encoding="utf-8").count("<img ")
    assert status.group(2) == "0", "some images did not load"


def test_rebuild_replaces_stale_outputs(built, tmp_path):
    runs, _ = built
    out = tmp_path / "reports"
    (out / "fixture").mkdir(parents=True)
    (out / "fixture" / "ablation_gone.svg").write_text("<svg/>")
    shutil.copytree(runs / "fixture", tmp_path / "runs" / "fixture")
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--study", "fixture"]) == 0
    assert not (out / "fixture" / "ablation_gone.svg").exists()
    assert (out / "fixture" / "ablation_kernels.svg").is_file()



# --- the summary of a whole run: reports/index.html and reports/contrasts.csv ---------------------

OLD_STUDY = "b-old-kernels"  # sorts before "contrasts": the summary must still put contrasts first
CSV_HEADER = ("study,contrast,kind,scale,rung,n,delta,ci_low,ci_high,mde,verdict,low_rung,high_rung,delta_low,delta_high,"
              "per_doubling,per_doubling_low,per_doubling_high")
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
    assert '<td class="text equiv">equivalent within ±3 pts at 450 steps, width ×0.25</td>' in section
    assert '<td class="text bad">worse at 450 steps, width ×0.25</td>' in section
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
    not_run = html[html.index('<h2 id="not-run">'):html.index("<footer")]
    missing = [name for name in list_studies() if name not in ("contrasts", OLD_STUDY)]
    assert missing, "ablations/ should hold studies besides contrasts"
    for name in missing:
        assert f"<strong>{name}</strong>" in not_run
        assert f"<code>nox -s ablations -- --only {name}</code>" in not_run
    assert "--only contrasts" not in not_run


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
    assert list(dict.fromkeys(csv["study"])) == ["fixture", "tiny-mo"]  # tiny-search: no contrasts  # no study.json kind: grid, by its axes
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
    """The accuracy claim where LR-Net's verdicts against the baselines are `verdicts` (stored from the baseline's
    side, variant − reference, as `contrasts.baselines_vs_lrnet` gives them)."""
    comparisons = pd.DataFrame([{
        "dataset": "mnist", "variant": ("vgg16_scratch", "inception_v3_paper", "resnet50_paper")[i], "reference": "lrnet_paper",
        "mean_reference": 99.0, "mean_variant": 98.0, "diff": -1.0, "ci_low": -3.0, "ci_high": 1.0, "p_adjusted": 0.2,
        "mde": 3.4, "margin": 3.0, "verdict": {"better": "worse", "worse": "better"}.get(v, v),
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
    assert 99.0 + half > 100 and one.loc["val-split", "pi_high"] == 100.0 and one.loc["val-split", "pi_clipped"]
    assert one.loc["val-split", "pi_low"] == pytest.approx(99.0 - half)
    assert bool(one.loc["val-split", "paper_in_range"])


def test_a_significant_difference_inside_the_margin_says_it_is_small():
    record = {"variant": "single kernel", "reference": "paper block", "verdict": "better", "diff": 0.19,
              "ci_low": 0.07, "ci_high": 0.31, "margin": 3.0, "mde": 0.2, "n_variant": 5, "n_reference": 5}
    text = summary.answer(record)
    assert text.startswith("Single kernel is better than the paper block by 0.2 points")
    assert "a real but small difference, its whole CI inside the ±3-point equivalence margin" in text
    assert "small" not in summary.answer({**record, "diff": 4.0, "ci_low": 2.0, "ci_high": 6.0})


# --- the report of a finished quick run: only what each study measured, honest numbers ------------------------


#: Blocks that carry data: a table, a figure, a list of facts, a claim with its verdict.
_DATA_BLOCK = re.compile(r'<table|<img |<dl class="facts"|<div class="claim"')


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every kind of study a finished quick run leaves (fixtures in the runner's formats), rendered through the CLI."""
    base = tmp_path_factory.mktemp("quick")
    runs, out = base / "runs", base / "reports"
    fixture.make_quick_run(runs)
    assert main(["--runs", str(runs), "--out", str(out)]) == 0
    return runs, out


def _pages(out: Path) -> dict[str, str]:
    pages = {"index": (out / "index.html").read_text(encoding="utf-8")}
    pages.update({name: _page(out, name) for name in QUICK_STUDIES})
    return pages


def _sections(html: str) -> dict[str, str]:
    """Each numbered section of a study page (its h2 up to the next h2 or the footer), by title."""
    parts = re.split(r'(<h2 id="s\d+">\d+ [^<]+)', html[:html.index("<footer")])
    return {re.sub(r'<h2 id="s\d+">\d+ ', "", head).strip(): body for head, body in zip(parts[1::2], parts[2::2], strict=True)}


def _html_tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """(headers, rows of cell texts) of every table of a page."""
    found = []
    for table in re.findall(r"<table[^>]*>(.*?)</table>", page, re.S):
        headers = [htmllib.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
        rows = [[htmllib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
                for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]
        found.append((headers, [r for r in rows if r]))
    return found


def test_quick_run_pages_have_no_section_without_data(quick_run):
    _, out = quick_run
    for name in QUICK_STUDIES:
        sections = _sections(_page(out, name))
        assert sections, name
        for title, body in sections.items():
            assert _DATA_BLOCK.search(body), f"{name}: section {title!r} shows no data"
        for placeholder in ("No degraded-data rows", "not testable", "No optuna.journal", "No training history",
                            "No ok rows yet", "no ablation axis"):
            assert placeholder not in _page(out, name), (name, placeholder)
    assert set(_sections(_page(out, "contrasts"))) == {"Run", "Ablations", "Training curves", "Accuracy vs FLOPs"}
    assert set(_sections(_page(out, "robustness"))) == {"Run", "Training curves", "Robustness to degradation"}
    assert set(_sections(_page(out, "search"))) == {"Run", "Accuracy vs FLOPs", "Search"}
    # the quick run's Table I is a proxy: no claim is checked on it
    assert {"Table I — accuracy vs the paper", "Table II — cost"} <= set(_sections(_page(out, "paper")))
    assert "Claims check" not in _sections(_page(out, "paper"))


def test_quick_run_accuracy_intervals_stay_in_0_100_and_clipping_is_marked(quick_run):
    runs, out = quick_run
    for name in QUICK_STUDIES:
        for csv in (out / name).glob("*.csv"):
            frame = pd.read_csv(csv)
            for column in ("ci_low", "ci_high", "pi_low", "pi_high"):
                if column in frame and csv.stem in ("table_i", "robustness"):
                    assert frame[column].dropna().between(0, 100).all(), (csv, column)
    for page, html in _pages(out).items():
        for headers, rows in _html_tables(html):
            if "accuracy %" not in headers:
                continue
            for column in ("95% CI", "one run, 95% PI"):
                if column not in headers:
                    continue
                for row in rows:
                    bounds = re.fullmatch(r"\[(-?[\d.]+), (-?[\d.]+)\]\*?", row[headers.index(column)])
                    if bounds:
                        assert 0 <= float(bounds.group(1)) <= float(bounds.group(2)) <= 100, (page, row)
    # LR-Net's two far-apart seeds (30.0 and 94.5): the raw t-interval spans [-377, +502], shown cut and marked
    x = np.array([30.0, 94.5])
    low, high = sps.t.interval(0.95, 1, loc=x.mean(), scale=sps.sem(x))
    assert low < 0 and high > 100
    one = pd.read_csv(out / "paper" / "table_i.csv").set_index("model")
    assert (one.loc["lrnet_paper", "ci_low"], one.loc["lrnet_paper", "ci_high"]) == (0.0, 100.0)
    assert one.loc["lrnet_paper", "ci_clipped"]
    for html in (_page(out, "paper"), (out / "index.html").read_text(encoding="utf-8")):
        assert "[0.00, 100.00]*" in html and "cut to it" in html
    headers = [h for h, _ in _html_tables(_page(out, "paper"))]
    assert not any("paper within one run's range" in h or "Δ vs paper" in h for h in headers)  # a proxy: no paper beside it


def test_agreement_is_never_coloured_beyond_the_mde(quick_run):
    _, out = quick_run
    for page, html in _pages(out).items():
        for headers, rows in _html_tables(html):
            if "paper within one run's range" in headers:
                for row in rows:
                    cell = row[headers.index("paper within one run's range")]
                    if cell == "yes":
                        delta, mde = row[headers.index("Δ vs paper")], row[headers.index("MDE (one run)")]
                        assert abs(float(delta)) <= float(mde), (page, row)
    csv = pd.read_csv(out / "contrasts.csv")
    equivalent = csv[csv["verdict"].str.startswith("equivalent")]
    index = (out / "index.html").read_text(encoding="utf-8")
    for r in equivalent.itertuples():
        coloured = f'<td class="text equiv">{r.verdict} at {r.scale}</td>' in index
        assert coloured == (abs(r.delta) <= r.mde), r
    # a Table I row with the paper inside one run's range but a gap beyond the MDE is not called agreement
    from study.report.sections import paper_in_range_cell as _paper_in_range_cell

    cell = _paper_in_range_cell({"paper_in_range": True, "n": 5, "paper": 95.0, "diff_vs_paper": -4.0,
                                 "mde_one_run": 3.0, "paper_agrees": False})
    assert cell[1] != "good"
    record = {"verdict": stats.equivalence_verdict(3.0), "diff": 2.5, "mde": 1.0}
    assert _verdict_cell(record)[1] == "muted" and _verdict_cell({**record, "mde": 2.6})[1] == "equiv"


def test_quick_run_optuna_plots_only_for_the_search_and_never_seed(quick_run):
    runs, out = quick_run
    for name in ("contrasts", "paper", "robustness"):
        assert not list((out / name).glob("optuna*")), name  # grid journals hold cells, not a search
        assert "Optimisation history" not in _page(out, name)
    assert (runs / "contrasts" / "optuna.journal").is_file()  # ...though the contrasts study has one
    names = {p.stem for p in (out / "search").glob("optuna*.svg")}
    assert {"optuna_history", "optuna_importances", "optuna_parallel"} <= names
    importances = pd.read_csv(out / "search" / "optuna_importances.csv")
    assert set(importances["parameter"]) == {"width", "kernel", "lr"}
    assert "seed" not in pd.read_csv(out / "search" / "optuna_trials.csv").columns
    for svg in (out / "search").glob("optuna*.svg"):
        # text is drawn as paths; matplotlib keeps each label in a comment, so a seed axis would show here
        assert b"seed" not in svg.read_bytes().lower(), svg.name
    parallel = (out / "search" / "optuna_parallel.svg").read_bytes()
    assert all(p.encode() in parallel for p in ("width", "kernel", "lr"))
    html = _page(out, "search")
    assert "searching width, kernel, lr" in html and "seed =" not in html
    contrasts = _page(out, "contrasts")
    assert 'ablation_contrasts.svg' in contrasts  # grid studies get per-variant distributions instead


def test_quick_run_one_epoch_curves_have_points_and_bands(quick_run):
    runs, out = quick_run
    history = pd.read_csv(next((runs / "contrasts" / "history").glob("*.csv")))
    assert history["epoch"].max() == 1.0 and history["epoch_end"].sum() == 1 and len(history) >= 10
    for name in ("contrasts", "paper", "robustness"):
        curves = pd.read_csv(out / name / "training_curves.csv")
        assert set(curves["x_name"]) == {"step"}
        for _, curve in curves.groupby(["curve", "dataset"]):
            assert curve["val_acc_mean"].notna().sum() >= 3 and curve["train_loss_mean"].notna().sum() >= 3
        assert (out / name / "curves_fashion-mnist.svg").is_file()
    curves = pd.read_csv(out / "contrasts" / "training_curves.csv")
    assert set(curves["curve"]) == set(fixture.CONTRAST_VARIANTS) | {fixture.CONTRAST_REFERENCE}
    assert set(curves["n"]) == {len(fixture.CONTRAST_SEEDS)}  # mean over every seed...
    # ...and the band is the SD over seeds at each logged step, recomputed here from the history files
    table = load_table(runs / "contrasts" / "results.jsonl")
    rows = table[table["variant"] == fixture.CONTRAST_REFERENCE]
    stacked = pd.concat([pd.read_csv(runs / "contrasts" / p) for p in rows["history_path"]])
    expected = stacked.groupby("step")["val_acc"].agg(["mean", "std"])
    mine = curves[curves["curve"] == fixture.CONTRAST_REFERENCE].set_index("x")
    assert list(mine.index) == list(expected.index)
    assert mine["val_acc_mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy())
    assert mine["val_acc_sd"].to_numpy() == pytest.approx(expected["std"].to_numpy())


def test_curves_need_three_points_and_old_histories_use_epochs(tmp_path):
    from study.report.curves import drawable, load_histories, mean_curves

    rows = []
    for seed, epochs in ((0, 2), (1, 4)):
        path = tmp_path / f"old-{seed}.csv"
        pd.DataFrame({"epoch": range(1, epochs + 1), "train_loss": 1.0, "val_acc": 0.5}).to_csv(path, index=False)
        rows.append({"variant": "v", "dataset": "mnist", "seed": seed, "history_path": str(path)})
    histories, missing = load_histories(pd.DataFrame(rows), tmp_path, label="variant")
    curves = mean_curves(histories)
    assert not missing and set(curves["x_name"]) == {"epoch"} and list(curves["n"]) == [2, 2, 1, 1]
    assert len(drawable(curves)) == 4
    assert drawable(mean_curves(histories[histories["epoch"] <= 2])).empty  # two points: no curve


def test_quick_run_index_summarises_every_study(quick_run):
    runs, out = quick_run
    index = (out / "index.html").read_text(encoding="utf-8")
    csv = pd.read_csv(out / "contrasts.csv")
    for study in QUICK_STUDIES:
        section = _section(index, study)
        assert f'href="{study}/index.html"' in section
        assert "<dt>question</dt>" in section
    for r in csv.itertuples():  # each contrast with its Δ, CI, MDE and verdict
        row = next(row for row in _rows(_section(index, r.study), "contrasts") if row[0] == htmllib.escape(r.contrast))
        assert row[2] == f"{r.delta:+.2f}" and htmllib.unescape(row[5]) == f"{r.verdict} at {r.scale}"
        assert row[4] == (f"{r.mde:.2f}" if r.mde <= 100 else "&gt; 100")  # beyond 100 points nothing is detectable
        cut = r.ci_low < -100 or r.ci_high > 100  # a difference of accuracies lies in [-100, 100]
        assert row[3] == f"[{max(r.ci_low, -100):+.2f}, {min(r.ci_high, 100):+.2f}]" + ("*" if cut else "")
    assert set(csv["study"]) == {"contrasts", "paper"}
    assert "cut to ±100" in _section(index, "paper")  # paper: two far-apart LR-Net seeds
    # studies without contrasts still answer in one line: robustness per degradation, search its best trial
    robustness = _section(index, "robustness")
    for level in ("blur:1.0", "noise:0.2"):
        assert f"lrnet_paper under {level} is worse than the same model on clean images on fashion-mnist" in robustness
    table = load_table(runs / "search" / "results.jsonl")
    best = table.loc[table["test_accuracy"].idxmax()]
    assert (f"Best of {len(table)} trained trials: {best['variant']} at {best['test_accuracy'] * 100:.2f} % test "
            "accuracy") in _section(index, "search")
    assert "no pre-registered contrasts" not in index
    contrasts = _section(index, "contrasts")
    assert contrasts.count('<ul class="answers">') == 1 and contrasts.count("<li><span class=\"badge") == 2
    tables_part = index[index.index('<h2 id="paper-tables">'):index.index('<h2 id="not-run">')]
    assert "Table I PROXY — test accuracy (%) after" in tables_part and "from study paper" in tables_part
    assert "Table II — cost per model, from study paper" in tables_part
    assert 'href="paper/table_i.csv"' in tables_part and 'href="paper/table_ii.csv"' in tables_part
    not_run = index[index.index('<h2 id="not-run">'):index.index("<footer")]
    for name in set(list_studies()) - set(QUICK_STUDIES):
        assert f"<code>nox -s ablations -- --only {name}</code>" in not_run


def test_every_table_and_figure_links_its_csv_and_every_page_has_provenance(quick_run):
    _, out = quick_run
    for page, html in _pages(out).items():
        folder = out if page == "index" else out / page
        body = html[:html.index("<footer")]
        captions = re.findall(r'<(?:p class="caption"|figcaption)>(.*?)</(?:p|figcaption)>', body, re.S)
        assert len(captions) == body.count("<table") + body.count("<figure>") >= 2
        for caption in captions:
            csv = re.search(r'href="([^"]+\.csv)"', caption)
            assert csv, (page, caption)
            assert (folder / csv.group(1)).is_file(), (page, csv.group(1))
        footer = html[html.index("<footer"):]
        for label in ("command", "commit", "profile", "machine"):
            assert f"<dt>{label}</dt>" in footer, (page, label)
        assert fixture.QUICK_COMMIT in footer and fixture.QUICK_DEVICE in footer
    assert "<code>nox -s ablations -- --only search</code>" in _page(out, "search")


def test_footer_command_runs_the_study_again(tmp_path):
    from study.report.load import StudyRun
    from study.report.provenance import study_command
    from study.studies import ABLATIONS

    table = pd.DataFrame({"profile": ["paper"]})

    def command(**prov) -> str:
        return study_command(StudyRun("kernels", tmp_path, table, prov, None))

    assert command(study="kernels", profile="quick", spec_file=str(ABLATIONS / "kernels.toml")) == \
        "nox -s ablations -- --only kernels"
    assert command(study="kernels", profile="quick", spec_file="ablations/kernels.toml") == \
        "nox -s ablations -- --only kernels"
    assert command(study="tiny", profile="quick", spec_file="/tmp/x/tiny.toml") == "nox -s ablations -- --only /tmp/x/tiny.toml"
    assert command() == "nox -s ablations -- --only kernels --profile paper"  # an older run: from its rows
    assert command(command="python -m study run --only kernels --seeds 8") == "python -m study run --only kernels --seeds 8"


def test_a_metric_logged_only_at_epoch_end_gets_no_empty_panel(tmp_path):
    from study.report import figures
    from study.report.curves import drawable, drawn_metrics, load_histories, mean_curves

    rows = []
    for seed in range(3):
        path = tmp_path / f"h{seed}.csv"
        fixture.write_step_history(path, 0.8, np.random.default_rng(seed))
        history = pd.read_csv(path)
        history.loc[history["epoch_end"] == 0, ["val_loss", "val_acc"]] = np.nan  # validated once, at the end
        history.to_csv(path, index=False)
        rows.append({"variant": "v", "dataset": "mnist", "seed": seed, "history_path": path.name})
    curves = drawable(mean_curves(load_histories(pd.DataFrame(rows), tmp_path, label="variant")[0]))
    assert drawn_metrics(curves, "mnist") == ["train_loss"]
    fig = figures.curves_figure(curves, "mnist", {"v": figures.OTHER})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 1 and visible[0].get_ylabel() == "training loss" and len(visible[0].lines) == 1
    assert len(visible[0].lines[0].get_xdata()) == len(pd.read_csv(tmp_path / "h0.csv")) >= 10


def test_profile_line_names_command_line_overrides_apart_from_the_files():
    import types

    import pandas as pd

    from study.report import summary

    study = types.SimpleNamespace(provenance={"profile_description": "quick profile; PROXY; 5 seeds", "proxy": True,
                                              "profile_overrides": ["seeds=3"], "cli_overrides": ["profiles.quick.seeds=10"]},
                                  table=pd.DataFrame(), profile="quick")
    line = summary.profile_line(study)
    assert line.endswith("; study overrides: seeds=3; overridden on the command line: --set profiles.quick.seeds=10")


def test_the_keras_defaults_build_sits_beside_the_papers_lrnet_number():
    from study.report.tables import paper_model

    assert paper_model("lrnet_paper") == paper_model("lrnet_paper_keras") == "LR-Net"
    assert paper_model("lrnet_half") is None and paper_model("vgg16_paper") == "VGG-16"



# --- reference measurements from a GPU (results/gpu/*.json) -----------------------------------------


def _gpu_check(folder: Path, name: str, monkeypatch, *, tiny: bool = False, deadline: float | None = None) -> Path:
    """`folder/name`: a check file written by the kit's own `run_check`, its measurements stubbed
    (training 9 img/s and inference 40 img/s per image of batch)."""
    from study import gpu_check

    monkeypatch.setattr(gpu_check, "measure_throughput", lambda model, batch, settings, device: {
        "model": model, "batch": batch, "train_img_per_s": 9.0 * batch, "infer_img_per_s": 40.0 * batch, "peak_mem_mb": 1.0})
    monkeypatch.setattr(gpu_check, "tta_seed", lambda settings, device, data_root, seed: {
        "model": "lrnet_paper", "seed": seed, "test_accuracy": 0.9512 + seed / 1000, "train_seconds": 41.3, "epochs": 10})
    settings = gpu_check.TINY if tiny else gpu_check.CheckSettings(models=("lrnet_paper", "vgg16_paper"), batches=(128, 512), seeds=3)
    written = gpu_check.run_check(settings, "cpu", folder / name, deadline=deadline, say=lambda line: None)
    return written.rename(folder / f"{name}.json")


def test_the_index_shows_committed_gpu_checks_and_names_what_it_leaves_out(built, tmp_path, monkeypatch):
    runs, _ = built
    results, out = tmp_path / "results" / "gpu", tmp_path / "reports"
    assert main(["--runs", str(runs), "--out", str(out), "--gpu-results", str(results)]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    section = html[html.index('<h2 id="gpu">'):html.index('<h2 id="not-run">')]
    assert "No GPU measurement is committed yet" in section and "docs/gpu.md" in section and "<table" not in section

    _gpu_check(results, "a-full", monkeypatch)
    _gpu_check(results, "b-late", monkeypatch, deadline=0.0)  # its budget was over before it began
    _gpu_check(results, "c-rehearsal", monkeypatch, tiny=True)
    (results / "d-broken.json").write_text("{not json")
    (results / "e-other.json").write_text('{"throughput": 3}')
    assert main(["--runs", str(runs), "--out", str(out), "--gpu-results", str(results)]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    section = html[html.index('<h2 id="gpu">'):html.index('<h2 id="not-run">')]
    [(headers, rows)] = _html_tables(section)
    assert headers[:7] == ["model", "batch", "train img/s", "inference img/s", "CPU train img/s, fast",
                           "CPU inference img/s, fast", "train GPU/CPU"]
    assert [r[:7] for r in rows] == [["lrnet_paper", "128", "1,152", "5,120", "–", "–", "–"], ["vgg16_paper", "128", "1,152", "5,120", "–", "–", "–"],
                    ["lrnet_paper", "512", "4,608", "20,480", "–", "–", "–"], ["vgg16_paper", "512", "4,608", "20,480", "–", "–", "–"]]
    text = htmllib.unescape(section)
    assert ("a-full.json: lrnet_paper on Fashion-MNIST, mean test accuracy 95.22 % over 3 of 3 seeds, 41.3 s of training "
            "per seed: reached the 95.0 % target.") in text
    assert ("b-late.json: not measured (its budget ran out first): throughput lrnet_paper batch 128, time to accuracy "
            "lrnet_paper seed 0, throughput vgg16_paper batch 128, time to accuracy lrnet_paper seed 1, time to accuracy "
            "lrnet_paper seed 2, throughput lrnet_paper batch 512, throughput vgg16_paper batch 512.") in text
    assert "c-rehearsal.json: a --tiny rehearsal on cpu, its numbers mean nothing" in text
    assert "d-broken.json: unreadable (" in text and "e-other.json: not a GPU check (no throughput rows or no provenance)" in text


def test_gpu_rows_sit_beside_the_cpu_fast_rates_of_the_same_model():
    from study.report.reference import gpu_frame

    check = {"started": "2026-12-01 10:00:00", "provenance": {"device_name": "NVIDIA H200", "torch_version": "2.11.0",
             "git_commit": "abc1234"}, "throughput": [
        {"model": "lrnet_paper", "batch": 128, "train_img_per_s": 30_000.0, "infer_img_per_s": 90_000.0},
        {"model": "vgg16_paper", "batch": 128, "train_img_per_s": 8_000.0, "infer_img_per_s": 20_000.0}]}
    cpu = pd.DataFrame({"model": ["lrnet_paper"], "train_img_per_s_fast": [100.0], "infer_img_per_s_fast": [450.0]})
    frame = gpu_frame([check], cpu)
    assert frame["cpu_train_img_per_s"].tolist()[0] == 100.0 and frame["cpu_infer_img_per_s"].tolist()[0] == 450.0
    assert frame["train_ratio"].tolist()[0] == 300.0 and pd.isna(frame["train_ratio"].tolist()[1])  # no CPU rate for VGG
    assert frame["measured"].tolist()[0] == "2026-12-01 10:00:00, torch 2.11.0, commit abc1234"
    assert frame["device"].tolist() == ["NVIDIA H200"] * 2


def test_flop_matched_variants_get_their_points_but_no_pareto_front(quick_run):
    # FLOP-matched variants differ by a few percent of FLOPs: a front would rank seed noise by cost noise
    runs, out = quick_run
    section = _sections(_page(out, "contrasts"))["Accuracy vs FLOPs"]
    points = pd.read_csv(out / "contrasts" / "pareto_points.csv")
    assert points["flops"].max() / points["flops"].min() - 1 <= 0.105
    assert "No Pareto front drawn: every network here costs" in section and "<img " not in section
    assert not (out / "contrasts" / "pareto.svg").exists()
    [(headers, rows)] = _html_tables(section)
    assert headers == ["dataset", "network", "accuracy %", "MFLOPs", "params", "runs"] and len(rows) == len(points) == 3
    searched = _sections(_page(out, "search"))["Accuracy vs FLOPs"]  # networks of different cost still get their front
    assert "<img " in searched and "Pareto-optimal networks" in searched


def test_a_proxy_table_one_sets_no_number_beside_the_papers_and_checks_no_claim(quick_run):
    _, out = quick_run
    page, index = _page(out, "paper"), (out / "index.html").read_text(encoding="utf-8")
    text = htmllib.unescape(page)
    for html in (page, index):
        tables_one = [(h, rows) for h, rows in _html_tables(html) if "accuracy %" in h and "model" in h]
        assert tables_one and all(not {"paper", "Δ vs paper", "paper within one run's range"} & set(h) for h, _ in tables_one)
        assert "Table I PROXY" in html
    assert "For context only, the paper's converged single-run numbers" in text and "LR-Net 95.03 % on fashion-mnist" in text
    assert "The paper's claims are not checked: this study trained a PROXY" in text
    assert not re.search(r'<div class="claim"', page) and ">supported<" not in page
    one = pd.read_csv(out / "paper" / "table_i.csv")
    assert one["paper"].isna().all() and one["diff_vs_paper"].isna().all()


def test_a_converged_table_one_still_sets_the_papers_numbers_beside_its_own_and_checks_the_claims(built):
    _, out = built
    page = _page(out)
    headers = [h for h, _ in _html_tables(page) if "accuracy %" in h and "model" in h]
    assert headers and {"paper", "Δ vs paper", "paper within one run's range"} <= set(headers[0])
    assert "Claims check" in page and "(a) LR-Net" in page and "Table I PROXY" not in page


def test_the_index_footer_gives_each_studys_exact_command(tmp_path):
    from study.report.load import StudyRun
    from study.report.provenance import run_footer

    table = pd.DataFrame({"profile": ["quick"]})
    ran = "python -m study run --only kernels --set profiles.quick.seeds=8 --budget-min 30"
    studies = [StudyRun("kernels", tmp_path, table, {"command": ran, "profile": "quick"}, None),
               StudyRun("links", tmp_path, table, {"study": "links", "profile": "quick"}, None)]
    assert dict(run_footer(studies))["command"] == f"{ran}; nox -s ablations -- --only links"


def test_a_verdict_on_networks_of_different_cost_says_so_with_the_ratios(tmp_path):
    from study.report.load import StudyRun

    variants = {"3 blocks": {"params": 217_816, "flops": 24_376_200}, "2 blocks": {"params": 424_562, "flops": 24_168_532},
                "k3": {"params": 220_000, "flops": 24_300_000}}
    run = StudyRun("depth", tmp_path, pd.DataFrame({"variant": [], "status": []}), {"variants": variants}, None)
    note = summary.capacity_note(run, "2 blocks", "3 blocks")
    assert note == (" Not like for like: its params differ from 3 blocks's by more than ±5% (params 1.95×, FLOPs 0.99×), "
                    "so the difference may be one of size, not design.")
    assert summary.capacity_note(run, "k3", "3 blocks") == ""  # matched within the tolerance: nothing to say


def test_a_margin_given_relative_to_the_references_error_rate_is_shown_on_both_scales(tmp_path):
    from study.report.load import load_run

    run_dir = fixture.make_contrasts_study(tmp_path / "runs")
    meta = json.loads((run_dir / "study.json").read_text())
    meta.pop("equivalence_margin")
    (run_dir / "study.json").write_text(json.dumps({**meta, "equivalence_margin_relative": 0.1}))
    run = load_run(run_dir)
    table = run.table[(run.table["status"] == "ok") & (run.table["variant"] == fixture.CONTRAST_REFERENCE)]
    error = 100 - 100 * table["test_accuracy"].mean()
    assert contrasts.equivalence_margin(run.provenance) == pytest.approx(0.1 * error)
    line = summary.margin_line(run, pd.DataFrame())
    assert line.startswith(f"±{0.1 * error:g} points (±10 % of the reference's error rate, {error:.1f} %)")
    assert "10% of the reference's error rate" in line
