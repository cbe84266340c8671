"""Running studies through Optuna: the worker loop every study kind shares, and a run's provenance
(`study.json`).

What differs by kind (its sampler, objective and queue) is asked of the kind (`study.kinds`). The pieces it
runs live in their own modules: `study.cells` (what a study trains, what is done),
`study.objectives` (what one trial does), `study.storage` (Optuna storage, heartbeats, rows kept in
the storage) and `study.results` (the results table). docs/architecture.md walks through them.
"""

from __future__ import annotations

import dataclasses
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
from study.cells import (
    WORKER_ENV,
    Context,
    expected_rows,
    missing_cells,
    resolve_protocol,
    sampler_seed,
)
from study.data import locate
from study.errors import DataError, KitError
from study.files import write_text_atomic
from study.kinds.registry import get_kind
from study.measure import provenance
from study.objectives import recording_errors
from study.studies import StudySpec
from study.trial_log import logged_trials

__all__ = ["WORKER_ENV", "sampler_seed", "make_study", "run_worker", "enqueue_missing", "write_study_json"]


def make_study(ctx: Context, opened: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the Optuna study with the sampler and pruner of its kind (`StudyKind.make_study`)."""
    return get_kind(ctx.spec.kind).make_study(ctx, opened)


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
    kind = get_kind(ctx.spec.kind)
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    study = make_study(ctx, opened)
    shared = isinstance(opened, optuna.storages.RDBStorage)
    # on an RDB the heartbeat reclaims dead trials; a host:pid check there could fail a live worker's trial in
    # another container that shares the host name. Alone on the journal, the queue may be put back in order.
    reorder = requeue and not shared
    if not shared:
        storage.reclaim_dead_trials(study)
    objective = recording_errors(kind.objective(ctx), ctx.run_dir)
    objective = logged_trials(ctx.spec.name, objective)  # a log line per trial start/finish/failure

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial()
        if deadline and time.time() > deadline:
            study.stop()
        if kind.queued and not _queued(study):
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
        if kind.queued:
            kind.queue(ctx, study, reorder)
            reorder = False
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
    """Queue a study's missing cells before workers start (`StudyKind.queue`: a grid's seed-major order); on the
    local journal, first reclaim dead workers' trials and put the queue back in order."""
    kind = get_kind(ctx.spec.kind)
    if not kind.queued:
        return
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    study = make_study(ctx, opened)
    local = not isinstance(opened, optuna.storages.RDBStorage)
    if local:
        storage.reclaim_dead_trials(study)
    kind.queue(ctx, study, reorder=local)


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
    """Provenance of a study run beside its results (read by the report): its kind and the role of each column
    of its rows (`StudyKind.roles_of`), so the report never guesses either from names."""
    kind = get_kind(ctx.spec.kind)
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
    ladder = bool(ctx.spec.profiles[ctx.profile].rungs)
    doc = {**previous, "study": ctx.spec.name, "axis": ctx.spec.axis, "kind": ctx.spec.kind, "roles": kind.roles_of(ladder),
           "description": ctx.spec.description, "profile": ctx.profile,
           "protocol": ", ".join(sorted({resolve_protocol(d) for d in ctx.datasets})), "datasets": sources,
           **provenance(ctx.device, ctx.cfg.precision), "command": _command(),
           "git_commit": ctx.commit, "started": previous.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
           "cells_total": expected_rows(ctx), "seeds": list(ctx.seeds), "train_config": dataclasses.asdict(ctx.cfg),
           "profile_description": ctx.profile_spec.describe(), "proxy": ctx.profile_spec.proxy,
           "profile_overrides": list(ctx.profile_spec.overrides), "equivalence_margin": ctx.spec.equivalence_margin,
           "margin_reason": ctx.spec.margin_reason, "design": dict(ctx.spec.design),
           "equivalence_margin_relative": ctx.spec.margin_relative,
           "variants": kind.variant_summaries(ctx),
           "tuned": ctx.tuned, "spec_file": ctx.spec.path, "scale": ctx.profile_spec.scale,
           "rungs": [{"rung": r.rung, "budget_images": r.budget_images, "width": r.width, "steps": r.steps(),
                      "train_config": dataclasses.asdict(r.train), "variants": kind.variant_summaries(ctx.at(r.rung))}
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


def check_profile(spec: StudySpec, profile: str) -> None:
    """A profile the study does not define is a one-line error."""
    if profile not in spec.profiles:
        raise KitError(f"{spec.path}: profile {profile!r} is not defined; use one of: {', '.join(spec.profiles)}")
