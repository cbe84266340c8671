"""Build `reports/<study>/index.html` (plus its SVG figures and CSV tables) for each study of a runs directory,
and the summary of the whole run: `reports/index.html` and `reports/contrasts.csv` (see `summary`).

Reading order of a study's page: verdicts first (the paper's claims, Table I in one line per dataset,
ablation verdict counts, caveats), then the evidence section by section.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from pathlib import Path

import pandas as pd

from study.errors import KitError
from study.kinds.base import Page
from study.report import (
    contrasts,
    display,
    figures,
    provenance,
    reference,
    sections,
    summary,
    tables,
)
from study.report.claims import check_claims
from study.report.html import (
    Note,
    ReportBook,
    Verdicts,
    frame_table,
    render_index,
)
from study.report.load import StudyRun, find_studies, load_run


def build_reports(runs_dir: Path, out_dir: Path, study: str | None = None, storage: str | None = None,
                  gpu_results: Path = reference.GPU_RESULTS) -> list[Path]:
    """Write a report per study (or only `study`), then the summary of every study of `runs_dir`
    (index.html and contrasts.csv); returns the files written. `storage` is an Optuna storage URL
    (`--storage` of the run) read for a search study's Optuna section where no journal holds it.
    `gpu_results` holds the committed GPU checks the index shows beside the CPU's numbers."""
    selected = [runs_dir / study] if study else find_studies(runs_dir)
    studies = [load_run(p, storage) for p in selected if p.is_dir()]
    with_rows = [s for s in studies if len(s.table)]
    if not with_rows:
        raise KitError(f"no results in {runs_dir / study if study else runs_dir} — run nox -s ablations first")
    written = [write_study_report(s, out_dir / s.name) for s in with_rows]
    others = [load_run(p) for p in find_studies(runs_dir) if p.name not in {s.name for s in studies}]
    written.extend(write_index(studies + others, out_dir, gpu_results=gpu_results))
    return written


def write_index(studies: list[StudyRun], out_dir: Path, available: list[str] | None = None,
                gpu_results: Path = reference.GPU_RESULTS) -> list[Path]:
    """The summary of the whole run: `<out>/index.html`, `<out>/contrasts.csv` (and `<out>/costs.csv`); returns
    the page and the contrasts CSV.

    Per study (the contrasts study first): its question, profile (PROXY flagged), contrasts with verdicts and
    one-line answers, variant costs (matched and raw) and a link to its page; Tables I and II of the studies
    that trained the paper's baselines; then the studies of `available` (default: every ablations/*.toml)
    that have no run directory, with the command to run them; the GPU reference measurements of
    `gpu_results` beside the CPU's Table II (`study.report.reference`). The footer carries command, commit,
    profile and machine of every study.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [summary.summarise(s, _page_link(out_dir, s.name), studies) for s in summary.order(studies)]
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
    gpu = reference.gpu_blocks(gpu_results, _cpu_costs(studies))
    path.write_text(render_index(summaries, missing, _now(), paper_tables=[p for p in paper if p], gpu=gpu,
                                 footer=provenance.run_footer([s for s in studies if len(s.table)])),
                    encoding="utf-8")
    return [path, csv]


def _cpu_costs(studies: list[StudyRun]) -> pd.DataFrame:
    """Table II of every study that trained the paper's baselines, one row per model (the first study's)."""
    two = [tables.table_two(s.table, s.costs) for s in summary.order(studies) if len(s.table) and tables.trained_baselines(s.table)]
    return pd.concat(two).drop_duplicates("model") if two else pd.DataFrame()


def _page_link(out_dir: Path, name: str) -> str | None:
    """A study page's address relative to the index, when the page exists."""
    return urllib.parse.quote(name) + "/index.html" if (out_dir / name / "index.html").exists() else None


def _paper_tables(study: StudyRun, out_dir: Path) -> tuple[str, list] | None:
    """Tables I and II of a study that trained the paper's baselines, for the index (linking the page's CSVs)."""
    if not tables.trained_baselines(study.table):
        return None
    folder = urllib.parse.quote(study.name) + "/"
    proxy = summary.is_proxy(study)
    one = tables.table_one(study.table, proxy)
    one = one[~one["low_data"]]
    blocks = []
    if len(one):
        caption = (f"Table I PROXY — test accuracy (%) after {contrasts.scale_of(study)}, an equal tuned budget for every "
                   f"model, from study {study.name}: it ranks the models at this budget and is not comparable with the "
                   "paper's converged numbers (none is set beside it; see the study page for them as context)."
                   if proxy else f"Table I — test accuracy (%) vs the paper, from study {study.name}; paper within one "
                   "run's range only for n ≥ 3.")
        blocks.append(frame_table(one, sections.table_one_columns(proxy), caption=caption,
                                  csv=folder + "table_i.csv" if (out_dir / study.name / "table_i.csv").exists() else None,
                                  row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
        if (one["ci_clipped"] | one["pi_clipped"]).any():
            blocks.append(Note(sections.CLIPPED_NOTE, "warn"))
    two = tables.table_two(study.table, study.costs)
    if len(two):
        blocks.append(frame_table(two, sections.table_two_columns(), caption=f"Table II — cost per model, from study "
                                  f"{study.name} (1 multiply-add = 1 FLOP).",
                                  csv=folder + "table_ii.csv" if (out_dir / study.name / "table_ii.csv").exists() else None,
                                  row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
    return (study.name, blocks) if blocks else None


def write_study_report(study: StudyRun, folder: Path) -> Path:
    """Write one study's page, figures and tables into `folder`; returns the page.

    A section is written only when the study measured what it shows: Tables I and II and the claims only
    for a study that trained the paper's baselines, the search plots only for a search study, and so on.
    """
    out = sections.Outputs(folder)
    table = study.table
    main = tables.main_rows(table)
    margin = contrasts.equivalence_margin(study.provenance)
    # the paper's claims and Tables I/II are about LR-Net against its baselines: only a study that trained them
    baselines = tables.trained_baselines(table)
    proxy = summary.is_proxy(study)
    table_one = tables.table_one(table if baselines else table.iloc[0:0], proxy)
    versus = contrasts.baselines_vs_lrnet(table, margin)
    table_two = tables.table_two(table, study.costs)
    # the paper's claims are about its converged networks: a proxy's numbers never decide them
    claims = check_claims(versus, table_two, set(main["model"])) if baselines and not proxy else []
    palette = figures.model_palette(table["model"].dropna().astype(str))
    book = ReportBook(f"Study {study.name}", _subtitle(study), provenance.study_footer(study))
    ablations = contrasts.by_axis(study)

    _summary(book, study, table_one, claims, ablations)
    sections.run_section(book.section("Run"), study)
    if baselines:
        sections.table_one_section(book.section("Table I — accuracy vs the paper"), out, table_one, versus, main, study)
        sections.table_two_section(book.section("Table II — cost"), out, table_two)
    contrasts.kind_of(study).sections(book, out, study, Page(main, palette, ablations))
    if baselines and not proxy:
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
    if len(lrnet) and lrnet["paper"].notna().any():
        clipped = f" ({display.CLIPPED} cut to [0, 100])" if lrnet["ci_clipped"].any() else ""
        book.summary.append(Note(f"LR-Net test accuracy (%), ours [95% CI{clipped}] vs the paper:", "info", [
            f"{r['dataset']} ({display.text(r['protocol'])}): {display.pts(r['mean'])} "
            f"{display.accuracy_interval(r['ci_low'], r['ci_high'], r['ci_clipped'])}, n = {r['n']} — paper "
            f"{display.pts(r['paper'])}"
            + (" (outside the range of one run of ours)" if sections.paper_in_range_cell(r)[1] == "flag" else "")
            for r in lrnet.to_dict("records") if not r["low_data"]
        ]))
    margin = contrasts.equivalence_margin(study.provenance)
    counts = [f"{axis}: {summary.verdict_counts(result['verdict'], margin)}"
              for axis, result in ablations.items() if not isinstance(result, str) and not result.empty]
    if counts:
        book.summary.append(Note("Ablations, each variant vs the axis's reference (Holm, α = 0.05; equivalent: "
                                 f"shown within ±{margin:g} pts by TOST; inconclusive: neither):", "info", counts))
    caveats = [*study.problems]
    if tables.trained_baselines(study.table) and summary.is_proxy(study):
        caveats.append(f"The paper's claims are not checked: this study trained a PROXY ({contrasts.scale_of(study)}), and "
                       "the claims are about converged networks; a short-budget ranking neither supports nor refutes "
                       "them. `--profile paper` checks them.")
    mde = sections.quick_mde_sentence(study)
    if mde:
        caveats.append(mde)
    missing = sections.missing_note(study)
    if missing:
        book.summary.append(missing)
    caveats.append(_protocol_caveat(study.table))
    book.summary.append(Note("Read with care:", "warn", caveats))


def _protocol_caveat(table: pd.DataFrame) -> str:
    protocols = set(table["protocol"].dropna().astype(str))
    text = ("The authors used the test set as the validation set (early stopping on it); this kit holds out a "
            "validation split from the training data and evaluates the test set once, on the best-validation "
            "weights.")
    if any(p.startswith("kfold") for p in protocols):
        text += (" Rows marked kfold-test use stratified k-fold on the test split only (no training split "
                 "available): they are not directly comparable with the paper's numbers.")
    return text


