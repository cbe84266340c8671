"""The evidence sections of a study's page (run, Tables I and II, ablations, curves, Pareto front, search,
robustness), each written only when the study measured what it shows, and the files written beside it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from study import stats
from study.capacity import TOLERANCE
from study.report import contrasts, display, figures, summary, tables
from study.report.curves import METRIC_NAMES, drawable, drawn_metrics, load_histories, mean_curves
from study.report.html import (
    Facts,
    Figure,
    Note,
    ReportBook,
    Section,
    Table,
    frame_table,
)
from study.report.load import StudyRun

_GENERATED = ("*.csv", "*.svg", "index.html")


class Outputs:
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



def quick_mde_sentence(study: StudyRun) -> str | None:
    """For quick-profile studies: the typical minimum detectable difference, in one sentence."""
    if "quick" not in study.profile:
        return None
    # Search trials run one seed each by design; they would drag the typical cell size to 1.
    mde = stats.typical_mde(study.table[study.table["axis"] != "search"])
    if pd.isna(mde):
        return ("Quick profile: too few seeds per cell to estimate the minimum detectable difference; "
                "treat every difference as undetectable.")
    return (f"Quick profile (CPU-budgeted): with this study's seeds and seed-to-seed spread the typical minimum "
            f"detectable difference between two unpaired cells is {mde:.1f} points (two-sided, α = 0.05, power 0.8); "
            f"differences smaller than that are not detectable here. Paired contrasts have their own MDE (their "
            f"table's MDE column), usually smaller: pairing by seed removes the seed-to-seed spread they share.")


def missing_note(study: StudyRun) -> Note | None:
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
        f"seed) run.", "warn", [cell_label(r) for r in unfinished.to_dict("records")], collapse_over=8,
    )


def cell_label(record: dict) -> str:
    return (f"{record['axis']} · {record['variant']} · {record['dataset']} · {record['degradation']} · "
            f"{record['protocol']} fold {record['fold']} · seed {record['seed']} → {record['status']}")


def describe_protocol(protocol: str) -> str:
    if protocol == "val-split":
        return "val-split: validation held out from the training data; test set evaluated once"
    match = re.fullmatch(r"kfold-test:(\d+)", protocol)
    if match:
        return f"{protocol}: stratified {match.group(1)}-fold cross-validation on the test split only"
    if protocol == "paper":
        return "paper: the authors' protocol (the test set doubles as validation set)"
    return protocol


def unique(series: pd.Series) -> str:
    values = sorted({str(v) for v in series.dropna() if str(v)})
    return ", ".join(values) if values else "–"


def run_section(section: Section, study: StudyRun) -> None:
    """What ran, on what, with what, and when; then statuses and runs without a result."""
    table, prov = study.table, study.provenance
    axes = ", ".join(f"{a} ({table.loc[table['axis'] == a, 'variant'].nunique()} variants)"
                     for a in table["axis"].dropna().unique())
    datasets = prov.get("datasets") if isinstance(prov.get("datasets"), dict) else {}
    baselines = sorted({m for m in table["model"].dropna().astype(str) if tables.is_baseline(m)})
    facts = [
        ("study", str(prov.get("study", study.name))),
        ("what ran", f"{len(table)} runs · axes: {axes or '–'} · models: {unique(table['model'])} · "
                     f"datasets: {unique(table['dataset'])} · seeds: {unique(table['seed'])}"),
        ("profile", summary.profile_line(study)),
        ("equivalence margin", f"±{contrasts.equivalence_margin(prov):g} accuracy points"),
        ("protocol", "; ".join(describe_protocol(p) for p in sorted(set(table["protocol"].dropna().astype(str))))
         or str(prov.get("protocol", "–"))),
        ("baselines", describe_baselines(baselines)),
        ("data", "; ".join(f"{k}: {v}" for k, v in datasets.items()) or "not recorded"),
        ("device", str(prov.get("device") or unique(table["device"]))
         + (f" ({prov['device_name']}, {prov.get('threads', '?')} threads)" if prov.get("device_name") else "")),
        ("versions", f"torch {prov.get('torch_version') or unique(table['torch_version'])} · "
                     f"python {prov.get('python', '–')} · precision {unique(table['precision'])}"),
        ("git commit", str(prov.get("git_commit") or unique(table["git_commit"]))),
        ("started / finished", f"{display.text(prov.get('started'))} / "
                               f"{display.text(prov.get('finished') or ('not yet' if prov.get('started') else None))}"),
        ("total compute", f"{display.duration(tables.compute_seconds(table))} "
                          f"(sum of wall_s over {len(table)} runs)"),
        ("statuses", ", ".join(f"{r.status} {r.rows}" for r in tables.status_counts(table).itertuples())),
    ]
    mde = quick_mde_sentence(study)
    if mde:
        facts.append(("detectable difference", mde))
    section.add(Facts(facts))
    unfinished = tables.unfinished_cells(table)
    if len(unfinished) and missing_note(study) is None:  # else the summary's "missing" box lists them
        section.add(Note(f"{len(unfinished)} runs ended without an ok result:", "info",
                         [cell_label(r) for r in unfinished.to_dict("records")], collapse_over=8))


def describe_baselines(baselines: list[str]) -> str:
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


#: Table I's columns that set a number beside the paper's: never shown for a proxy or a low-data protocol.
PAPER_COLUMNS = ("paper", "Δ vs paper", "MDE (one run)", "paper within one run's range")


def table_one_columns(proxy: bool = False) -> dict:
    """Table I's columns (header → column and formatter, or a function of the row); the index shows them too.
    A proxy's Table I has none of the paper's numbers beside its own (`PAPER_COLUMNS`)."""
    columns = _table_one_columns()
    return {k: v for k, v in columns.items() if k not in PAPER_COLUMNS} if proxy else columns


def paper_context(table_one: pd.DataFrame) -> str:
    """The paper's converged Table I numbers for a proxy's datasets, as context only, in one line."""
    models = [m for m in dict.fromkeys(tables.paper_model(m) for m in table_one["model"].astype(str)) if m]
    datasets = list(dict.fromkeys(table_one["dataset"].astype(str)))
    values = [f"{m} {tables.PAPER_TABLE_I[m][d]:.2f} % on {d}" for m in models for d in datasets
              if d in tables.PAPER_TABLE_I[m]]
    return ("For context only, the paper's converged single-run numbers (not comparable with a short-budget proxy): "
            + "; ".join(values) + ".") if values else ""


def _table_one_columns() -> dict:
    return {
        "dataset": ("dataset", display.text), "model": ("model", display.text),
        "protocol": ("protocol", display.text), "n": ("n", display.count),
        "accuracy %": ("mean", display.pts),
        "95% CI": lambda r: display.accuracy_interval(r["ci_low"], r["ci_high"], r["ci_clipped"]),
        "one run, 95% PI": lambda r: display.accuracy_interval(r["pi_low"], r["pi_high"], r["pi_clipped"]),
        "lr": ("lr", display.text),
        "paper": ("paper", display.pts), "Δ vs paper": lambda r: display.pts(r["diff_vs_paper"], signed=True),
        "MDE (one run)": ("mde_one_run", display.pts),
        "paper within one run's range": paper_in_range_cell,
    }


def table_two_columns() -> dict:
    """Table II's columns; the index shows them too."""
    return {
        "model": ("model", display.text), "rows": ("rows", display.count), "params": ("params", display.count),
        "MFLOPs": ("flops", display.mega), "train img/s": ("train_img_per_s", display.rate),
        "inference img/s": ("infer_img_per_s", display.rate), "train img/s, fast": ("train_img_per_s_fast", display.rate),
        "inference img/s, fast": ("infer_img_per_s_fast", display.rate), "spread %": ("spread_pct", display.rate),
        "peak memory MB": ("peak_mem_mb", display.rate), "batch": ("batch", display.count),
        "measured": ("source", display.text), "device": ("devices", display.text),
        "FLOPs counted by": ("flops_counter", display.text),
    }


def table_one_section(section: Section, out: Outputs, table_one: pd.DataFrame, versus: pd.DataFrame,
                       main: pd.DataFrame, study: StudyRun) -> None:
    axes = sorted(tables.table_one_axes(main))
    source = f"the study's axis {', '.join(axes)}" if axes else "all axes (each run once)"
    proxy = summary.is_proxy(study)
    if proxy:
        context = paper_context(table_one)
        section.add(Note(
            f"PROXY Table I: test accuracy (%) on clean data from {source} after {contrasts.scale_of(study)} — an equal "
            "budget for every model, each at its tuned learning rate (lr column): mean and 95% t-interval over seeds. "
            "It ranks the models at this small budget; it does not reproduce the paper's converged accuracies, so no "
            "number of it is set beside the paper's and none feeds a claim verdict (`--profile paper` does both).",
            "warn", [context] if context else []))
    else:
        section.add(Note(
        f"Test accuracy (%) on clean data from {source}: mean and 95% t-interval over seeds (n seeds; k-fold "
        "folds are averaged within a seed). “Paper” is the paper's Table I (VGG-16 ↔ vgg16_*, InceptionV3 ↔ "
        "inception_v3_*, LR-Net ↔ lrnet_paper); Δ = ours − paper. The paper's numbers are single runs: they "
        "are checked against our 95% prediction interval for one run (n ≥ 3), not against the CI of our mean, "
        "and called in line with ours only when also |Δ| ≤ the MDE, the gap of one run this design detects "
        "with 80% power."))
    full, low = table_one[~table_one["low_data"]], table_one[table_one["low_data"]]
    columns = table_one_columns(proxy)
    if len(full):
        caption = f"Table I PROXY: accuracy after {contrasts.scale_of(study)}." if proxy else "Table I reproduction."
        section.add(frame_table(full, columns, caption=caption, csv=out.csv(full, "table_i"),
                                row_class=lambda r: "reference" if r["model"] == tables.LRNET else "", collapse_over=30))
    if len(low):
        sub = section.subsection("Low-data table: k-fold on the test split only")
        sub.add(Note("Only a test split was available for these datasets: each model trained on 4/5 of it and was "
                     "tested on the remaining fold, the fold rotating over seeds. This is a different, smaller-data "
                     "protocol than the paper's, so these numbers are not put beside the paper's.", "warn"))
        low_columns = {k: v for k, v in columns.items() if k not in PAPER_COLUMNS}
        sub.add(frame_table(low, low_columns, caption="Low-data protocol (not comparable with the paper).",
                            csv=out.csv(low, "table_i_low_data"),
                            row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))
    if (table_one["ci_clipped"] | table_one["pi_clipped"]).any():
        section.add(Note(CLIPPED_NOTE, "warn"))
    points = tables.model_points(main)
    section.add(out.figure(figures.to_svg(figures.ablation_figure(points, "model", xlabel="model (LR-Net in vermillion)")),
                           "table_i_models", "Test accuracy per model: dots are seeds, bars the mean with its 95% "
                           "t-interval (cut to [0, 100]).", csv=out.csv(points, "table_i_points")))
    tuned = tables.tuning_table(study.tuning, study.profile)
    if len(tuned):
        tuning_subsection(section.subsection("Tuning: the same budget for every model"), out, tuned,
                          study.tuning[study.profile]["budget"])
    if not versus.empty:
        versus_subsection(section.subsection("LR-Net vs each baseline"), out, versus)


def _tuning_seeds(budget: dict) -> str:
    seeds = int(budget.get("seeds", 1))
    return f"seed {budget['seed']}" if seeds == 1 else f"seeds {budget['seed']}–{budget['seed'] + seeds - 1} per point"


def tuning_subsection(sub: Section, out: Outputs, tuned: pd.DataFrame, budget: dict) -> None:
    sub.add(Note(
        f"Before Table I each model ran the same {budget['points'] * int(budget.get('seeds', 1))} tuning runs: learning rate "
        f"{', '.join(f'{v:g}' for v in budget['lr'])} × weight decay {', '.join(f'{v:g}' for v in budget['weight_decay'])} "
        f"on {budget['dataset']} ({_tuning_seeds(budget)}), each at the Table I budget ({budget['per_point']}), selected "
        f"on {budget.get('selected_on', 'validation accuracy')}; the test split was not touched. Table I trains each "
        "model with its choice (its lr column)."))
    sub.add(frame_table(tuned, {
        "model": ("model", display.text), "lr": ("lr", lambda v: f"{v:g}"), "weight decay": ("weight_decay", lambda v: f"{v:g}"),
        "val accuracy % (chosen)": ("val_accuracy", display.pts), "every point: lr → val %": ("points", display.text),
    }, caption="Tuned learning rate (and weight decay) per model.", csv=out.csv(tuned, "tuning")))


def versus_subsection(sub: Section, out: Outputs, versus: pd.DataFrame) -> None:
    sub.add(Note("Δ = baseline − LR-Net in points, as every contrast of the kit reads (variant − reference; LR-Net is "
                 "the reference): a negative Δ and a baseline \"worse\" mean LR-Net is ahead. Paired by seed where at "
                 "least two seeds are shared, Welch otherwise; p-values Holm-adjusted across the baselines of each "
                 "dataset. Verdict: better / worse (t-test), equivalent within the margin (TOST), else inconclusive — "
                 "then read the CI and the minimum detectable difference (MDE)."))
    sub.add(frame_table(versus, {
        "dataset": ("dataset", display.text), "baseline": ("variant", display.text),
        "baseline %": ("mean_variant", display.pts), "LR-Net %": ("mean_reference", display.pts),
        "n": lambda r: f"{r['n_variant']} / {r['n_reference']}",
        "Δ (baseline − LR-Net)": lambda r: display.pts(r["diff"], signed=True),
        "95% CI": lambda r: display.difference_interval(r["ci_low"], r["ci_high"]),
        "p (Holm)": ("p_adjusted", display.p_value), "test": lambda r: "paired" if r["paired"] else "Welch",
        "MDE": ("mde", display.mde), "the baseline is": verdict_cell,
    }, caption="Each baseline against LR-Net.", csv=out.csv(versus, "baselines_vs_lrnet")))
    if beyond(versus, *tables.DIFFERENCE_BOUNDS):
        sub.add(Note(CLIPPED_NOTE, "warn"))


def beyond(frame: pd.DataFrame, low: float, high: float) -> bool:
    """Whether any CI of a comparison table reaches beyond [low, high] (and is shown cut to it)."""
    return bool(((frame["ci_low"] < low) | (frame["ci_high"] > high)).any())


def paper_in_range_cell(record: dict):
    """In line with the paper (green) only inside one run's range and within the MDE; outside the range flagged."""
    inside = record["paper_in_range"]
    if inside is pd.NA or inside is None or display.missing(inside):
        return ("– (n < 3)" if record["n"] < 3 and not pd.isna(record["paper"]) else "–", "muted")
    if not inside:
        return ("no: outside one run's range", "flag")
    if record.get("paper_agrees", True) and display.agrees(record["diff_vs_paper"], record.get("mde_one_run")):
        return ("yes", "good")
    return ("inside the range, but |Δ| > MDE", "muted")


def verdict_cell(record: dict):
    """A verdict styled by its kind: better good, worse bad, equivalent its own style, inconclusive muted."""
    verdict = str(record["verdict"])
    return (verdict, display.verdict_class(verdict, record.get("diff"), record.get("mde")))


def table_two_section(section: Section, out: Outputs, table_two: pd.DataFrame) -> None:
    measured = (table_two["source"] == "profiled alike").any()
    section.add(Note(
        ("Every model profiled alike (`python -m study profile MODEL --json`, each in its own process so peak "
         "memory is its own): the same batch, warm-up and repeats; throughput is the median of the repeats and "
         "“spread %” their range, the noise margin of the speed claim. “train/inference img/s” are the stock "
         "fp32 eager setting (the architecture); “, fast” the kit's fastest correct setting (the engineering). "
         if measured else
         "Medians over each model's ok trial rows, at each trial's own batch and precision: not a like-for-like "
         "speed comparison (a run of the paper study measures every model alike). ")
        + "Parameters are trainable parameters; FLOPs are fvcore counts per image where one multiply-add counts "
        "as one FLOP (so they equal MACs); peak memory in MB. Throughput depends on the device listed."))
    section.add(frame_table(table_two, table_two_columns(), caption="Table II: cost per model (1 multiply-add = 1 FLOP, fvcore).", csv=out.csv(table_two, "table_ii"),
        row_class=lambda r: "reference" if r["model"] == tables.LRNET else ""))


def ablation_section(section: Section, out: Outputs, study: StudyRun,
                      ablations: dict[str, pd.DataFrame | str]) -> None:
    table = study.table
    margin = contrasts.equivalence_margin(study.provenance)
    section.add(Note(
        "Each variant against the axis's reference (the paper configuration), per dataset and degradation: "
        "Δ = variant − reference in points with its 95% CI, paired by seed where possible, p-values "
        "Holm-adjusted across the axis's variants, and the minimum detectable difference (MDE, at the "
        f"Holm-adjusted α). Verdict: better / worse (t-test), equivalent within ±{margin:g} pts (TOST, "
        "Holm-adjusted), else inconclusive: the data can neither tell the variant from the reference nor bound "
        f"the difference. Equivalence margin: {summary.margin_line(study, pd.DataFrame())}."))
    costs = summary.costs(study)
    if costs:
        section.add(cost_table(costs, out.csv(pd.DataFrame(costs), "costs")))
    for axis, result in ablations.items():
        sub = section.subsection(f"Axis: {axis}")
        points = tables.axis_points(table, axis)
        if isinstance(result, str):
            sub.add(Note(result, "warn"))
        else:
            result = tables.sort_like(result, dataset=tables.dataset_order(result["dataset"]),
                                      variant=list(dict.fromkeys(points["variant"].astype(str))))
            rungs = {"rung": ("rung", display.text)} if "rung" in result.columns else {}
            sub.add(frame_table(result, {
                "dataset": ("dataset", display.text), "degradation": ("degradation", display.text),
                "variant": ("variant", display.text), **rungs, "n": lambda r: f"{r['n_variant']} / {r['n_reference']}",
                "variant %": ("mean_variant", display.pts), "reference %": ("mean_reference", display.pts),
                "Δ": lambda r: display.pts(r["diff"], signed=True),
                "95% CI (unadjusted)": lambda r: display.difference_interval(r["ci_low"], r["ci_high"]),
                "MDE": ("mde", display.mde), "verdict": verdict_cell,  # the answer first: the rest may scroll
                "CI at α/m (Holm's level)": lambda r: display.difference_interval(r["ci_adj_low"], r["ci_adj_high"]),
                "p": ("p_value", display.p_value), "p (Holm)": ("p_adjusted", display.p_value),
                "SD of Δ": ("sd", display.pts), "r within seed": ("correlation", _r),
            }, caption=f"Reference: {result['reference'].iloc[0]}"
                       + ("" if "rung" in result.columns else f", measured at {contrasts.scale_of(study)}")
                       + ". The CI at α/m is the interval at the level Holm's "
                       "first step tests (Bonferroni, m contrasts): it excludes 0 wherever the verdict is better or worse; "
                       "the unadjusted 95% CI can exclude 0 beside an inconclusive verdict. r within seed: the correlation "
                       "of variant and reference over seeds (pairing helps only when it is clearly positive).",
                csv=out.csv(result, f"ablation_{axis}")))
            design = design_table(study, result)
            if len(design):
                sub.add(frame_table(design, {k: (k, display.text) for k in design.columns},
                                    caption=f"Design vs measured: the SD each contrast was planned on "
                                            f"({study.provenance['design'].get('source', 'no source')}) beside the run's "
                                            "own; the MDE's range is its 95 % interval from the observed SD's "
                                            "uncertainty (χ² on n − 1 df).", csv=out.csv(design, f"design_{axis}")))
            if beyond(result, *tables.DIFFERENCE_BOUNDS):
                sub.add(Note(CLIPPED_NOTE, "warn"))
        for rung in contrasts.rung_order(study) or [""]:  # a ladder: one figure per rung (seeds pair within a rung)
            rows = table[table["rung"].fillna("").astype(str) == rung] if rung else table
            points = tables.axis_points(rows, axis)
            if not len(points):
                continue
            at = f" at {rung}" if rung else ""
            stem = f"ablation_{axis}" + (f"_{len(sub.blocks)}" if rung else "")
            sub.add(out.figure(figures.to_svg(figures.ablation_figure(points, axis)), stem,
                               f"Test accuracy per {axis} variant{at}: dots are seeds, bars the mean with its 95% "
                               f"t-interval (cut to [0, 100]); the reference is vermillion, its mean the dashed line.",
                               csv=out.csv(points, f"{stem}_points")))


def transfer_section(book: ReportBook, out: Outputs, study: StudyRun, ablations: dict[str, pd.DataFrame | str]) -> None:
    """A ladder study's transfer verdicts (the change of each contrast's Δ from the lowest to the highest rung)
    and, per contrast, Δ with its CI against the rung."""
    transfer = summary.transfer_study(study)
    if transfer.empty:
        return
    margin = contrasts.equivalence_margin(study.provenance)
    section = book.section("Transfer across rungs")
    section.add(Note(
        "Does each contrast hold as the scale grows? The change of Δ (variant − reference) from the lowest to the "
        "highest rung is paired by seed (the rung × variant interaction), Holm-adjusted across the contrasts: "
        f"“holds across rungs” when two one-sided tests show it within ±{margin:g} points, “scale-dependent” when "
        "the t-test rejects “no change” (the change per doubling of the rungs' size: training images × width²), "
        "else inconclusive. Each rung's own Δ, CI and verdict are in the Ablations section."))
    section.add(Note("Transfer verdicts:", "info", [f"{r['verdict']}: {r['answer']}" for r in transfer.to_dict("records")]))
    section.add(frame_table(transfer, {
        "contrast": ("contrast", display.text), "n": ("n", str),
        "Δ low": lambda r: display.pts(r["delta_low"], signed=True), "Δ high": lambda r: display.pts(r["delta_high"], signed=True),
        "change": lambda r: display.pts(r["delta"], signed=True),
        "95% CI": lambda r: display.difference_interval(r["ci_low"], r["ci_high"]),
        "CI at α/m": lambda r: display.difference_interval(r["ci_adj_low"], r["ci_adj_high"]),
        "per doubling": lambda r: display.pts(r["per_doubling"], signed=True),
        "p (Holm)": ("p_adjusted", display.p_value), "p TOST (Holm)": ("p_equivalence_adjusted", display.p_value),
        "MDE": ("mde", display.mde), "verdict": ("verdict", display.text),
    }, caption="Change of Δ from the lowest to the highest rung, in points; “CI at α/m” is the interval at the level "
               "the first Holm step tests (Bonferroni, m contrasts).", csv=out.csv(transfer, "transfer")))
    budgets = tables.ok_rows(study.table).groupby("rung")["budget_images"].median()
    for axis, result in ablations.items():
        if isinstance(result, str) or "rung" not in result.columns:
            continue
        per_rung = result.assign(budget_images=result["rung"].map(budgets))
        for variant in dict.fromkeys(transfer.loc[transfer["axis"] == axis, "variant"].astype(str)):
            stem = "transfer_" + "".join(c if c.isalnum() else "_" for c in variant)[:40]
            section.add(out.figure(figures.to_svg(figures.transfer_figure(per_rung, variant, margin)), stem,
                                   f"{variant} − {result['reference'].iloc[0]}: Δ and its 95% CI at each rung; the band "
                                   f"is the ±{margin:g}-point equivalence margin.",
                                   csv=out.csv(per_rung[per_rung["variant"].astype(str) == variant], f"{stem}_points")))


def _r(value) -> str:
    return "–" if display.missing(value) else f"{float(value):+.2f}"


def design_table(study: StudyRun, result: pd.DataFrame) -> pd.DataFrame:
    """Per contrast with a planned SD (`design` of the study file): planned and observed SD of the paired
    differences, the within-seed correlation, the observed MDE with its 95 % range, and whether it meets the
    design's MDE target (else the seeds that would, at the observed SD)."""
    design = study.provenance.get("design")
    if not isinstance(design, dict) or not design.get("sd"):
        return pd.DataFrame()
    target = float(design.get("mde_target") or 0)
    records = []
    for r in result.to_dict("records"):
        planned = design["sd"].get(str(r["variant"]))
        n, sd, mde = int(r["n_variant"]), float(r["sd"]), float(r["mde"])
        if planned is None or not r["paired"] or n < 2 or not np.isfinite(sd):
            continue
        low, high = stats.mde_range(sd, n, float(r["alpha_used"]))
        needed = stats.seeds_for_mde(sd, target, float(r["alpha_used"])) if target else None
        check = ("–" if not target else f"meets ≤ {target:g}" if mde <= target else
                 f"misses ≤ {target:g}: {needed} seeds would meet it at the observed SD" if needed else
                 f"misses ≤ {target:g}: more than 50 seeds at the observed SD")
        records.append({"contrast": f"{r['variant']} − {r['reference']}" + (f" · {r['rung']}" if r.get("rung") else ""),
                        "n": str(n), "planned SD": f"{planned:.2f}", "observed SD": f"{sd:.2f}",
                        "r within seed": _r(r["correlation"]), "MDE [95 % range]": f"{mde:.2f} [{low:.2f}, {high:.2f}]",
                        "design target": check})
    return pd.DataFrame(records)


def cost_table(costs: list[dict], csv: str | None = None) -> Table:
    """Each variant's cost as trained and, for capacity-matched variants, before matching (raw)."""
    return Table(
        ["variant", "network", "matched on", "width", "MFLOPs", "params", "raw MFLOPs", "raw params"],
        [[c["variant"], c["network"], c["match"], c["width"], c["mflops"], c["params"], c["raw_mflops"],
          c["raw_params"]] for c in costs],
        caption="Cost per variant (per image; 1 multiply-add = 1 FLOP). Matched variants had their widths scaled "
                "until their FLOPs (or params) matched the reference's; raw is the same variant before matching.",
        numeric=[False, False, False, True, True, True, True, True], csv=csv)


def curves_section(book: ReportBook, out: Outputs, study: StudyRun, main: pd.DataFrame) -> None:
    """Validation accuracy and training loss over steps, mean ± SD over seeds per variant (per variant and rung in a
    ladder: a rung's steps are its own); only curves with points."""
    label = "variant"
    if "rung" in main.columns and main["rung"].fillna("").astype(str).ne("").any():
        main = main.assign(curve_label=main["variant"].astype(str) + " · " + main["rung"].fillna("").astype(str))
        label = "curve_label"
    histories, missing = load_histories(main, study.run_dir, label=label)
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
    references = set(main.loc[main["is_reference"].map(tables.truthy), label].astype(str))
    palette = figures.curve_palette(curves["curve"], references | {tables.LRNET})
    for dataset in tables.dataset_order(curves["dataset"]):
        drawn = " and ".join(METRIC_NAMES[m] for m in drawn_metrics(curves, dataset))
        section.add(out.figure(figures.to_svg(figures.curves_figure(curves, dataset, palette)),
                               f"curves_{dataset}", f"{dataset}: {drawn}.", csv=csv))
    if missing:
        section.add(Note(f"{len(missing)} history files missing or unreadable:", "info", missing, collapse_over=8))


#: FLOP spans up to this (max/min − 1) draw no accuracy-vs-FLOPs front: FLOP-matched variants lie within
#: ±`capacity.TOLERANCE` of their reference, so two of them differ by at most (1 + t) / (1 − t) − 1 (10.5 % at ±5 %):
#: their spread is cost noise, not a cost axis
_SAME_COST = (1 + TOLERANCE) / (1 - TOLERANCE) - 1


def pareto_section(book: ReportBook, out: Outputs, table: pd.DataFrame, palette: dict[str, str]) -> None:
    """Accuracy against FLOPs, with the Pareto front: only when at least two networks have both."""
    points = tables.pareto_points(table)
    if len(points) < 2:
        return
    section = book.section("Accuracy vs FLOPs")
    columns = {"dataset": ("dataset", display.text), "network": ("network", display.text),
               "accuracy %": ("accuracy", display.pts), "MFLOPs": ("flops", display.mega),
               "params": ("params", display.count), "runs": ("n", display.count)}
    span = points.groupby("dataset")["flops"].agg(lambda f: f.max() / f.min() - 1)
    if (span <= _SAME_COST).all():  # no cost axis: a front would rank noise
        section.add(frame_table(points, columns, csv=out.csv(points, "pareto_points"), caption=(
            f"No Pareto front drawn: every network here costs {display.mega(points['flops'].min())}–"
            f"{display.mega(points['flops'].max())} MFLOPs (within {_SAME_COST:.1%} of each other, as FLOP-matched variants "
            "are), so a front would rank accuracy differences within the seed-to-seed noise by FLOP differences of a few "
            "percent. The comparisons above, with their intervals, answer which is more accurate.")))
        return
    section.add(Note("One point per network and dataset (mean clean test accuracy over its runs, median "
                     "FLOPs). The Pareto front — no other network both more accurate and cheaper — is "
                     "computed from this table; coloured points are the Table I models, grey the "
                     "ablation and search variants."))
    csv = out.csv(points, "pareto_points")
    section.add(out.figure(figures.to_svg(figures.pareto_figure(points, palette)), "pareto",
                           "Accuracy vs FLOPs with the Pareto front (vermillion).", csv=csv))
    front = points[points["on_front"]]
    section.add(frame_table(front, columns, caption=f"Pareto-optimal networks ({len(front)} of {len(points)} points; "
                            "all points in the CSV).", csv=csv))


def robustness_section(book: ReportBook, out: Outputs, table: pd.DataFrame, palette: dict[str, str]) -> None:
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
