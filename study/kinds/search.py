"""The `search` kind: an Optuna TPE search over the MK-block space of the study's `[search]` table, single-objective
(validation accuracy) or a Pareto front of accuracy and FLOPs (`objectives = ["accuracy", "flops"]`); its top
candidates are trained again at more seeds before the index calls one the best (`study.confirm`).

Its plan counts trials of its budget and checks its FLOPs/params bands on specs drawn uniformly from the search
space (no training): the share they reject is the share of the space the bands cut away (TPE, after its random
start-up trials, samples where good trials were, so its own rejection rate differs)."""

from __future__ import annotations

import statistics
from collections import Counter

import optuna
import pandas as pd

from study import confirm, plan, stats
from study.blocks import network_complexity
from study.capacity import scaled
from study.cells import Context, sampler_seed
from study.kinds.base import StudyKind
from study.kinds.registry import register
from study.models import resolve_model
from study.objectives import sample_network, search_objective
from study.report import display, figures, optuna_search, sections, summary, tables
from study.report.html import Note
from study.results import load_rows
from study.studies import Variant, variant_network


class SearchKind(StudyKind):
    name = "search"
    description = "an Optuna search over the MK-block space (one objective, or accuracy and FLOPs: a Pareto front)"
    roles = {"variant": "variant", "seed": "replicate"}
    needs_variants = False
    prunes = True

    def expected_rows(self, ctx: Context) -> int:
        """Its trial budget (an upper bound: a rejected spec writes no row)."""
        return ctx.profile_spec.n_trials

    def missing(self, ctx: Context) -> int:
        """Trials left of the budget: one row per trained trial, pruned ones included (not the confirming seeds')."""
        finished = {k: r for k, r in ctx.table.finished().items() if r.get("profile") == ctx.profile}
        return max(0, self.expected_rows(ctx) - sum(r.get("seed") == ctx.seeds[0] for r in finished.values()))

    def make_study(self, ctx: Context, storage: optuna.storages.BaseStorage) -> optuna.Study:
        space = ctx.spec.search
        sampler = optuna.samplers.TPESampler(seed=sampler_seed(ctx), n_startup_trials=max(2, min(10, ctx.profile_spec.n_trials // 3)))
        pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                  "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(ctx.cfg.epochs, 1)),
                  "none": optuna.pruners.NopPruner()}[space.pruner]
        directions = ["maximize", "minimize"] if len(space.objectives) > 1 else ["maximize"]
        return optuna.create_study(study_name=ctx.spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                   directions=directions, load_if_exists=True)

    def objective(self, ctx: Context):
        return search_objective(ctx)

    def finish(self, ctx: Context, deadline: float) -> None:
        confirm.confirm(ctx, deadline)  # no best point rests on one seed

    def plan(self, ctx: Context, samples: int, profile: bool) -> plan.StudyPlan:
        return search_plan(ctx, samples, profile)

    def findings(self, study):
        return search_findings(study)

    def sections(self, book, out, study, page) -> None:
        sections.pareto_section(book, out, study.table, page.palette)
        if study.journal is not None or study.storage_url:
            search_section(book.section("Search"), out, study)
        sections.robustness_section(book, out, study.table, page.palette)


def search_plan(ctx: Context, samples: int = 200, profile: bool = True) -> plan.StudyPlan:
    """A search study's plan: trials done of its budget, the bands' rejected share, seconds per trial."""
    rows = [r for r in load_rows(ctx.results_path) if r.get("profile") == ctx.profile and r.get("status") != "failed"
            and r.get("seed") == ctx.seeds[0]]  # trials of the search, not its candidates' confirming seeds
    rejected, reasons = band_rejection(ctx, samples) if samples else (0, Counter())
    trained = [float(r["wall_s"]) for r in plan.ok_rows(ctx.results_path, ctx.profile)]
    estimate = plan.StudyPlan(ctx.spec.name, ctx.spec.kind, ctx.profile, [], {}, trials=ctx.profile_spec.n_trials,
                              trials_done=len(rows), band_samples=samples, band_rejected=rejected,
                              band_reasons=dict(reasons))
    if estimate.missing:
        if trained:
            estimate.seconds["trial"] = (statistics.fmean(trained), "measured")
        else:  # the base network stands in for a typical sampled spec
            base = resolve_model(variant_network(ctx.spec, _base_variant()))
            if base.spec is not None:
                base = resolve_model(scaled(base.spec, ctx.profile_spec.width))
            flops = network_complexity(base.spec)["flops"] if base.spec is not None else None
            rates = {"measured": plan.seconds_per_flop(ctx)}
            estimate.seconds["trial"] = plan.estimate_seconds(ctx, "", base, flops, {}, rates, profile)
    return estimate


def _base_variant() -> Variant:
    return Variant(label="base")


def band_rejection(ctx, samples: int = 200, seed: int = 0) -> tuple[int, Counter]:
    """How many of `samples` specs drawn uniformly from a search space the FLOPs/params bands reject, and why."""
    space = ctx.spec.search
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    reasons: Counter = Counter()
    for _ in range(samples):
        model, _ = sample_network(study.ask(), ctx)
        cost = network_complexity(model.spec)
        for key, band in (("flops", space.flops_band), ("params", space.params_band)):
            if not band[0] <= cost[key] <= band[1]:
                reasons[f"{key} {'below' if cost[key] < band[0] else 'above'} the band"] += 1
                break
    return sum(reasons.values()), reasons


def search_findings(study) -> list[dict[str, str]]:
    """The search's best point in one line, with the seeds behind it: its top candidates were trained again at more
    seeds (`study.confirm`), and the best is the one with the best mean test accuracy over its seeds, with its 95 % CI;
    a point that rests on one seed is called a candidate, not a finding."""
    rows = tables.ok_rows(study.table)
    rows = rows.dropna(subset=[tables.ACCURACY])  # every row of a search study is a trial or a confirming seed
    if rows.empty:
        return []
    trials = rows["variant"].nunique()
    points = []
    for (variant, dataset), group in rows.groupby(["variant", "dataset"], sort=False):
        values = pd.to_numeric(group[tables.ACCURACY]).to_numpy() * tables.SCALE
        mean, low, high, n = stats.mean_ci(values)
        points.append((n, mean, low, high, variant, dataset, summary.number(group["flops"].median())))
    confirmed = [p for p in points if p[0] >= 3]
    if confirmed:
        n, mean, low, high, variant, dataset, flops = max(confirmed, key=lambda p: p[1])
        return [{"kind": "inconclusive", "verdict": f"best of {len(confirmed)} confirmed", "css": "muted", "answer": (
            f"Best of the search's {trials} trained points, after its top {len(confirmed)} were trained again: {variant} "
            f"at {mean:.2f} % test accuracy [95 % CI {low:.2f}, {high:.2f}] over {n} seeds ({display.mega(flops)} MFLOPs) "
            f"on {dataset}. Each point's seeds are on the study page; compare it with the reference in a grid study "
            "before calling it better.")}]
    n, mean, low, high, variant, dataset, flops = max(points, key=lambda p: p[1])
    return [{"kind": "inconclusive", "verdict": "candidate", "css": "muted", "answer": (
        f"Best of {len(rows)} trained trials: {variant} at {mean:.2f} % test accuracy ({display.mega(flops)} MFLOPs) "
        f"on {dataset}, {n} seed{'s' if n != 1 else ''}: a candidate to confirm over seeds against the reference, "
        "not a finding.")}]


def search_section(section, out, study) -> None:
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


SEARCH = register(SearchKind())
