"""Running studies through Optuna: the sampler of each study kind, the worker loop, the seed-major
queue and a run's provenance (`study.json`).

The pieces it runs live in their own modules: `study.cells` (what a study trains, what is done),
`study.objectives` (what one trial does), `study.storage` (Optuna storage, heartbeats, rows kept in
the storage) and `study.results` (the results table). docs/architecture.md walks through them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from study import storage
from study.cells import Context, cells, expected_rows, missing_cells, resolve_protocol, rung_id
from study.data import locate
from study.errors import DataError, KitError
from study.files import write_text_atomic
from study.objectives import grid_objective, recording_errors, search_objective
from study.studies import ResolvedVariant, StudySpec
from study.trial_log import logged_trials


def make_study(ctx: Context, opened: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the Optuna study with the sampler and pruner of its kind."""
    spec = ctx.spec
    if spec.kind == "search":
        multi = len(spec.search.objectives) > 1
        sampler = optuna.samplers.TPESampler(seed=sampler_seed(ctx), n_startup_trials=max(2, min(10, ctx.profile_spec.n_trials // 3)))
        pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                  "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(ctx.cfg.epochs, 1)),
                  "none": optuna.pruners.NopPruner()}[spec.search.pruner]
        directions = ["maximize", "minimize"] if multi else ["maximize"]
        return optuna.create_study(study_name=spec.name, storage=opened, sampler=sampler, pruner=pruner,
                                   directions=directions, load_if_exists=True)
    space = {"variant": [v.label for v in ctx.variants], "dataset": list(ctx.datasets), "seed": list(ctx.seeds)}
    if ctx.rungs != ("",):
        space["rung"] = [rung_id(r) for r in ctx.rungs]
    return optuna.create_study(study_name=spec.name, storage=opened, sampler=_QueuedGridSampler(space, seed=0),
                               pruner=optuna.pruners.NopPruner(), direction="maximize", load_if_exists=True)


#: Which worker of a run a `study worker` process is (`study run --workers N` numbers them; a standalone worker
#: without it uses its host:pid): `cells.Context.worker`, part of its search sampler's seed.
WORKER_ENV = "STUDY_WORKER_INDEX"


def sampler_seed(ctx: Context) -> int:
    """A search worker's sampler seed, derived from the study and the worker: workers started together propose
    different first trials, and a re-run of the same worker proposes the same ones. Each trial records it."""
    worker = ctx.worker
    if worker == "0":  # the first (or only) worker keeps the seed every search had before workers were told apart
        return 0
    return int.from_bytes(hashlib.sha256(f"{ctx.spec.name}|{ctx.profile}|{worker}".encode()).digest()[:4], "big")


class _QueuedGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, tolerant of the seed-major queue: an enqueued trial carries no grid id, and
    GridSampler's end-of-grid bookkeeping (which would fail on it) has nothing to do for it; the runner
    stops by the results table's missing cells, not by the grid."""

    def after_trial(self, study, trial, state, values) -> None:
        if "grid_id" in study._storage.get_trial_system_attrs(trial._trial_id):
            super().after_trial(study, trial, state, values)


def _others_running(study: optuna.Study) -> bool:
    """Whether a RUNNING trial belongs to another process (this one runs none between its trials)."""
    me = storage.owner()
    return any(t.user_attrs.get("owner") != me for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _wait_for_others(study: optuna.Study, seconds: float) -> None:
    """Sleep until one of the RUNNING trials finishes (or fails), or `seconds` pass; a cheap poll a second."""
    def running() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}

    before, end = running(), time.time() + seconds
    while time.time() < end:
        time.sleep(min(1.0, max(0.0, end - time.time())))
        if running() != before:
            return


def run_worker(ctx: Context, storage_url: str | None = None, *, on_trial: Callable[[], None] | None = None,
               deadline: float = 0.0, requeue: bool = False) -> None:
    """Work on one study until every cell has a row (or the search budget is spent, or `deadline` passed:
    the run's wall-clock guard finishes the running trial and starts no other). `requeue`: this process starts the
    run alone (no other worker yet), so it may put the queue back in seed-major order (`_requeue_seed_major`)."""
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    study = make_study(ctx, opened)
    shared = isinstance(opened, optuna.storages.RDBStorage)
    if not shared:
        # on an RDB the heartbeat does this; a host:pid check there could fail a live worker's trial
        # in another container that shares the host name
        storage.reclaim_dead_trials(study)
        if requeue and ctx.spec.kind != "search":
            _requeue_seed_major(ctx, study)
    objective = recording_errors(search_objective(ctx) if ctx.spec.kind == "search" else grid_objective(ctx), ctx.run_dir)
    objective = logged_trials(ctx.spec.name, objective)  # a log line per trial start/finish/failure

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial()
        if deadline and time.time() > deadline:
            study.stop()
        if ctx.spec.kind != "search" and not _queued(study):
            # the queue holds every cell left: past it the grid sampler would only draw cells already done
            # (each a pruned, empty trial); the loop below waits for other workers or queues retries instead
            study.stop()

    stalled, before = 0, None
    while True:
        # rows finished on machines that share only the storage, and rows a torn write lost from the table but the
        # journal kept: restored, not retrained
        storage.import_rows(study, ctx.results_path)
        missing = missing_cells(ctx)
        if missing == 0 or (deadline and time.time() > deadline):
            return
        if before is not None and missing >= before:
            if _others_hold_the_rest(study, shared):
                continue
            stalled += not _queued(study)
            if stalled >= 3:
                raise _incomplete(ctx, study)
        else:
            stalled = 0
        before = missing
        if ctx.spec.kind != "search":
            _enqueue_missing(ctx, study)
            if not _queued(study) and _others_hold_the_rest(study, shared):
                continue  # every cell left runs on another worker: wait, never ask the sampler past the queue
        # a failed trial is caught (recorded by Optuna) so one bad cell cannot end the study
        study.optimize(objective, n_trials=missing, callbacks=[after_trial], catch=(RuntimeError, ValueError))


def _queued(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _others_hold_the_rest(study: optuna.Study, shared: bool) -> bool:
    """When every cell left runs on other workers, wait until one finishes, or until a dead worker's trial
    is failed and re-queued (then it runs here): by heartbeat on an RDB, by host:pid on the journal."""
    states = {t.state for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))}
    if states != {TrialState.RUNNING} or not _others_running(study):
        return False
    _wait_for_others(study, storage.heartbeat_s())
    if shared:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    else:
        storage.reclaim_dead_trials(study)
    return True


def enqueue_missing(ctx: Context, storage_url: str | None = None) -> None:
    """Queue a grid study's missing cells seed-major before workers start (see `_enqueue_missing`); on the local
    journal, first reclaim dead workers' trials and put the queue back in order (`_requeue_seed_major`)."""
    if ctx.spec.kind == "search":
        return
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    study = make_study(ctx, opened)
    if not isinstance(opened, optuna.storages.RDBStorage):
        storage.reclaim_dead_trials(study)
        _requeue_seed_major(ctx, study)
    _enqueue_missing(ctx, study)


def _requeue_seed_major(ctx: Context, study: optuna.Study) -> None:
    """A resumed run keeps the seed-major order: Optuna re-queues a dead worker's trial at the end of the queue
    (behind the next seed's cells), so when the waiting trials are out of order they are withdrawn (failed, marked
    "requeued") and `_enqueue_missing` queues the missing cells again in order. Only before any worker runs."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    order = {(c.variant.label, c.dataset, c.seed, rung_id(c.rung)): i for i, c in enumerate(cells(ctx))}

    def position(trial: optuna.trial.FrozenTrial) -> float:
        p = trial.system_attrs.get("fixed_params") or {}
        return order.get((p.get("variant"), p.get("dataset"), p.get("seed"), p.get("rung", 0)), float("inf"))

    positions = [position(t) for t in waiting]
    if positions == sorted(positions):
        return
    for trial in waiting:
        study._storage.set_trial_user_attr(trial._trial_id, "requeued", True)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _enqueue_missing(ctx: Context, study: optuna.Study) -> None:
    """Queue the missing cells seed-major (every variant of seed 0, then of seed 1, …): within a seed
    the variants are paired, so a run stopped by its time guard leaves complete seeds, not stray cells."""
    done = ctx.table.finished()
    held = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
        params = t.system_attrs.get("fixed_params") or t.params
        held.add((params.get("variant"), params.get("dataset"), params.get("seed"), params.get("rung", 0)))
    for c in cells(ctx):
        if (c.variant.label, c.dataset, c.seed, rung_id(c.rung)) not in held and not c.done(done):
            study.enqueue_trial(c.params)


def _incomplete(ctx: Context, study: optuna.Study) -> KitError:
    """The one-line error of a study whose cells keep failing (or whose search keeps being rejected)."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("requeued")]
    rejected = sum(1 for t in trials if "rejected" in t.user_attrs)
    last = failed[-1].user_attrs.get("error", "none recorded") if failed else "none recorded"
    hint = f"; {rejected} sampled specs fell outside the FLOPs/params bands (widen [search] bands)" if rejected else ""
    return KitError(f"study {ctx.spec.name}: {missing_cells(ctx)} cells not completed after retries ({len(failed)} failed "
                    f"trials, last error: {last}{hint}); finished rows are kept in {ctx.results_path}; fix and re-run")


def write_study_json(ctx: Context, **extra: Any) -> None:
    """Provenance of a study run beside its results (read by the report)."""
    from study.measure import provenance

    path = ctx.run_dir / ctx.spec.name / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = _previous(path)
    sources = {}
    for d in ctx.datasets:
        try:
            files = locate(d, "test", download=False)
            sources[d] = files.source
        except DataError as err:
            sources[d] = f"not found: {err}"
    doc = {**previous, "study": ctx.spec.name, "axis": ctx.spec.axis, "kind": ctx.spec.kind,
           "description": ctx.spec.description, "profile": ctx.profile,
           "protocol": ", ".join(sorted({resolve_protocol(d) for d in ctx.datasets})), "datasets": sources,
           **provenance(ctx.device, ctx.cfg.precision), "command": _command(),
           "git_commit": ctx.commit, "started": previous.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
           "cells_total": expected_rows(ctx), "seeds": list(ctx.seeds), "train_config": dataclasses.asdict(ctx.cfg),
           "profile_description": ctx.profile_spec.describe(), "proxy": ctx.profile_spec.proxy,
           "profile_overrides": list(ctx.profile_spec.overrides), "equivalence_margin": ctx.spec.equivalence_margin,
           "margin_reason": ctx.spec.margin_reason, "design": dict(ctx.spec.design),
           "equivalence_margin_relative": ctx.spec.margin_relative,
           "variants": _variant_summaries(ctx),
           "tuned": ctx.tuned, "spec_file": ctx.spec.path, "scale": ctx.profile_spec.scale,
           "rungs": [{"rung": r.rung, "budget_images": r.budget_images, "width": r.width, "steps": r.steps(),
                      "train_config": dataclasses.asdict(r.train), "variants": _variant_summaries(ctx.at(r.rung))}
                     for r in ctx.spec.profiles[ctx.profile].rungs], **extra}
    write_text_atomic(path, json.dumps(doc, indent=2, default=str))


def _previous(path) -> dict[str, Any]:
    """The study.json an earlier run wrote (its start time is kept); an unreadable one is rewritten whole, with a
    warning: the rows record the settings a report needs, so nothing is lost."""
    if not path.exists():
        return {}
    try:
        previous = json.loads(path.read_text())
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
        return previous
    except (OSError, ValueError) as err:
        logging.getLogger(__name__).warning("%s was unreadable (%s); rewriting it from this run", path, err)
        return {}


def _command() -> str:
    """The command line of this run as a user types it (`python -m study …`, not the path of `__main__.py`)."""
    program = "python -m study" if sys.argv and sys.argv[0].endswith(("study/__main__.py", "-m")) else sys.argv[0]
    return " ".join([program, *sys.argv[1:]])


def _variant_summaries(ctx: Context) -> dict[str, Any]:
    if ctx.spec.kind == "search":
        return {}
    return {v.label: _variant_summary(ctx.resolved(v.label)) for v in ctx.variants}


def _variant_summary(resolved: ResolvedVariant) -> dict[str, Any]:
    model = resolved.model
    return {"network": model.name, "match": resolved.variant.match,
            "width_multiplier": model.spec.blocks[0].width_multiplier if model.spec else None,
            "flops": resolved.flops, "params": resolved.params, "raw_flops": resolved.raw_flops,
            "raw_params": resolved.raw_params}


def check_profile(spec: StudySpec, profile: str) -> None:
    """A profile the study does not define is a one-line error."""
    if profile not in spec.profiles:
        raise KitError(f"{spec.path}: profile {profile!r} is not defined; use one of: {', '.join(spec.profiles)}")
