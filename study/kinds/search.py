"""The `search` kind: an Optuna TPE search over the MK-block space of the study's `[search]` table, single-objective
(validation accuracy) or a Pareto front of accuracy and FLOPs (`objectives = ["accuracy", "flops"]`); its top
candidates are trained again at more seeds before the index calls one the best (`study.confirm`)."""

from __future__ import annotations

import optuna

from study import confirm, plan
from study.cells import Context, sampler_seed
from study.kinds.base import StudyKind
from study.kinds.registry import register
from study.objectives import search_objective
from study.report import sections, summary


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
        return plan.search_plan(ctx, samples, profile)

    def findings(self, study):
        return summary.search_findings(study)

    def sections(self, book, out, study, page) -> None:
        sections.pareto_section(book, out, study.table, page.palette)
        if study.journal is not None or study.storage_url:
            sections.search_section(book.section("Search"), out, study)
        sections.robustness_section(book, out, study.table, page.palette)


SEARCH = register(SearchKind())
