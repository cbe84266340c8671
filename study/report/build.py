"""Build `reports/<study>/index.html` (plus its SVG figures and CSV tables) for each study of a runs directory,
and the summary of the whole run: `reports/index.html` and `reports/contrasts.csv` (see `summary`).

Reading order of a study's page: verdicts first (the paper's claims, Table I in one line per dataset,
ablation verdict counts, caveats), then the evidence section by section.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from study import stats
from study.errors import KitError
from study.report import display, figures, optuna_search, provenance, summary, tables
from study.report.claims import check_claims
from study.report.curves import METRIC_NAMES, drawable, drawn_metrics, load_histories, mean_curves
from study.report.html import (
    Facts,
    Figure,
    Note,
    ReportBook,
    Section,
    Table,
    Verdicts,
    frame_table,
    render_index,
)
from study.results import load_table

_GENERATED = ("*.csv", "*.svg", "index.html")


@dataclass
class StudyRun:
    """One study's run directory, read: results table, provenance and optional Optuna journal (or storage URL)."""

    name: str
    run_dir: Path
    table: pd.DataFrame
    provenance: dict
    journal: Path | None
    problems: list[str] = field(default_factory=list)
    storage_url: str | None = None  # an Optuna RDB (e.g. PostgreSQL) that may hold the study instead of the journal

    @property
    def profile(self) -> str:
        """The study's profile, from study.json or else from its rows."""
        if self.provenance.get("profile"):
            return str(self.provenance["profile"])
        return ", ".join(sorted({str(p) for p in self.table["profile"].dropna()})) or "–"

    @property
    def last_update(self) -> str:
        """When the results file last changed (a running study keeps appending to it)."""
        results = self.run_dir / "results.jsonl"
        source = results if results.exists() else self.run_dir / "study.json"
        if not source.exists():
            return "–"
        return datetime.fromtimestamp(source.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def find_studies(runs_dir: Path) -> list[Path]:
    """Study folders of a runs directory: those holding results.jsonl or study.json."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir()
                  if p.is_dir() and ((p / "results.jsonl").exists() or (p / "study.json").exists()))


def load_run(run_dir: Path, storage: str | None = None) -> StudyRun:
    """Read one study folder (its Optuna study from the journal, or from `storage` when given); an unreadable
    study.json is a problem noted in the report, not a crash."""
    problems, provenance = [], {}
    meta = run_dir / "study.json"
    if meta.exists():
        try:
            provenance = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(provenance, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            problems.append(f"study.json could not be read ({err}); provenance below comes from the rows only.")
            provenance = {}
    journal = run_dir / "optuna.journal"
    return StudyRun(run_dir.name, run_dir, load_table(run_dir / "results.jsonl"), provenance,
                    journal if journal.exists() else None, problems, storage)


def build_reports(runs_dir: Path, out_dir: Path, study: str | None = None, storage: str | None = None) -> list[Path]:
    """Write a report per study (or only `study`), then the summary of every study of `runs_dir`
    (index.html and contrasts.csv); returns the files written. `storage` is an Optuna storage URL
    (`--storage` of the run) read for a search study's Optuna section where no journal holds it."""
    selected = [runs_dir / study] if study else find_studies(runs_dir)
    studies = [load_run(p, storage) for p in selected if p.is_dir()]
    with_rows = [s for s in studies if len(s.table)]
    if not with_rows:
        raise KitError(f"no results in {runs_dir / study if study else runs_dir} — run nox -s ablations first")
    written = [write_study_report(s, out_dir / s.name) for s in with_rows]
    others = [load_run(p) for p in find_studies(runs_dir) if p.name not in {s.name for s in studies}]
    written.extend(write_index(studies + others, out_dir))
    return written


def write_index(studies: list[StudyRun], out_dir: Path, available: list[str] | None = None) -> list[Path]:
    """The summary of the whole run: `<out>/index.html`, `<out>/contrasts.csv` (and `<out>/costs.csv`); returns
    the page and the contrasts CSV.

    Per study (the contrasts study first): its question, profile (PROXY flagged), contrasts with verdicts and
    one-line answers, variant costs (matched and raw) and a link to its page; Tables I and II of the studies
    that trained the paper's baselines; then the studies of `available` (default: every ablations/*.toml)
    that have no run directory, with the command to run them. The footer carries command, commit, profile
    and machine of every study.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [summary.summarise(s, _page_link(out_dir, s.name)) for s in summary.order(studies)]
    costs = [{"study": r["name"], **c} for r in summaries for c in r["costs"]]
    if costs:
        pd.DataFrame(costs).to_csv(out_dir / "costs.csv", index=False)
        for record in summaries:
            record["costs_csv"] = "costs.csv" if record["costs"] else None
    else:
        (out_dir / "costs.csv").unlink(missing_ok=True)  # no stale costs of an earlier run beside the new index
    missing = summary.not_run({s.name for s in studies}, available)
    csv = out_dir / "contrasts.csv"
    summary.contrasts_csv(summaries).to_csv(csv, index=False)
    path = out_dir / "index.html"
    paper = [_paper_tables(s, out_dir) for s in summary.order(studies) if len(s.table)]
    path.write_text(render_index(summaries, missing, _now(), paper_tables=[p for p in paper if p],
                                 footer=provenance.run_footer([s for s in studies if len(s.table)])),
                    encoding="utf-8")
    return [path, csv]


def _page_link(out_dir: Path, name: str) -> str | None:
    """A study page's address relative to the index, when the page exists."""
    return urllib.parse.quote(name) + "/index.html" if (out_dir / name / "index.html").exists() else None


def _paper_tables(study: StudyRun, out_dir: Path) -> tuple[str, list] | None:
    """Tables I and II of a study that trained the paper's baselines, for the index (linking the page's CSVs)."""
    main = tables.main_rows(study.table)
    if not main["model"].dropna().astype(str).map(tables.is_baseline).any():
        return None
    folder = urllib.parse.quote(study.name) + "/"
    one = tables.table_one(study.table)
    one = one[~one["low_data"]]
    blocks = []
    if len(one):
        blocks.append(frame_table(one, table_one_columns(), caption=f"Table I — test accuracy (%) vs the paper, "
                                  f"from study {study.name}; paper within one run's range only for n ≥ 3.",
                                  csv=folder + "table_i.csv" if (out_dir / study.name / "table_i.csv").exists() else None,
                                  row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
        if (one["ci_clipped"] | one["pi_clipped"]).any():
            blocks.append(Note(CLIPPED_NOTE, "warn"))
    two = tables.table_two(study.table)
    if len(two):
        blocks.append(frame_table(two, table_two_columns(), caption=f"Table II — cost per model, from study "
                                  f"{study.name} (1 multiply-add = 1 FLOP).",
                                  csv=folder + "table_ii.csv" if (out_dir / study.name / "table_ii.csv").exists() else None,
                                  row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
    return (study.name, blocks) if blocks else None


class _Outputs:
    """Files written beside a study's page, named safely and uniquely from labels found in the data."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)
        for pattern in _GENERATED:  # a stale figure of a removed axis must not linger beside the new page
            for stale in folder.glob(pattern):
                stale.unlink()

    def _name(self, stem: str, ext: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "item"
        if safe != stem or f"{safe}.{ext}" in self.used:
            safe = f"{safe}-{hashlib.sha256(stem.encode()).hexdigest()[:6]}"
        self.used.add(f"{safe}.{ext}")
        return f"{safe}.{ext}"

    def csv(self, frame: pd.DataFrame, stem: str) -> str:
        """Write a table as CSV; returns its file name (relative to the page)."""
        name = self._name(stem, "csv")
        frame.to_csv(self.folder / name, index=False)
        return name

    def figure(self, svg: bytes, stem: str, caption: str, csv: str | None = None) -> Figure:
        """Write a figure as SVG and return it ready to embed, with the CSV of the numbers it draws."""
        name = self._name(stem, "svg")
        (self.folder / name).write_bytes(svg)
        return Figure(svg, caption, name, csv)


def write_study_report(study: StudyRun, folder: Path) -> Path:
    """Write one study's page, figures and tables into `folder`; returns the page.

    A section is written only when the study measured what it shows: Tables I and II and the claims only
    for a study that trained the paper's baselines, the search plots only for a search study, and so on.
    """
    out = _Outputs(folder)
    table = study.table
    main = tables.main_rows(table)
    margin = summary.equivalence_margin(study.provenance)
    # the paper's claims and Tables I/II are about LR-Net against its baselines: only a study that trained them
    baselines = bool(main["model"].dropna().astype(str).map(tables.is_baseline).any())
    table_one = tables.table_one(table) if baselines else tables.table_one(table.iloc[0:0])
    versus = tables.lrnet_vs_baselines(table, margin)
    table_two = tables.table_two(table)
    claims = check_claims(versus, table_two, set(main["model"])) if baselines else []
    palette = figures.model_palette(table["model"].dropna().astype(str))
    book = ReportBook(f"Study {study.name}", _subtitle(study), provenance.study_footer(study))
    ablations = {axis: _compare_axis(table, axis, margin) for axis in tables.ablation_axes(table)}

    _summary(book, study, table_one, claims, ablations)
    _run_section(book.section("Run"), study)
    if baselines:
        _table_one_section(book.section("Table I — accuracy vs the paper"), out, table_one, versus, main)
        _table_two_section(book.section("Table II — cost"), out, table_two)
    if ablations:
        _ablation_section(book.section("Ablations"), out, study, ablations)
    if summary.study_kind(study) != "search":
        _curves_section(book, out, study, main)
    _pareto_section(book, out, table, palette)
    if summary.study_kind(study) == "search" and (study.journal is not None or study.storage_url):
        _search_section(book.section("Search"), out, study)
    _robustness_section(book, out, table, palette)
    if baselines:
        book.section("Claims check").add(
            Note("Each claim of the paper is checked against this study's own numbers. Accuracy: supported only "
                 "if LR-Net is significantly better (Holm-adjusted, α = 0.05) than every baseline on every dataset "
                 "where both were run; not supported if it is worse, or equivalent within the margin, somewhere; "
                 "inconclusive if the data cannot decide the remaining comparisons. Parameters and speed: medians "
                 "of Table II, LR-Net against every baseline."),
            Verdicts(claims),
        )
    return book.to_file(folder / "index.html", _now())


def _now() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _subtitle(study: StudyRun) -> str:
    table = study.table
    ok = int((table["status"] == "ok").sum())
    proxy = "PROXY · " if summary.is_proxy(study) else ""
    return (f"{proxy}profile {study.profile} · {ok} of {len(table)} runs ok · "
            f"{display.duration(tables.compute_seconds(table))} of compute · last update {study.last_update}")


# --- summary -----------------------------------------------------------------------------------


def _summary(book: ReportBook, study: StudyRun, table_one: pd.DataFrame, claims,
             ablations: dict[str, pd.DataFrame | str]) -> None:
    """Verdicts first: the claims, LR-Net against the paper, ablation verdict counts, then caveats."""
    book.summary.append(Verdicts(claims, with_evidence=False))
    lrnet = table_one[table_one["model"] == tables.LRNET]
    if len(lrnet):
        clipped = f" ({display.CLIPPED} cut to [0, 100])" if lrnet["ci_clipped"].any() else ""
        book.summary.append(Note(f"LR-Net test accuracy (%), ours [95% CI{clipped}] vs the paper:", "info", [
            f"{r['dataset']} ({display.text(r['protocol'])}): {display.pts(r['mean'])} "
            f"{display.accuracy_interval(r['ci_low'], r['ci_high'], r['ci_clipped'])}, n = {r['n']} — paper "
            f"{display.pts(r['paper'])}"
            + (" (outside the range of one run of ours)" if _paper_in_range_cell(r)[1] == "flag" else "")
            for r in lrnet.to_dict("records") if not r["low_data"]
        ]))
    margin = summary.equivalence_margin(study.provenance)
    counts = [f"{axis}: {summary.verdict_counts(result['verdict'], margin)}"
              for axis, result in ablations.items() if not isinstance(result, str) and not result.empty]
    if counts:
        book.summary.append(Note("Ablations, each variant vs the axis's reference (Holm, α = 0.05; equivalent: "
                                 f"shown within ±{margin:g} pts by TOST; inconclusive: neither):", "info", counts))
    caveats = [*study.problems]
    mde = _quick_mde_sentence(study)
    if mde:
        caveats.append(mde)
    missing = _missing_note(study)
    if missing:
        book.summary.append(missing)
    caveats.append(_protocol_caveat(study.table))
    book.summary.append(Note("Read with care:", "warn", caveats))


def _quick_mde_sentence(study: StudyRun) -> str | None:
    """For quick-profile studies: the typical minimum detectable difference, in one sentence."""
    if "quick" not in study.profile:
        return None
    # Search trials run one seed each by design; they would drag the typical cell size to 1.
    mde = stats.typical_mde(study.table[study.table["axis"] != "search"])
    if pd.isna(mde):
        return ("Quick profile: too few seeds per cell to estimate the minimum detectable difference; "
                "treat every difference as undetectable.")
    return (f"Quick profile (CPU-budgeted): with this study's seeds and seed-to-seed spread the typical minimum "
            f"detectable difference is {mde:.1f} points (two-sided, α = 0.05, power 0.8); differences smaller "
            f"than that are not detectable here.")


def _protocol_caveat(table: pd.DataFrame) -> str:
    protocols = set(table["protocol"].dropna().astype(str))
    text = ("The authors used the test set as the validation set (early stopping on it); this kit holds out a "
            "validation split from the training data and evaluates the test set once, on the best-validation "
            "weights.")
    if any(p.startswith("kfold") for p in protocols):
        text += (" Rows marked kfold-test use stratified k-fold on the test split only (no training split "
                 "available): they are not directly comparable with the paper's numbers.")
    return text


def _missing_note(study: StudyRun) -> Note | None:
    """The "missing" box of a partial study: planned cells without an ok result."""
    planned = study.provenance.get("cells_total")
    table = study.table
    ok = int((table["status"] == "ok").sum())
    unfinished = tables.unfinished_cells(table)
    if not isinstance(planned, int) or ok >= planned:
        return None
    not_run = max(planned - len(table), 0)
    return Note(
        f"Partial results: {ok} of {planned} planned cells have an ok result; {len(unfinished)} ended without one "
        f"and {not_run} have not run yet. A cell is one (axis, variant, dataset, degradation, protocol, fold, "
        f"seed) run.", "warn", [_cell_label(r) for r in unfinished.to_dict("records")], collapse_over=8,
    )


def _cell_label(record: dict) -> str:
    return (f"{record['axis']} · {record['variant']} · {record['dataset']} · {record['degradation']} · "
            f"{record['protocol']} fold {record['fold']} · seed {record['seed']} → {record['status']}")


# --- sections ----------------------------------------------------------------------------------


def _describe_protocol(protocol: str) -> str:
    if protocol == "val-split":
        return "val-split: validation held out from the training data; test set evaluated once"
    match = re.fullmatch(r"kfold-test:(\d+)", protocol)
    if match:
        return f"{protocol}: stratified {match.group(1)}-fold cross-validation on the test split only"
    if protocol == "paper":
        return "paper: the authors' protocol (the test set doubles as validation set)"
    return protocol


def _unique(series: pd.Series) -> str:
    values = sorted({str(v) for v in series.dropna() if str(v)})
    return ", ".join(values) if values else "–"


def _run_section(section: Section, study: StudyRun) -> None:
    """What ran, on what, with what, and when; then statuses and runs without a result."""
    table, prov = study.table, study.provenance
    axes = ", ".join(f"{a} ({table.loc[table['axis'] == a, 'variant'].nunique()} variants)"
                     for a in table["axis"].dropna().unique())
    datasets = prov.get("datasets") if isinstance(prov.get("datasets"), dict) else {}
    baselines = sorted({m for m in table["model"].dropna().astype(str) if tables.is_baseline(m)})
    facts = [
        ("study", str(prov.get("study", study.name))),
        ("what ran", f"{len(table)} runs · axes: {axes or '–'} · models: {_unique(table['model'])} · "
                     f"datasets: {_unique(table['dataset'])} · seeds: {_unique(table['seed'])}"),
        ("profile", summary.profile_line(study)),
        ("equivalence margin", f"±{summary.equivalence_margin(prov):g} accuracy points"),
        ("protocol", "; ".join(_describe_protocol(p) for p in sorted(set(table["protocol"].dropna().astype(str))))
         or str(prov.get("protocol", "–"))),
        ("baselines", _describe_baselines(baselines)),
        ("data", "; ".join(f"{k}: {v}" for k, v in datasets.items()) or "not recorded"),
        ("device", str(prov.get("device") or _unique(table["device"]))),
        ("versions", f"torch {prov.get('torch_version') or _unique(table['torch_version'])} · "
                     f"python {prov.get('python', '–')} · precision {_unique(table['precision'])}"),
        ("git commit", str(prov.get("git_commit") or _unique(table["git_commit"]))),
        ("started / finished", f"{display.text(prov.get('started'))} / "
                               f"{display.text(prov.get('finished') or ('not yet' if prov.get('started') else None))}"),
        ("total compute", f"{display.duration(tables.compute_seconds(table))} "
                          f"(sum of wall_s over {len(table)} runs)"),
        ("statuses", ", ".join(f"{r.status} {r.rows}" for r in tables.status_counts(table).itertuples())),
    ]
    mde = _quick_mde_sentence(study)
    if mde:
        facts.append(("detectable difference", mde))
    section.add(Facts(facts))
    unfinished = tables.unfinished_cells(table)
    if len(unfinished) and _missing_note(study) is None:  # else the summary's "missing" box lists them
        section.add(Note(f"{len(unfinished)} runs ended without an ok result:", "info",
                         [_cell_label(r) for r in unfinished.to_dict("records")], collapse_over=8))


def _describe_baselines(baselines: list[str]) -> str:
    if not baselines:
        return "none in this study"
    parts = []
    if any(b.endswith("_scratch") for b in baselines):
        parts.append("*_scratch: trained from scratch, stem adapted to 28×28×1")
    if any(b.endswith("_paper") for b in baselines):
        parts.append("*_paper: the paper's protocol, images resized and repeated to 3 channels")
    return "; ".join(parts) + (" — the paper fine-tuned ImageNet weights, unavailable here, so baselines start "
                               "from random weights")


CLIPPED_NOTE = (f"{display.CLIPPED} An interval that reached beyond its scale (0–100 % for an accuracy, ±100 points "
                "for a difference of accuracies) is cut to it: with this few seeds and this much spread the data "
                "barely constrain the number.")


def table_one_columns() -> dict:
    """Table I's columns (header → column and formatter, or a function of the row); the index shows them too."""
    return {
        "dataset": ("dataset", display.text), "model": ("model", display.text),
        "protocol": ("protocol", display.text), "n": ("n", display.count),
        "accuracy %": ("mean", display.pts),
        "95% CI": lambda r: display.accuracy_interval(r["ci_low"], r["ci_high"], r["ci_clipped"]),
        "one run, 95% PI": lambda r: display.accuracy_interval(r["pi_low"], r["pi_high"], r["pi_clipped"]),
        "paper": ("paper", display.pts), "Δ vs paper": lambda r: display.pts(r["diff_vs_paper"], signed=True),
        "MDE (one run)": ("mde_one_run", display.pts),
        "paper within one run's range": _paper_in_range_cell,
    }


def table_two_columns() -> dict:
    """Table II's columns; the index shows them too."""
    return {
        "model": ("model", display.text), "rows": ("rows", display.count), "params": ("params", display.count),
        "MFLOPs": ("flops", display.mega), "train img/s": ("train_img_per_s", display.rate),
        "inference img/s": ("infer_img_per_s", display.rate), "peak memory MB": ("peak_mem_mb", display.rate),
        "device": ("devices", display.text),
    }


def _table_one_section(section: Section, out: _Outputs, table_one: pd.DataFrame, versus: pd.DataFrame,
                       main: pd.DataFrame) -> None:
    source = "the study's “paper” axis" if (main["axis"] == "paper").any() else "all axes (each run once)"
    section.add(Note(
        f"Test accuracy (%) on clean data from {source}: mean and 95% t-interval over seeds (n seeds; k-fold "
        "folds are averaged within a seed). “Paper” is the paper's Table I (VGG-16 ↔ vgg16_*, InceptionV3 ↔ "
        "inception_v3_*, LR-Net ↔ lrnet_paper); Δ = ours − paper. The paper's numbers are single runs: they "
        "are checked against our 95% prediction interval for one run (n ≥ 3), not against the CI of our mean, "
        "and called in line with ours only when also |Δ| ≤ the MDE, the gap of one run this design detects "
        "with 80% power."))
    full, low = table_one[~table_one["low_data"]], table_one[table_one["low_data"]]
    columns = table_one_columns()
    if len(full):
        section.add(frame_table(full, columns, caption="Table I reproduction.", csv=out.csv(full, "table_i"),
                                row_class=lambda r: "reference" if r["model"] == tables.LRNET else "", collapse_over=30))
    if len(low):
        sub = section.subsection("Low-data table: k-fold on the test split only")
        sub.add(Note("Only a test split was available for these datasets: each model trained on 4/5 of it and was "
                     "tested on the remaining fold, the fold rotating over seeds. This is a different, smaller-data "
                     "protocol than the paper's, so these numbers are not put beside the paper's.", "warn"))
        low_columns = {k: v for k, v in columns.items()
                       if k not in ("paper", "Δ vs paper", "MDE (one run)", "paper within one run's range")}
        sub.add(frame_table(low, low_columns, caption="Low-data protocol (not comparable with the paper).",
                            csv=out.csv(low, "table_i_low_data"),
                            row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
    if (table_one["ci_clipped"] | table_one["pi_clipped"]).any():
        section.add(Note(CLIPPED_NOTE, "warn"))
    points = tables.model_points(main)
    section.add(out.figure(figures.to_svg(figures.ablation_figure(points, "model", xlabel="model (LR-Net in vermillion)")),
                           "table_i_models", "Test accuracy per model: dots are seeds, bars the mean with its 95% "
                           "t-interval (cut to [0, 100]).", csv=out.csv(points, "table_i_points")))
    if not versus.empty:
        _versus_subsection(section.subsection("LR-Net vs each baseline"), out, versus)


def _versus_subsection(sub: Section, out: _Outputs, versus: pd.DataFrame) -> None:
    sub.add(Note("Δ = LR-Net − baseline in points. Paired by seed where at least two seeds are shared, "
                 "Welch otherwise; p-values Holm-adjusted across the baselines of each dataset. Verdict: better / "
                 "worse (t-test), equivalent within the margin (TOST), else inconclusive — then read the CI and "
                 "the minimum detectable difference (MDE)."))
    sub.add(frame_table(versus, {
        "dataset": ("dataset", display.text), "baseline": ("baseline", display.text),
        "LR-Net %": ("mean_lrnet", display.pts), "baseline %": ("mean_baseline", display.pts),
        "n": lambda r: f"{r['n_lrnet']} / {r['n_baseline']}",
        "Δ": lambda r: display.pts(r["diff"], signed=True),
        "95% CI": lambda r: display.difference_interval(r["ci_low"], r["ci_high"]),
        "p (Holm)": ("p_adjusted", display.p_value), "test": lambda r: "paired" if r["paired"] else "Welch",
        "MDE": ("mde", display.mde), "LR-Net is": _verdict_cell,
    }, caption="LR-Net against the baselines.", csv=out.csv(versus, "lrnet_vs_baselines")))
    if _beyond(versus, -100.0, 100.0):
        sub.add(Note(CLIPPED_NOTE, "warn"))


def _beyond(frame: pd.DataFrame, low: float, high: float) -> bool:
    """Whether any CI of a comparison table reaches beyond [low, high] (and is shown cut to it)."""
    return bool(((frame["ci_low"] < low) | (frame["ci_high"] > high)).any())


def _paper_in_range_cell(record: dict):
    """In line with the paper (green) only inside one run's range and within the MDE; outside the range flagged."""
    inside = record["paper_in_range"]
    if inside is pd.NA or inside is None or display.missing(inside):
        return ("– (n < 3)" if record["n"] < 3 and not pd.isna(record["paper"]) else "–", "muted")
    if not inside:
        return ("no: outside one run's range", "flag")
    if record.get("paper_agrees", True) and display.agrees(record["diff_vs_paper"], record.get("mde_one_run")):
        return ("yes", "good")
    return ("inside the range, but |Δ| > MDE", "muted")


def _verdict_cell(record: dict):
    """A verdict styled by its kind: better good, worse bad, equivalent its own style, inconclusive muted."""
    verdict = str(record["verdict"])
    return (verdict, display.verdict_class(verdict, record.get("diff"), record.get("mde")))


def _table_two_section(section: Section, out: _Outputs, table_two: pd.DataFrame) -> None:
    section.add(Note(
        "Medians over each model's ok rows. Parameters are trainable parameters; FLOPs are fvcore counts per "
        "image where one multiply-add counts as one FLOP (so they equal MACs); throughput in images per "
        "second; peak memory in MB. Throughput depends on the device listed."))
    section.add(frame_table(table_two, table_two_columns(), caption="Table II: cost per model (1 multiply-add = 1 FLOP, fvcore).", csv=out.csv(table_two, "table_ii"),
        row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))


def _compare_axis(table: pd.DataFrame, axis: str, margin: float = summary.DEFAULT_MARGIN) -> pd.DataFrame | str:
    """stats.compare_axis, or why the axis could not be compared (e.g. two variants flagged as reference)."""
    try:
        result = stats.compare_axis(table, axis, margin=margin)
    except ValueError as err:
        return f"Could not compare this axis: {err}"
    if result.empty:
        return ("Nothing to compare on this axis yet: it needs ok rows of the reference (is_reference) and of at "
                "least one other variant.")
    return result


def _ablation_section(section: Section, out: _Outputs, study: StudyRun,
                      ablations: dict[str, pd.DataFrame | str]) -> None:
    table = study.table
    margin = summary.equivalence_margin(study.provenance)
    section.add(Note(
        "Each variant against the axis's reference (the paper configuration), per dataset and degradation: "
        "Δ = variant − reference in points with its 95% CI, paired by seed where possible, p-values "
        "Holm-adjusted across the axis's variants, and the minimum detectable difference (MDE, at the "
        f"Holm-adjusted α). Verdict: better / worse (t-test), equivalent within ±{margin:g} pts (TOST, "
        "Holm-adjusted), else inconclusive: the data can neither tell the variant from the reference nor bound "
        "the difference."))
    costs = summary.costs(study)
    if costs:
        section.add(_cost_table(costs, out.csv(pd.DataFrame(costs), "costs")))
    for axis, result in ablations.items():
        sub = section.subsection(f"Axis: {axis}")
        points = tables.axis_points(table, axis)
        if isinstance(result, str):
            sub.add(Note(result, "warn"))
        else:
            result = tables.sort_like(result, dataset=tables.dataset_order(result["dataset"]),
                                      variant=list(dict.fromkeys(points["variant"].astype(str))))
            sub.add(frame_table(result, {
                "dataset": ("dataset", display.text), "degradation": ("degradation", display.text),
                "variant": ("variant", display.text), "n": lambda r: f"{r['n_variant']} / {r['n_reference']}",
                "variant %": ("mean_variant", display.pts), "reference %": ("mean_reference", display.pts),
                "Δ": lambda r: display.pts(r["diff"], signed=True),
                "95% CI": lambda r: display.difference_interval(r["ci_low"], r["ci_high"]),
                "p": ("p_value", display.p_value), "p (Holm)": ("p_adjusted", display.p_value),
                "MDE": ("mde", display.mde), "verdict": _verdict_cell,
            }, caption=f"Reference: {result['reference'].iloc[0]}.", csv=out.csv(result, f"ablation_{axis}")))
            if _beyond(result, -100.0, 100.0):
                sub.add(Note(CLIPPED_NOTE, "warn"))
        if len(points):
            sub.add(out.figure(figures.to_svg(figures.ablation_figure(points, axis)), f"ablation_{axis}",
                               f"Test accuracy per {axis} variant: dots are seeds, bars the mean with its 95% "
                               f"t-interval (cut to [0, 100]); the reference is vermillion, its mean the dashed line.",
                               csv=out.csv(points, f"ablation_{axis}_points")))


def _cost_table(costs: list[dict], csv: str | None = None) -> Table:
    """Each variant's cost as trained and, for capacity-matched variants, before matching (raw)."""
    return Table(
        ["variant", "network", "matched on", "width", "MFLOPs", "params", "raw MFLOPs", "raw params"],
        [[c["variant"], c["network"], c["match"], c["width"], c["mflops"], c["params"], c["raw_mflops"],
          c["raw_params"]] for c in costs],
        caption="Cost per variant (per image; 1 multiply-add = 1 FLOP). Matched variants had their widths scaled "
                "until their FLOPs (or params) matched the reference's; raw is the same variant before matching.",
        numeric=[False, False, False, True, True, True, True, True], csv=csv)


def _curves_section(book: ReportBook, out: _Outputs, study: StudyRun, main: pd.DataFrame) -> None:
    """Validation accuracy and training loss over steps, mean ± SD over seeds per variant; only curves with points."""
    histories, missing = load_histories(main, study.run_dir, label="variant")
    if histories.empty:
        return
    curves = drawable(mean_curves(histories))
    if curves.empty:
        return
    section = book.section("Training curves")
    x_name = "optimizer step" if curves["x_name"].iloc[0] == "step" else "epoch"
    section.add(Note(f"Mean over seeds with a ±1 SD band, per {x_name} logged; runs stopped early drop out of "
                     "later points, so the tail of a curve may rest on fewer seeds."))
    csv = out.csv(curves, "training_curves")
    references = set(main.loc[main["is_reference"].map(tables.truthy), "variant"].astype(str))
    palette = figures.curve_palette(curves["curve"], references | {tables.LRNET})
    for dataset in tables.dataset_order(curves["dataset"]):
        drawn = " and ".join(METRIC_NAMES[m] for m in drawn_metrics(curves, dataset))
        section.add(out.figure(figures.to_svg(figures.curves_figure(curves, dataset, palette)),
                               f"curves_{dataset}", f"{dataset}: {drawn}.", csv=csv))
    if missing:
        section.add(Note(f"{len(missing)} history files missing or unreadable:", "info", missing, collapse_over=8))


def _pareto_section(book: ReportBook, out: _Outputs, table: pd.DataFrame, palette: dict[str, str]) -> None:
    """Accuracy against FLOPs, with the Pareto front: only when at least two networks have both."""
    points = tables.pareto_points(table)
    if len(points) < 2:
        return
    section = book.section("Accuracy vs FLOPs")
    section.add(Note("One point per network and dataset (mean clean test accuracy over its runs, median "
                     "FLOPs). The Pareto front — no other network both more accurate and cheaper — is "
                     "computed from this table; coloured points are the Table I models, grey the "
                     "ablation and search variants."))
    csv = out.csv(points, "pareto_points")
    section.add(out.figure(figures.to_svg(figures.pareto_figure(points, palette)), "pareto",
                           "Accuracy vs FLOPs with the Pareto front (vermillion).", csv=csv))
    front = points[points["on_front"]]
    section.add(frame_table(front, {
        "dataset": ("dataset", display.text), "network": ("network", display.text),
        "accuracy %": ("accuracy", display.pts), "MFLOPs": ("flops", display.mega),
        "params": ("params", display.count), "runs": ("n", display.count),
    }, caption=f"Pareto-optimal networks ({len(front)} of {len(points)} points; all points in the CSV).", csv=csv))


def _search_section(section: Section, out: _Outputs, study: StudyRun) -> None:
    """The Optuna search of a search study: history, importances and parallel coordinates of the searched parameters."""
    try:
        search = optuna_search.load(study)
    except Exception as err:  # noqa: BLE001  (a corrupt or foreign journal is a note, not a crash)
        section.add(Note(f"the Optuna study could not be read: {type(err).__name__}: {err}".splitlines()[0], "warn"))
        return
    params = optuna_search.searched_params(search)
    section.add(Note(optuna_search.summary_line(search, params)))
    trials = optuna_search.trials_frame(search, params)
    trials_csv = out.csv(trials, "optuna_trials")
    importances, problem = optuna_search.importances(search, params)
    importances_csv = out.csv(importances, "optuna_importances") if len(importances) else trials_csv
    drawn, notes = figures.optuna_figures(search, params, importances=not problem)
    notes = ([problem] if problem else []) + notes
    for name, title, svg in drawn:
        section.add(out.figure(svg, name, title + ".", csv=importances_csv if name == "optuna_importances" else trials_csv))
    for note in notes:
        section.add(Note(note, "info"))


def _robustness_section(book: ReportBook, out: _Outputs, table: pd.DataFrame, palette: dict[str, str]) -> None:
    """Accuracy per degradation: only when the study tested degraded data."""
    robust = tables.robustness_table(table)
    if robust.empty:
        return
    section = book.section("Robustness to degradation")
    section.add(Note("Test accuracy (%) per degradation, mean and 95% t-interval over seeds (cut to [0, 100]); "
                     "“none” is the same models on clean data."))
    csv = out.csv(robust, "robustness")
    section.add(out.figure(figures.to_svg(figures.robustness_figure(robust, palette)), "robustness",
                           "Accuracy vs degradation per model.", csv=csv))
    section.add(frame_table(robust, {
        "dataset": ("dataset", display.text), "model": ("model", display.text),
        "degradation": ("degradation", display.text), "n": ("n", display.count),
        "accuracy %": ("mean", display.pts),
        "95% CI": lambda r: display.accuracy_interval(r["ci_low"], r["ci_high"], r["ci_clipped"]),
    }, caption="Robustness.", csv=csv, row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
    if robust["ci_clipped"].any():
        section.add(Note(CLIPPED_NOTE, "warn"))
