"""What a study run will do, before it runs: its cells, their cost, what is done, and how long the rest takes.

Nothing trains here. A cell is one variant × dataset × seed (a robustness cell also tests every
degradation level), exactly the cells `study run` queues; it is done when `runs/<study>/results.jsonl`
holds a row for it (matched on study, variant, dataset, degradation, seed and profile; the protocol and
fold follow from the data found at run time). Time per cell comes from, in order:

1. `measured`: the mean `wall_s` of this variant's finished rows (same study and profile);
2. `measured, FLOPs-scaled`: seconds per FLOP of every finished row of this profile in the run
   directory (any study), times the cell's FLOPs;
3. `profiled`: a few timed training steps (`study.measure.time_training`, plain build, the profile's
   batch size and precision) of one network per study, times the profile's images per cell; the other
   MK variants are scaled by their FLOPs (`profiled, FLOPs-scaled`), registered baselines are timed
   themselves. It counts training steps only (no evaluation or data loading), is taken on this
   machine as loaded right now, and at the paper profile's epoch cap (early stopping usually ends
   sooner) overstates the epochs: a rough guide until the first rows give measured rates.

What a kind plans is its own (`StudyKind.plan`): a kind that lists its cells builds its `StudyPlan` from
`planned_cells` and `cell_seconds` here; a search counts trials instead (`study.kinds.search.search_plan`, which
also checks its FLOPs/params bands on specs drawn from its space).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from study import results
from study.kinds.registry import get_kind
from study.measure import time_training
from study.models import ResolvedModel, build_model
from study.profiles import ASSUMED_TRAIN_IMAGES
from study.studies import list_studies, load_study, study_path


@dataclasses.dataclass
class PlannedCell:
    """One cell a study run trains (or finds done)."""

    variant: str
    dataset: str
    seed: int
    levels: tuple[str, ...]  # degradation levels tested (one training)
    params: int | None
    flops: int | None
    done: bool
    rung: str = ""  # its ladder rung ("" = none)
    stale: bool = False  # a finished row of it trained another network or config (the study file was edited)

    @property
    def estimate_key(self) -> str:
        """The key of its seconds in `StudyPlan.seconds`."""
        return estimate_key(self.variant, self.rung)


def estimate_key(variant: str, rung: str = "") -> str:
    """A variant's key in `StudyPlan.seconds`: the variant, at its rung when there is a ladder."""
    return f"{variant} @ {rung}" if rung else variant


@dataclasses.dataclass
class StudyPlan:
    """The plan of one study under one profile."""

    study: str
    kind: str
    profile: str
    cells: list[PlannedCell]
    seconds: dict[str, tuple[float, str]]  # variant (or "trial") → (seconds per cell, how it was estimated)
    trials: int = 0  # a study whose sampler proposes its trials (a search): its trial budget; 0 = it lists its cells
    trials_done: int = 0
    band_samples: int = 0  # search: specs drawn to check the bands
    band_rejected: int = 0
    band_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    tuning: dict[str, int] = dataclasses.field(default_factory=dict)  # variant → tuning runs still to train first

    @property
    def by_trials(self) -> bool:
        """Whether the study is counted in trials of a budget (a search) rather than in listed cells."""
        return self.trials > 0

    @property
    def missing(self) -> int:
        """Cells (grid) or trials (search) still to run."""
        if self.by_trials:
            return max(0, self.trials - self.trials_done)
        return sum(not c.done for c in self.cells)

    @property
    def remaining_s(self) -> float:
        """Estimated seconds of the missing work (one process; workers divide it roughly)."""
        if self.by_trials:
            return self.missing * self.seconds.get("trial", (0.0, ""))[0]
        cells = [c.estimate_key for c in self.cells if not c.done] + [v for v, n in self.tuning.items() for _ in range(n)]
        return sum(self.seconds.get(v, (0.0, ""))[0] for v in cells)  # a tuning run costs what a cell of its variant does

    @property
    def stale(self) -> dict[str, int]:
        """Stale cells per variant: finished rows that trained another network or training config than the study
        file resolves to now; `run` trains them again (the old rows are kept, and superseded)."""
        out: dict[str, int] = {}
        for c in self.cells:
            if c.stale:
                out[c.variant] = out.get(c.variant, 0) + 1
        return out

    @property
    def rungs(self) -> dict[str, dict[str, float]]:
        """Per ladder rung: its cells, the missing ones and their estimated seconds (empty without a ladder)."""
        out: dict[str, dict[str, float]] = {}
        for c in self.cells:
            if c.rung:
                entry = out.setdefault(c.rung, {"cells": 0, "missing": 0, "remaining_s": 0.0})
                entry["cells"] += 1
                if not c.done:
                    entry["missing"] += 1
                    entry["remaining_s"] += self.seconds.get(c.estimate_key, (0.0, ""))[0]
        return out


def select_studies(only: str | None, every: bool, overrides: Sequence = ()) -> list:
    """The studies a `study run` with these options runs, validated (with `--set` overrides), in run order."""

    names = [n.strip() for n in only.split(",")] if only else list_studies()
    specs = [load_study(study_path(n), overrides) for n in names]  # a bad spec fails before any training
    if not only:
        specs = [s for s in specs if every or s.default_run]
        specs.sort(key=lambda s: (s.run_order, s.name))
    return specs


def planned_cells(ctx, cells: Iterable) -> list[PlannedCell]:
    """Every cell of a study that lists its cells (`StudyKind.cells`), in the run's queue order, marked done as
    `study.cells` judges it."""
    finished = ctx.table.finished()
    planned = []
    for c in cells:
        resolved = ctx.at(c.rung).resolved(c.variant.label)
        planned.append(PlannedCell(c.variant.label, c.dataset, c.seed, ctx.levels, resolved.params, resolved.flops,
                                   c.done(finished), c.rung, c.stale(finished)))
    return planned


def ok_rows(path: Path, profile: str) -> list[dict[str, Any]]:
    """The ok rows of a profile whose wall time measures a training (not reused, not a degraded re-test)."""
    return [r for r in results.load_rows(path) if r.get("profile") == profile and r.get("status") == "ok"
            and isinstance(r.get("wall_s"), (int, float)) and not r.get("reused_from") and not r.get("test_degraded_only")]


def seconds_per_flop(ctx) -> float | None:
    """Median wall seconds per FLOP and training image of the finished rows of this profile anywhere in the
    run directory (a rung of four times the budget costs about four times as much)."""
    default = ctx.spec.profiles[ctx.profile].budget_images
    rates = [r["wall_s"] / (r["flops"] * _budget(r, default)) for p in sorted(Path(ctx.run_dir).glob("*/results.jsonl"))
             for r in ok_rows(p, ctx.profile) if isinstance(r.get("flops"), (int, float)) and r["flops"] > 0]
    return statistics.median(rates) if rates else None


def _budget(row: dict[str, Any], default: int) -> int:
    """Training images a row's budget allowed (older rows: from its config; else the profile's `default`)."""
    if isinstance(row.get("budget_images"), int) and row["budget_images"] > 0:
        return row["budget_images"]
    try:
        cfg = json.loads(row.get("config") or "{}")
    except json.JSONDecodeError:
        cfg = {}
    images = cfg.get("train_subset") or row.get("train_size")
    return int(cfg["epochs"] * images) if isinstance(images, int) and images > 0 and cfg.get("epochs") else default


def _profiled_seconds(network: ResolvedModel, ctx) -> float:
    """Training-step seconds of one cell, from a few timed steps (see the module docstring)."""
    import torch

    cfg = ctx.cfg
    with torch.random.fork_rng():  # profiling must not move the run's random state
        timing = time_training(build_model(network), batch=cfg.batch_size, device=ctx.device, precision=cfg.precision,
                               steps=3, warmup=3, repeats=1)
    images = cfg.epochs * (cfg.train_subset or ASSUMED_TRAIN_IMAGES)
    return images / timing["img_per_s"]


def estimate_seconds(ctx, label: str, network, flops: int | None, measured: dict[str, list[float]],
              rates: dict[str, float | None], profile: bool) -> tuple[float, str]:
    """Seconds per cell of one network; `rates` caches seconds per FLOP ("measured", "profiled")."""
    if measured.get(label):
        return statistics.fmean(measured[label]), "measured"
    if rates.get("measured") and flops:
        return rates["measured"] * flops * ctx.profile_spec.budget_images, "measured, FLOPs-scaled"
    if not profile:
        return 0.0, "unknown"
    if not flops:  # a registered baseline: no analytic FLOPs, so time it itself
        return _profiled_seconds(network, ctx), "profiled"
    if rates.get("profiled") is None:  # one timed network per study, the others scaled by their FLOPs
        rates["profiled"] = _profiled_seconds(network, ctx) / flops
        return rates["profiled"] * flops, "profiled"
    return rates["profiled"] * flops, "profiled, FLOPs-scaled"


def cell_seconds(ctx, cells: list[PlannedCell], profile: bool = True) -> dict[str, tuple[float, str]]:
    """Seconds per cell of each variant (at each rung) that still has missing cells (see the module docstring
    for the sources). A rung with no rows of its own scales another rung's measured seconds by its budget."""
    measured: dict[str, list[float]] = {}
    for r in ok_rows(ctx.results_path, ctx.profile):
        measured.setdefault(estimate_key(r["variant"], str(r.get("rung") or "")), []).append(float(r["wall_s"]))
    rates: dict[str, float | None] = {"measured": seconds_per_flop(ctx)}
    out = {}
    for c in {c.estimate_key: c for c in cells if not c.done}.values():
        at = ctx.at(c.rung)
        resolved = at.resolved(c.variant)
        out[c.estimate_key] = _rung_scaled(ctx, c, measured) or estimate_seconds(
            at, c.estimate_key, resolved.model, resolved.flops, measured, rates, profile)
    return out


def _rung_scaled(ctx, cell: PlannedCell, measured: dict[str, list[float]]) -> tuple[float, str] | None:
    """A rung's seconds per cell from the variant's measured rows at another rung, scaled by the training images
    (evaluation is a small share of a cell at these budgets)."""
    if not cell.rung or measured.get(cell.estimate_key):
        return None
    ladder = ctx.spec.profiles[ctx.profile]
    for other in ladder.rungs:
        key = estimate_key(cell.variant, other.rung)
        if measured.get(key):
            ratio = ladder.at(cell.rung).budget_images / other.budget_images
            return statistics.fmean(measured[key]) * ratio, f"measured at {other.rung}, budget-scaled"
    return None


def study_plan(ctx, samples: int = 200, profile: bool = True) -> StudyPlan:
    """The plan of one study run context (`cells.Context`): cells, done/missing, estimated time (`StudyKind.plan`)."""
    return get_kind(ctx.spec.kind).plan(ctx, samples, profile)


def as_json(plans: Sequence[StudyPlan]) -> dict[str, Any]:
    """The plans as one JSON-able document (`study plan --json`)."""
    return {"studies": [{**dataclasses.asdict(p), "missing": p.missing, "remaining_s": p.remaining_s, "rungs": p.rungs,
                         "stale": p.stale}
                        for p in plans],
            "remaining_s": sum(p.remaining_s for p in plans)}
