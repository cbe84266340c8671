"""The `grid` kind: every variant × dataset × seed (× rung of a ladder) trained once, each variant compared with
the study's reference (contrasts on the index, the study page and contrasts.csv).

Its cells are queued seed-major (every variant of seed 0, then of seed 1, …; rung-major first in a ladder), so a
run stopped by its guard leaves whole paired seeds; Optuna's GridSampler is the sampler, the queue its order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import TrialState

from study import plan, tuning
from study.cells import Cell, Context, cell, rung_id
from study.kinds.base import StudyKind
from study.kinds.registry import register
from study.objectives import grid_objective
from study.report import sections
from study.studies import ResolvedVariant


class GridKind(StudyKind):
    name = "grid"
    description = "every variant × dataset × seed, each variant compared with the reference"
    tunable = True
    contrasts = True
    adaptive_seeds = True
    queued = True

    def cells(self, ctx: Context) -> Iterator[Cell]:
        """Rung-major, then seed-major (every variant of seed 0, then of seed 1, …): a run stopped by its guard
        leaves whole rungs and whole paired seeds."""
        for rung in ctx.rungs:
            at = ctx.at(rung)
            for seed in ctx.seeds:
                for dataset in ctx.datasets:
                    for v in ctx.variants:
                        yield cell(at, v.label, dataset, seed)

    def expected_rows(self, ctx: Context) -> int:
        return len(ctx.rungs) * len(ctx.variants) * len(ctx.datasets) * len(ctx.seeds) * len(ctx.levels)

    def missing(self, ctx: Context) -> int:
        finished = {k: r for k, r in ctx.table.finished().items() if r.get("profile") == ctx.profile}
        return sum(not c.done(finished) for c in self.cells(ctx))

    def make_study(self, ctx: Context, storage: optuna.storages.BaseStorage) -> optuna.Study:
        space = {"variant": [v.label for v in ctx.variants], "dataset": list(ctx.datasets), "seed": list(ctx.seeds)}
        if ctx.rungs != ("",):
            space["rung"] = [rung_id(r) for r in ctx.rungs]
        return optuna.create_study(study_name=ctx.spec.name, storage=storage, sampler=_QueuedGridSampler(space, seed=0),
                                   pruner=optuna.pruners.NopPruner(), direction="maximize", load_if_exists=True)

    def objective(self, ctx: Context):
        return grid_objective(ctx)

    def queue(self, ctx: Context, study: optuna.Study, reorder: bool = False) -> None:
        """Queue the missing cells seed-major; `reorder` (only before any worker runs) first puts a resumed run's
        queue back in that order (`_requeue_seed_major`)."""
        if reorder:
            _requeue_seed_major(self, ctx, study)
        done = ctx.table.finished()
        held = set()
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
            params = t.system_attrs.get("fixed_params") or t.params
            held.add((params.get("variant"), params.get("dataset"), params.get("seed"), params.get("rung", 0)))
        for c in self.cells(ctx):
            if (c.variant.label, c.dataset, c.seed, rung_id(c.rung)) not in held and not c.done(done):
                study.enqueue_trial(c.params)

    def variant_summaries(self, ctx: Context) -> dict[str, Any]:
        return {v.label: _variant_summary(ctx.resolved(v.label)) for v in ctx.variants}

    def plan(self, ctx: Context, samples: int, profile: bool) -> plan.StudyPlan:
        cells = plan.planned_cells(ctx, self.cells(ctx))
        return plan.StudyPlan(ctx.spec.name, self.name, ctx.profile, cells, plan.cell_seconds(ctx, cells, profile),
                              tuning=tuning.missing_points(ctx))

    def sections(self, book, out, study, page) -> None:
        if page.contrasts:
            sections.ablation_section(book.section("Ablations"), out, study, page.contrasts)
            sections.transfer_section(book, out, study, page.contrasts)
        sections.curves_section(book, out, study, page.main)
        sections.pareto_section(book, out, study.table, page.palette)
        sections.robustness_section(book, out, study.table, page.palette)


class _QueuedGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, tolerant of the seed-major queue: an enqueued trial carries no grid id, and
    GridSampler's end-of-grid bookkeeping (which would fail on it) has nothing to do for it; the runner
    stops by the results table's missing cells, not by the grid."""

    def after_trial(self, study, trial, state, values) -> None:
        if "grid_id" in study._storage.get_trial_system_attrs(trial._trial_id):
            super().after_trial(study, trial, state, values)


def _requeue_seed_major(kind: GridKind, ctx: Context, study: optuna.Study) -> None:
    """A resumed run keeps the seed-major order: Optuna re-queues a dead worker's trial at the end of the queue
    (behind the next seed's cells), so when the waiting trials are out of order they are withdrawn (failed, marked
    "requeued") and `queue` queues the missing cells again in order. Only before any worker runs."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    order = {(c.variant.label, c.dataset, c.seed, rung_id(c.rung)): i for i, c in enumerate(kind.cells(ctx))}

    def position(trial: optuna.trial.FrozenTrial) -> float:
        p = trial.system_attrs.get("fixed_params") or {}
        return order.get((p.get("variant"), p.get("dataset"), p.get("seed"), p.get("rung", 0)), float("inf"))

    positions = [position(t) for t in waiting]
    if positions == sorted(positions):
        return
    for trial in waiting:
        study._storage.set_trial_user_attr(trial._trial_id, "requeued", True)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _variant_summary(resolved: ResolvedVariant) -> dict[str, Any]:
    model = resolved.model
    return {"network": model.name, "match": resolved.variant.match,
            "width_multiplier": model.spec.blocks[0].width_multiplier if model.spec else None,
            "flops": resolved.flops, "params": resolved.params, "raw_flops": resolved.raw_flops,
            "raw_params": resolved.raw_params}


GRID = register(GridKind())
