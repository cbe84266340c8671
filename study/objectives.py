"""What one Optuna trial does: train a grid cell (or a robustness cell) or a sampled search network,
and write its result rows through the study's results table before the trial completes.

The results table is the record of what is finished: a re-run, a retried trial or a duplicate pick by
a second worker finds its row there (or in another trial's stored rows) and returns without training.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from study import checkpoints, results, storage, tracking
from study.capacity import scaled
from study.cells import Cell, Context, cell, row_base, rung_id, sampler_seed
from study.kinds.registry import get_kind
from study.measure import count_flops, count_params
from study.models import ResolvedModel, resolve_model
from study.studies import ResolvedVariant, Variant, variant_network
from study.train import Task, TrainConfig, config_json, train


def grid_objective(ctx: Context) -> Callable[[optuna.Trial], float]:
    """Objective of a grid or robustness study: one cell (variant × dataset × seed) per trial."""
    labels = [v.label for v in ctx.variants]
    ladder = ctx.rungs if ctx.rungs != ("",) else ()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("owner", storage.owner())
        label = trial.suggest_categorical("variant", labels)
        dataset = trial.suggest_categorical("dataset", list(ctx.datasets))
        # an int range, not a categorical of the seed list: adaptive seeds grow that list mid-study
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        if ladder:  # an int, like the seed: an edited ladder changes the labels, not the parameter's space
            drawn = trial.suggest_int("rung", 0, 2**31 - 1)
            at = ctx.at(next((r for r in ladder if rung_id(r) == drawn), None) or _gone(drawn))
        else:
            at = ctx
        here = cell(at, label, dataset, seed)
        done = _finished_rows(at, trial, here)
        if done:
            return _objective_value(done[0])
        if _duplicate_running(trial, trial.params):
            raise optuna.TrialPruned("another worker holds this cell")
        rows = _cell_rows(at, trial, here)
        if not ctx.table.claim_and_write(rows, lambda key: storage.stored_elsewhere(trial, key, here.current), here.current):
            raise optuna.TrialPruned("another worker finished this cell first")
        storage.store_rows(trial, rows)
        return _objective_value(rows[0])

    return objective


def _gone(drawn: int) -> str:
    raise optuna.TrialPruned(f"rung {drawn} is no longer in the study file's ladder")


def _finished_rows(ctx: Context, trial: optuna.Trial, here: Cell) -> list[dict[str, Any]]:
    """The cell's rows when the table already has them (also kept on this trial); a cell another trial
    stored is pruned. Checked under the table's lock: a worker writing this cell now holds it."""
    with ctx.table.lock():
        if storage.stored_elsewhere(trial, here.key, here.current):
            raise optuna.TrialPruned("another trial already finished this cell")
        done = ctx.table.finished()
        if not here.done(done):
            return []
        rows = [done[results.row_key(b)] for b in here.bases]
    storage.store_rows(trial, rows)
    return rows


def _cell_rows(ctx: Context, trial: optuna.Trial, here: Cell) -> list[dict[str, Any]]:
    """Train the cell (or reuse an identical run of a sibling study) and return its rows, one per level."""
    resolved = ctx.resolved(here.variant.label)
    cfg = ctx.cfg_for(here.variant.label)
    clean = here.bases[0]
    row = None
    if len(here.bases) == 1:
        row = ctx.table.reusable(resolved.model.digest, config_json(cfg), clean)
        row = {**row, "git_commit": ctx.commit} if row else None
    extra: dict[str, Any] = {}
    if row is None:
        row, extra = train_row(ctx, trial, clean, resolved, extra_tests=tuple(b["degradation"] for b in here.bases[1:]),
                               cfg=cfg)
    degraded = [{**row, **base, "test_accuracy": extra.get(base["degradation"], {}).get("accuracy"),
                 "test_loss": extra.get(base["degradation"], {}).get("loss"), "test_degraded_only": True}
                for base in here.bases[1:]]
    return [row, *degraded]


def train_row(ctx: Context, trial: optuna.Trial | None, base: dict[str, Any], resolved: ResolvedVariant | ResolvedModel,
              extra_tests: tuple[str, ...] = (), cfg: TrainConfig | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train one cell, reporting every epoch to Optuna (when it runs in a trial); returns its result row and its extra
    degraded tests."""
    cfg = cfg or ctx.cfg
    variant = resolved if isinstance(resolved, ResolvedVariant) else None
    model = variant.model if variant else resolved
    folder = ctx.run_dir / ctx.spec.name
    history, checkpoint = folder / "history" / f"{_slug(base)}.csv", folder / "checkpoints" / f"{_slug(base)}.pt"
    protocol = "kfold-test" if base["protocol"].startswith("kfold-test") else base["protocol"]
    task = Task(base["dataset"], protocol=protocol, fold=base["fold"], extra_tests=extra_tests)
    with tracking.epoch_tracker(folder / "tensorboard" / _slug(base)) as track:  # `study run --track`; None when off
        result = train(model, task, cfg=cfg, seed=base["seed"], device=ctx.device, history_path=history,
                       checkpoint_path=checkpoint if ctx.profile_spec.keep_weights else None,
                       on_epoch=tracking.chained(track, _reporter(ctx, trial) if trial is not None else None))
    extra = result.pop("extra_tests", {})
    row = {**result, **base, "git_commit": ctx.commit, "trial_number": trial.number if trial is not None else None,
           "config": config_json(cfg), "history_path": str(history.relative_to(folder)),
           "train_config": _described(ctx, base["variant"]), "proxy": ctx.profile_spec.proxy,
           "width_multiplier": model.spec.blocks[0].width_multiplier if model.spec else None,
           "match": variant.variant.match if variant else "",
           "raw_flops": variant.raw_flops if variant else None, "raw_params": variant.raw_params if variant else None}
    if ctx.profile_spec.keep_weights and row["status"] == "ok" and checkpoint.exists():  # not a stale file of a retry
        row["checkpoint"] = str(checkpoint.relative_to(folder))
        checkpoints.write_description(checkpoint, model, base["dataset"])
    return row, extra


def _described(ctx: Context, label: str) -> str:
    """The profile's description, with the variant's tuned values where a tuning stage chose them."""
    tuned = ctx.tuned.get(label)
    text = ctx.profile_spec.describe()
    return text + (f"; tuned lr {tuned['lr']:g} wd {tuned['weight_decay']:g}" if tuned else "")


def _reporter(ctx: Context, trial: optuna.Trial) -> Callable[[int, dict[str, float]], None]:
    multi = len(trial.study.directions) > 1

    def report(epoch: int, metrics: dict[str, float]) -> None:
        if multi:  # Optuna has no intermediate values (nor pruning) for multi-objective studies
            return
        trial.report(metrics["val_acc"], epoch)
        if get_kind(ctx.spec.kind).prunes and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report


def _slug(base: dict[str, Any]) -> str:
    text = f"{base['variant']}-{base['dataset']}-{base['degradation']}-s{base['seed']}" + (f"-{base['rung']}" if base.get("rung") else "")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]


def _duplicate_running(trial: optuna.Trial, params: dict[str, Any]) -> bool:
    """Whether an earlier RUNNING trial already holds this cell (a second worker's tail-of-grid pick)."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if other.number != trial.number and other.params == params and other.number < trial.number:
            return True
    return False


def _objective_value(row: dict[str, Any]) -> float:
    value = row.get("val_accuracy")
    if row.get("status") != "ok" or value is None or (isinstance(value, float) and math.isnan(value)):
        raise optuna.TrialPruned(f"cell ended as {row.get('status')}: {row.get('stop_reason', '')}")
    return float(value)


# --------------------------------------------------------------------------- search


def sample_network(trial: optuna.Trial, ctx: Context) -> tuple[ResolvedModel, dict[str, Any]]:
    """The MK-block search space: one function owns it (kernels, links, depth, width, dropout, lr)."""
    space = ctx.spec.search
    kernels = trial.suggest_categorical("kernels", [",".join(map(str, k)) for k in space.kernels])
    links = trial.suggest_categorical("links", list(space.links))
    blocks = trial.suggest_int("blocks", *space.blocks)
    width = trial.suggest_float("width_multiplier", *space.width_multiplier)
    dropout = trial.suggest_float("dropout", *space.dropout)
    lr = trial.suggest_float("lr", *space.lr, log=True)
    variant = Variant(label=f"#{trial.number} k={kernels} {links} b={blocks} w={width:.2f}",
                      block={"kernels": [int(k) for k in kernels.split(",")], "links": links, "width_multiplier": round(width, 3)},
                      blocks=blocks, head={"dropout": round(dropout, 3)})
    network = variant_network(ctx.spec, variant)
    return resolve_model(scaled(network, ctx.profile_spec.width)), {"lr": lr, "label": variant.label}


def search_objective(ctx: Context) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """Objective of a search study: sample a spec, reject it outside the FLOPs/params bands, train it."""
    multi = len(ctx.spec.search.objectives) > 1

    def objective(trial: optuna.Trial):
        trial.set_user_attr("owner", storage.owner())
        trial.set_user_attr("sampler_seed", sampler_seed(ctx))
        model, extra = sample_network(trial, ctx)
        counts = _within_bands(trial, ctx, model)
        base = row_base(ctx, extra["label"], False, ctx.datasets[0], ctx.seeds[0])
        row = ctx.table.finished().get(results.row_key(base))
        if row is None:
            try:
                row, _ = train_row(ctx, trial, base, model, cfg=dataclasses.replace(ctx.cfg, lr=extra["lr"]))
            except optuna.TrialPruned:
                _write_pruned(ctx, trial, base, model, counts)
                raise
            row["search_params"] = json.dumps(trial.params)
            ctx.table.write(row)
            storage.store_rows(trial, [row])
        accuracy = _objective_value(row)
        return (accuracy, float(row["flops"])) if multi else accuracy

    return objective


def _within_bands(trial: optuna.Trial, ctx: Context, model: ResolvedModel) -> dict[str, int]:
    """The sampled network's params and FLOPs; outside the study's bands the trial is pruned untrained."""
    space = ctx.spec.search
    module = model.build()
    counts = {**count_params(module), "flops": count_flops(module, model.input_shape)["flops"]}
    trial.set_user_attr("flops", counts["flops"])
    trial.set_user_attr("params", counts["params"])
    for key, band in (("flops", space.flops_band), ("params", space.params_band)):
        if not band[0] <= counts[key] <= band[1]:
            trial.set_user_attr("rejected", f"{key} {counts[key]:,} outside [{band[0]:g}, {band[1]:g}]")
            raise optuna.TrialPruned(trial.user_attrs["rejected"])
    return counts


def _write_pruned(ctx: Context, trial: optuna.Trial, base: dict[str, Any], model: ResolvedModel, counts: dict[str, int]) -> None:
    """One row per trial, pruned ones included, so the table shows what the pruner cut."""
    last = max(trial.storage.get_trial(trial._trial_id).intermediate_values.items(), default=(0, None))
    row = {**base, **counts, "model": model.name, "spec_hash": model.digest, "status": "pruned", "val_accuracy": last[1],
           "epochs": last[0], "trial_number": trial.number, "search_params": json.dumps(trial.params), "git_commit": ctx.commit}
    ctx.table.write(row)
    storage.store_rows(trial, [row])


def recording_errors(objective: Callable[[optuna.Trial], Any], run_dir: Path | None = None) -> Callable[[optuna.Trial], Any]:
    """The objective, recording a failure's first line on the trial (Optuna only logs it). A failure while the run
    folder is full or read-only ends the study at once with that cause (retrying could only fail again)."""

    def wrapped(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            disk = disk_problem(run_dir) if run_dir is not None and not isinstance(err, OSError) else None
            try:
                trial.set_user_attr("error", f"{type(err).__name__}: {first}"[:300])
            except OSError:
                pass  # the journal cannot be written either: the cause below says why
            if disk is not None:
                raise disk from err
            raise

    return wrapped


#: Below this much free space a failed trial is put down to a full disk.
MIN_FREE_BYTES = 16 * 2**20


def disk_problem(run_dir: Path) -> OSError | None:
    """A full disk or a read-only run folder, as the OSError that names it (None when writing there can work)."""
    folder = Path(run_dir)
    try:
        if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return OSError(errno.EROFS if _read_only(folder) else errno.EACCES,
                       os.strerror(errno.EROFS if _read_only(folder) else errno.EACCES), str(folder))
    return None


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
