"""A study kind of a user's own, added the documented way (docs/architecture.md, "Extending the kit"): this module
and nothing else. `kind = "noise"` trains only the study's reference, at every seed, and reports the seed-to-seed
spread of its test accuracy: the noise floor a study's equivalence margin and seed count should be sized from.

It registers itself when imported; `STUDY_KINDS=tests.toykind` makes the kit import it (workers inherit it).
"""

from __future__ import annotations

import math

import optuna
import pandas as pd

from study import plan, stats
from study.cells import Context, cell
from study.kinds.base import StudyKind
from study.kinds.registry import register
from study.objectives import grid_objective
from study.report import display, tables
from study.report.html import Note, frame_table


class NoiseKind(StudyKind):
    name = "noise"
    description = "the reference alone at every seed: the seed-to-seed spread of its accuracy"
    roles = {"variant": "variant", "is_reference": "reference", "seed": "replicate"}
    queued = True

    def cells(self, ctx: Context):
        reference = ctx.spec.reference()
        for seed in ctx.seeds:
            for dataset in ctx.datasets:
                yield cell(ctx, reference.label, dataset, seed)

    def expected_rows(self, ctx: Context) -> int:
        return len(ctx.seeds) * len(ctx.datasets)

    def missing(self, ctx: Context) -> int:
        finished = ctx.table.finished()
        return sum(not c.done(finished) for c in self.cells(ctx))

    def make_study(self, ctx: Context, storage) -> optuna.Study:
        return optuna.create_study(study_name=ctx.spec.name, storage=storage, direction="maximize", load_if_exists=True,
                                   sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(self, ctx: Context):
        return grid_objective(ctx)  # one queued cell per trial, as a grid's

    def queue(self, ctx: Context, study: optuna.Study, reorder: bool = False) -> None:
        done = ctx.table.finished()
        waiting = {tuple(sorted((t.system_attrs.get("fixed_params") or {}).items()))
                   for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
        for c in self.cells(ctx):
            if not c.done(done) and tuple(sorted(c.params.items())) not in waiting:
                study.enqueue_trial(c.params)

    def plan(self, ctx: Context, samples: int, profile: bool) -> plan.StudyPlan:
        cells = plan.planned_cells(ctx, self.cells(ctx))
        return plan.StudyPlan(ctx.spec.name, self.name, ctx.profile, cells, plan.cell_seconds(ctx, cells, profile))

    def findings(self, study) -> list[dict[str, str]]:
        return [{"kind": "inconclusive", "css": "muted", "verdict": "noise floor",
                 "answer": f"{r['dataset']}: SD {r['sd']:.2f} points over {r['n']} seeds (mean {r['mean']:.2f} %)."}
                for r in spread(study.table).to_dict("records")]

    def sections(self, book, out, study, page) -> None:
        table = spread(study.table)
        section = book.section("Seed spread")
        section.add(Note("Test accuracy of the reference over its seeds: the noise every contrast must beat."))
        section.add(frame_table(table, {"dataset": ("dataset", display.text), "n": ("n", display.count),
                                        "mean %": ("mean", display.pts), "SD": ("sd", display.pts)},
                                caption="Seed-to-seed spread.", csv=out.csv(table, "seed_spread")))


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD (points) of the test accuracy over seeds, per dataset."""
    records = []
    for dataset, group in tables.ok_rows(table).groupby("dataset", sort=False):
        values = pd.to_numeric(group[tables.ACCURACY]).to_numpy() * tables.SCALE
        mean, _, _, n = stats.mean_ci(values)
        records.append({"dataset": dataset, "n": n, "mean": mean, "sd": float(values.std(ddof=1)) if n > 1 else math.nan})
    return pd.DataFrame(records, columns=["dataset", "n", "mean", "sd"])


NOISE = register(NoiseKind())
