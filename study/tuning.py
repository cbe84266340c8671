"""A grid study's tuning stage: the same small, recorded learning-rate (× weight-decay) budget for every
model before the grid, so a comparison is not won by one model's lucky default rate.

Each variant gets its own Optuna study in the study's storage, named by `tuning_name` (study, variant,
profile and a digest of what a tuning run trains), whose trials are the points of `[tuning]`'s grid at
each of its `seeds` tuning seeds, queued seed-major. A trial trains the variant at the profile's budget
with that point's lr and weight decay on the tuning dataset's validation split (the test split is never
touched) and returns the best validation accuracy; the point with the best mean over its seeds (the
first in grid order on a tie) is the variant's tuned value: one seed's validation accuracy on a few
hundred images moves by points, more than the gaps between neighbouring rates.
Trials are resumed like grid cells: finished points are never retrained, a dead worker's point is
queued again. `runs/<study>/tuning.json` records, per profile, the budget, every point and the choice;
the grid then trains each variant with its choice (`cells.Context.cfg_for`), so the rows' `config`
carries the tuned values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from study import storage
from study.cells import Context, resolve_protocol
from study.errors import KitError
from study.files import locked, write_text_atomic
from study.studies import Tuning
from study.train import Task, config_json, train

log = logging.getLogger(__name__)


def tuning_path(run_dir: Path, study: str) -> Path:
    """Where a study's tuning record lives: beside its results table."""
    return Path(run_dir) / study / "tuning.json"


def tuning_dataset(ctx: Context) -> str:
    """The dataset the tuning runs train and validate on."""
    return ctx.spec.tuning.dataset or ctx.datasets[0]


def tuning_name(ctx: Context, label: str) -> str:
    """The Optuna study of one variant's tuning; a changed budget, network, dataset or seed is a new study."""
    tuning = ctx.spec.tuning
    what = [config_json(ctx.cfg), ctx.resolved(label).model.digest, tuning_dataset(ctx), tuning.seed,
            tuning.lr, tuning.weight_decay] + ([tuning.seeds] if tuning.seeds != 1 else [])  # one seed: the older name
    what = json.dumps(what)
    return f"{ctx.spec.name}.tune.{label}.{ctx.profile}-{hashlib.sha256(what.encode()).hexdigest()[:8]}"


def tune(ctx: Context, storage_url: str | None = None, deadline: float = 0.0) -> bool:
    """Run every variant's tuning study to its end and set `ctx.tuned`; False when the deadline stopped it
    first (the grid must not start: a variant without its tuned values would train at the default)."""
    tuning = ctx.spec.tuning
    if tuning is None:
        return True
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    for variant in ctx.variants:
        study = optuna.create_study(study_name=tuning_name(ctx, variant.label), storage=opened, direction="maximize",
                                    load_if_exists=True)
        if not _run_points(ctx, study, variant.label, tuning, deadline):
            return False
        ctx.tuned[variant.label] = _choice(study, tuning, variant.label)
        _record(ctx, variant.label, study)
    return True


def _run_points(ctx: Context, study: optuna.Study, label: str, tuning: Tuning, deadline: float) -> bool:
    """Queue the points no trial holds and run them; wait for points other workers run."""
    if not isinstance(study._storage, optuna.storages.RDBStorage):
        storage.reclaim_dead_trials(study)
    objective = _objective(ctx, label, tuning)
    while True:
        held = [_run_of(t, tuning) for t in study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))]
        for run in tuning.runs:
            if run not in held:
                study.enqueue_trial(run)
        done = [_run_of(t, tuning) for t in _done(study)]
        if all(run in done for run in tuning.runs):
            return True
        if deadline and time.time() > deadline:
            return False
        waiting = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
        if waiting:
            study.optimize(objective, n_trials=len(waiting))
        else:  # every point left runs in another worker
            time.sleep(min(5.0, storage.heartbeat_s()))
            if not isinstance(study._storage, optuna.storages.RDBStorage):
                storage.reclaim_dead_trials(study)


def _done(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _done_in_grid_order(study: optuna.Study, tuning: Tuning) -> list[list[optuna.trial.FrozenTrial]]:
    """Per grid point (in the grid's order) its finished trials, one per tuning seed that has one."""
    by_run = {json.dumps(_run_of(t, tuning)): t for t in _done(study)}
    return [[by_run[json.dumps(r)] for r in tuning.runs if _point_of(r) == p and json.dumps(r) in by_run]
            for p in tuning.points]


def _point_of(run: dict[str, float]) -> dict[str, float]:
    return {"lr": run.get("lr"), "weight_decay": run.get("weight_decay")}


def _run_of(trial: optuna.trial.FrozenTrial, tuning: Tuning) -> dict[str, float]:
    """The (lr, weight decay, seed) a trial trains; a trial of an older one-seed study ran `tuning.seed`."""
    params = trial.system_attrs.get("fixed_params") or trial.params
    return {"lr": params.get("lr"), "weight_decay": params.get("weight_decay"), "seed": params.get("seed", tuning.seed)}


def _objective(ctx: Context, label: str, tuning: Tuning):
    model = ctx.resolved(label).model
    dataset = tuning_dataset(ctx)
    protocol = "kfold-test" if resolve_protocol(dataset).startswith("kfold-test") else "val-split"
    folder = ctx.run_dir / ctx.spec.name / "tuning"

    def objective(trial: optuna.Trial) -> float:
        if "fixed_params" not in trial.storage.get_trial_system_attrs(trial._trial_id):
            raise optuna.TrialPruned("no tuning point was queued for this trial")  # another worker took the last one
        trial.set_user_attr("owner", storage.owner())
        lr = trial.suggest_categorical("lr", list(tuning.lr))
        wd = trial.suggest_categorical("weight_decay", list(tuning.weight_decay))
        seed = trial.suggest_int("seed", tuning.seed, tuning.seed + tuning.seeds - 1) if tuning.seeds > 1 else tuning.seed
        cfg = dataclasses.replace(ctx.cfg, lr=lr, weight_decay=wd)
        history = folder / (f"{label}-lr{lr:g}-wd{wd:g}" + (f"-s{seed}" if tuning.seeds > 1 else "") + ".csv").replace("/", "_")
        try:
            result = train(model, Task(dataset, protocol=protocol, test=False), cfg=cfg, seed=seed,
                           device=ctx.device, history_path=history)
        except (RuntimeError, ValueError, KitError) as err:  # e.g. out of memory at this rate's batch: a failed point
            result = {"status": "failed", "stop_reason": f"{type(err).__name__}: {str(err).strip()[:200]}"}
        value = result.get("val_accuracy")
        ok = result.get("status") == "ok" and value is not None and math.isfinite(value)
        for key in ("status", "stop_reason", "val_accuracy", "val_loss", "epochs", "train_img_per_s", "wall_s"):
            trial.set_user_attr(key, result.get(key))
        log.info("tuning %s: lr %g, weight decay %g → %s", label, lr, wd,
                 f"val {100 * value:.2f} %" if ok else result.get("status"))
        return float(value) if ok else 0.0  # a diverged or failed point ranks last, and stays recorded

    return objective


def _choice(study: optuna.Study, tuning: Tuning, label: str) -> dict[str, float]:
    """The point with the best mean validation accuracy over its seeds (the first in grid order on a tie); a
    variant whose every run failed is an error."""
    runs = _done_in_grid_order(study, tuning)
    trials = [t for point in runs for t in point]
    if not any(t.user_attrs.get("status") == "ok" for t in trials):
        reason = trials[-1].user_attrs.get("stop_reason", "") if trials else "no trial finished"
        raise KitError(f"tuning of {label}: no learning rate in {list(tuning.lr)} trained ({reason}); "
                       "widen [tuning] lr or check the model with `python -m study train`")
    means = [(sum(t.value for t in point) / len(point), i) for i, point in enumerate(runs) if point]
    best = max(means, key=lambda m: m[0])[1]  # max keeps the first of equal values: grid order
    return tuning.points[best]


def _record(ctx: Context, label: str, study: optuna.Study) -> None:
    """Write this variant's points and choice into `tuning.json` (under its profile), atomically."""
    path = tuning_path(ctx.run_dir, ctx.spec.name)
    tuning = ctx.spec.tuning
    with locked(path):
        doc = json.loads(path.read_text()) if path.exists() else {}
        entry = doc.setdefault(ctx.profile, {})
        entry["budget"] = {"points": len(tuning.points), "lr": list(tuning.lr), "weight_decay": list(tuning.weight_decay),
                           "dataset": tuning_dataset(ctx), "seed": tuning.seed, "seeds": tuning.seeds,
                           "selected_on": f"best mean validation accuracy over {tuning.seeds} seed"
                                          + ("s" if tuning.seeds != 1 else ""),
                           "per_point": ctx.profile_spec.describe()}
        entry.setdefault("models", {})[label] = {
            **ctx.tuned[label], "optuna_study": study.study_name,
            "points": [_point_record(point, trials, tuning) for point, trials in zip(
                tuning.points, _done_in_grid_order(study, tuning), strict=True) if trials]}
        write_text_atomic(path, json.dumps(doc, indent=2, default=str))


def _point_record(point: dict[str, float], trials: list[optuna.trial.FrozenTrial], tuning: Tuning) -> dict[str, Any]:
    """One grid point in `tuning.json`: its mean validation accuracy (failed runs count 0, as in the choice) and
    every seed's run."""
    ok = [t for t in trials if t.user_attrs.get("status") == "ok"]
    runs = [{"seed": _run_of(t, tuning)["seed"], **{k: t.user_attrs.get(k) for k in (
        "status", "val_accuracy", "val_loss", "wall_s")}} for t in trials]
    return {**point, "status": "ok" if ok else trials[-1].user_attrs.get("status"),
            "val_accuracy": sum(t.value for t in trials) / len(trials) if ok else None,
            "val_loss": ok[0].user_attrs.get("val_loss") if len(ok) == 1 else None,
            "wall_s": sum(t.user_attrs.get("wall_s") or 0.0 for t in trials), "runs": runs}


def missing_points(ctx: Context, storage_url: str | None = None) -> dict[str, int]:
    """Tuning runs still to train per variant (`study plan`); nothing is created where nothing ran yet."""
    tuning = ctx.spec.tuning
    if tuning is None:
        return {}
    journal = ctx.run_dir / ctx.spec.name / "optuna.journal"
    opened = storage.open_storage(ctx.run_dir, ctx.spec.name, storage_url) if storage_url or journal.exists() else None
    missing = {}
    for variant in ctx.variants:
        done: list[dict[str, float]] = []
        if opened is not None:
            try:
                study = optuna.load_study(study_name=tuning_name(ctx, variant.label), storage=opened)
                done = [_run_of(t, tuning) for t in _done(study)]
            except KeyError:  # no tuning study of this variant yet
                pass
        missing[variant.label] = sum(run not in done for run in tuning.runs)
    return missing
