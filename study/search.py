"""Running studies through Optuna: storage, the objective of each study kind, workers, resumption.

Every trial writes its result row(s) to `runs/<study>/results.jsonl` before Optuna marks it
complete, so the results table is the record of what is finished: a re-run, a retried trial or a
duplicate pick by a second worker finds its row there and returns without training again.

Storage: a JournalStorage file per study run directory by default (safe for several local
processes); `--storage URL` (e.g. postgresql://…) for an RDB shared across machines, with Optuna
heartbeats so a killed worker's trial is failed and retried by `RetryHeartbeatStaleTrialCallback`.
The journal backend has no heartbeat, so a local re-run fails and retries trials whose owning
process (host:pid recorded on the trial) is gone. Each trial also keeps its rows in the storage
(user attr "rows"); on an RDB every worker copies the rows it lacks into its own table
(`import_rows`), so machines need share only the database, not the run directory (docs/scale-out.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from study import results
from study.blocks import MKNet
from study.data import locate
from study.errors import DataError, KitError
from study.measure import count_flops, count_params
from study.profiles import Profile
from study.spec import NetworkSpec
from study.studies import ResolvedVariant, StudySpec, Variant, variant_network
from study.train import TrainConfig, train
from study.trial_log import logged_trials

HEARTBEAT_S = 20
MAX_RETRY = 2


# --------------------------------------------------------------------------- storage and provenance


def heartbeat_s() -> int:
    """Seconds between a running trial's heartbeats (env STUDY_HEARTBEAT_S overrides, e.g. in tests);
    a trial is failed and retried after three missed beats."""
    return max(1, int(os.environ.get("STUDY_HEARTBEAT_S") or HEARTBEAT_S))


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of a `--storage` URL: a plain postgresql:// uses psycopg 3 when installed
    (SQLAlchemy's default PostgreSQL driver is psycopg2); a missing driver is one line naming the fix."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    dialect, _, driver = scheme.partition("+")
    if dialect not in ("postgresql", "postgres") or not sep:
        return url
    if not driver:
        driver = next((d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d)), "")
        if not driver:
            raise KitError("--storage postgresql://…: no PostgreSQL driver is installed: "
                           "pip install 'lrnet-study-kit[postgres]'")
    elif driver in ("psycopg", "psycopg2") and not importlib.util.find_spec(driver):
        raise KitError(f"--storage {scheme}://…: the {driver} driver is not installed: "
                       "pip install 'lrnet-study-kit[postgres]' (and use postgresql://)")
    return f"postgresql+{driver}://{rest}"


# optuna 4.9 renamed RDBStorage's failed_trial_callback
_STALE_CALLBACK = ("heartbeat_stale_trial_callback"
                   if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
                   else "failed_trial_callback")


def _open_rdb(url: str) -> optuna.storages.RDBStorage:
    import sqlalchemy.exc

    beat = heartbeat_s()
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(sqlalchemy_url(url), heartbeat_interval=beat, grace_period=3 * beat,
                                                  **{_STALE_CALLBACK: retry_callback()})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == 4:  # workers starting together on an empty database race to create Optuna's tables
                raise
            time.sleep(0.5 + attempt)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError) as err:
            shown = sqlalchemy.engine.make_url(sqlalchemy_url(url)).render_as_string(hide_password=True) \
                if not isinstance(err, sqlalchemy.exc.ArgumentError) else url.partition("://")[0] + "://…"
            reason = (str(getattr(err, "orig", None) or err).strip().splitlines() or ["unknown error"])[0]
            raise KitError(f"--storage {shown}: cannot open it: {reason}") from None
    raise AssertionError("unreachable")


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Re-enqueue a failed trial with the same parameters, at most MAX_RETRY times."""
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8 and the documented way to retry
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def open_storage(run_dir: Path, study_name: str, url: str | None) -> optuna.storages.BaseStorage:
    """The Optuna storage of a study: a local journal file, or an RDB URL with heartbeats."""
    if url:
        return _open_rdb(url)
    path = run_dir / study_name / "optuna.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def git_commit() -> str:
    """The kit's git commit (with -dirty when the tree has changes), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) or "unknown"


_PROTOCOLS: dict[str, str] = {}


def resolve_protocol(dataset: str) -> str:
    """The protocol label "auto" resolves to for a dataset here (val-split when a train split exists)."""
    if dataset not in _PROTOCOLS:
        try:
            locate(dataset, "train")
            _PROTOCOLS[dataset] = "val-split"
        except DataError:
            _PROTOCOLS[dataset] = "kfold-test:5"
    return _PROTOCOLS[dataset]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reclaim_dead_trials(study: optuna.Study) -> int:
    """Fail (and retry) RUNNING trials whose owning process on this host is gone; returns how many."""
    host = socket.gethostname()
    retry = retry_callback()
    reclaimed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get("owner", "")).rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                retry(study, study._storage.get_trial(trial._trial_id))
                reclaimed += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker reclaimed it first
    return reclaimed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- cells and rows


@dataclasses.dataclass
class Context:
    """What every trial of one study run shares."""

    spec: StudySpec
    profile: str
    run_dir: Path
    device: str = "cpu"
    seeds: tuple[int, ...] = ()
    commit: str = dataclasses.field(default_factory=git_commit)

    @property
    def profile_spec(self) -> Profile:
        """This study's profile (with the study file's overrides)."""
        return self.spec.profiles[self.profile]

    @property
    def cfg(self) -> TrainConfig:
        """The training config of this profile for this study."""
        return self.profile_spec.train

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The variants this profile runs (a variant may be limited to some profiles)."""
        return tuple(v for v in self.spec.variants if not v.profiles or self.profile in v.profiles)

    def resolved(self, label: str) -> ResolvedVariant:
        """A variant's network under this profile (resolved once, when the study was loaded)."""
        return self.spec.resolved[self.profile][label]

    @property
    def results_path(self) -> Path:
        """This study's results table."""
        return results.results_path(self.run_dir, self.spec.name)


def _row_base(ctx: Context, variant_label: str, reference: bool, dataset: str, seed: int, degradation: str = "none") -> dict[str, Any]:
    protocol = resolve_protocol(dataset)
    return {"study": ctx.spec.name, "axis": ctx.spec.axis, "variant": variant_label, "is_reference": reference,
            "dataset": dataset, "degradation": degradation, "protocol": protocol, "fold": fold_of(protocol, seed),
            "seed": seed, "profile": ctx.profile}


def fold_of(protocol: str, seed: int) -> int:
    """The test fold a seed uses: k-fold protocols rotate the folds over seeds (seed s tests fold s mod k)."""
    _, _, k = protocol.partition("kfold-test:")
    return seed % int(k) if k.isdigit() else 0


def _finished(ctx: Context) -> dict[tuple, dict[str, Any]]:
    return {results.row_key(r): r for r in results.load_rows(ctx.results_path) if r.get("status") != "failed"}


def _train_row(ctx: Context, trial: optuna.Trial, base: dict[str, Any], network: NetworkSpec | str | ResolvedVariant,
               extra_tests: tuple[str, ...] = (), cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Train one cell, reporting every epoch to Optuna, and return its result row."""
    cfg = cfg or ctx.cfg
    history = ctx.run_dir / ctx.spec.name / "history" / f"{_slug(base)}.csv"

    multi = len(trial.study.directions) > 1

    def report(epoch: int, metrics: dict[str, float]) -> None:
        if multi:  # Optuna has no intermediate values (nor pruning) for multi-objective studies
            return
        trial.report(metrics["val_acc"], epoch)
        if ctx.spec.kind == "search" and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    resolved = network if isinstance(network, ResolvedVariant) else None
    network = resolved.network if resolved else network
    protocol = "kfold-test" if base["protocol"].startswith("kfold-test") else base["protocol"]
    result = train(network, base["dataset"], cfg=cfg, seed=base["seed"], device=ctx.device, protocol=protocol,
                   fold=base["fold"], history_path=history, on_epoch=report, extra_test_degradations=extra_tests)
    spec_hash = network.digest() if isinstance(network, NetworkSpec) else str(network)
    model = network.name if isinstance(network, NetworkSpec) else network
    return {**result, **base, "model": model, "spec_hash": spec_hash, "git_commit": ctx.commit,
            "trial_number": trial.number, "history_path": str(history.relative_to(ctx.run_dir / ctx.spec.name)),
            "train_config": ctx.profile_spec.describe(), "proxy": ctx.profile_spec.proxy,
            "width_multiplier": network.blocks[0].width_multiplier if isinstance(network, NetworkSpec) else None,
            "match": resolved.variant.match if resolved else "",
            "raw_flops": resolved.raw_flops if resolved else None, "raw_params": resolved.raw_params if resolved else None}


def _slug(base: dict[str, Any]) -> str:
    text = f"{base['variant']}-{base['dataset']}-{base['degradation']}-s{base['seed']}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]


def _write(ctx: Context, row: dict[str, Any], trial: optuna.Trial | None = None) -> None:
    config = row.get("config", {})
    row = {k: v for k, v in row.items() if k not in ("config", "extra_tests")}
    row["config"] = config if isinstance(config, str) else json.dumps(config)
    results.check_row(row)
    results.append_row(ctx.results_path, row)
    if trial is not None:
        _store_rows(trial, [row])


def _write_cell(ctx: Context, trial: optuna.Trial, rows: list[dict[str, Any]]) -> bool:
    """Write a cell's rows unless another worker got there first (two workers can pick one cell in
    the same instant); the check and the append happen under the table's lock. Returns whether written."""
    key = results.row_key(rows[0])
    with _table_lock(ctx.results_path):
        if key in _finished(ctx) or _stored_elsewhere(trial, key):
            return False
        for row in rows:
            _write(ctx, row, trial)
    return True


@contextlib.contextmanager
def _table_lock(path: Path):
    """An exclusive lock on a results table, shared by every worker of this machine."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stored_elsewhere(trial: optuna.Trial, key: tuple) -> bool:
    """Whether another trial (finished or still running, on any machine) already stored this cell's row."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number != trial.number and any(results.row_key(r) == key for r in other.user_attrs.get("rows", [])):
            return True
    return False


def _store_rows(trial: optuna.Trial, rows: list[dict[str, Any]]) -> None:
    """Keep a trial's rows in the Optuna storage too (user attr "rows", after the table has them), so
    machines that share only the storage can rebuild the results table (`import_rows`)."""
    stored = trial.user_attrs.get("rows", [])
    trial.set_user_attr("rows", stored + json.loads(json.dumps(rows, default=results._jsonable)))


def import_rows(study: optuna.Study, path: Path) -> int:
    """Append to a results table the rows that finished trials keep in the storage and the table lacks
    (rows other machines ran, when workers share the storage but not the run directory); returns how many."""
    # storage first, then the table: a row reaches the storage only after its worker wrote its table
    stored = [row for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
              for row in t.user_attrs.get("rows", [])]
    if not stored:
        return 0
    added = 0
    with _table_lock(path):  # workers of one machine importing at once append a row once
        have = {results.row_key(r) for r in results.load_rows(path)}
        for row in stored:
            if results.row_key(row) not in have:
                results.append_row(path, row)
                have.add(results.row_key(row))
                added += 1
    return added


def export_rows(storage: str, study_name: str, run_dir: Path) -> int:
    """Rebuild `<run_dir>/<study>/results.jsonl` from a shared storage URL alone; returns rows added."""
    opened = open_storage(run_dir, study_name, storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(opened)
        raise KitError(f"no study {study_name!r} in the storage; it holds: {', '.join(names) or 'none'}") from None
    return import_rows(study, results.results_path(run_dir, study_name))


def _reused_row(ctx: Context, network: NetworkSpec | str, base: dict[str, Any]) -> dict[str, Any] | None:
    """The row of an identical run (same network, data, seed, profile and config) in another study of
    this run directory — e.g. the paper configuration, the reference of every ablation axis."""
    spec_hash = network.digest() if isinstance(network, NetworkSpec) else str(network)
    config = json.dumps(dataclasses.asdict(ctx.cfg))
    for path in sorted(ctx.run_dir.glob("*/results.jsonl")):
        if path == ctx.results_path:
            continue
        for row in results.load_rows(path):
            if (row.get("status") == "ok" and row.get("spec_hash") == spec_hash and row.get("config") == config
                    and row.get("test_degraded_only") is not True
                    and all(row.get(k) == base[k] for k in ("dataset", "degradation", "protocol", "fold", "seed", "profile"))):
                history = path.parent / row.get("history_path", "")
                return {**row, **base, "reused_from": row["study"], "git_commit": ctx.commit,
                        "history_path": str(history.resolve()) if row.get("history_path") else ""}
    return None


def _duplicate_running(trial: optuna.Trial, params: dict[str, Any]) -> bool:
    """Whether another RUNNING trial already holds this cell (a second worker's tail-of-grid pick)."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if other.number != trial.number and other.params == params and other.number < trial.number:
            return True
    return False


def _objective_value(row: dict[str, Any]) -> float:
    value = row.get("val_accuracy")
    if row.get("status") != "ok" or value is None or (isinstance(value, float) and math.isnan(value)):
        raise optuna.TrialPruned(f"cell ended as {row.get('status')}: {row.get('stop_reason', '')}")
    return float(value)


# --------------------------------------------------------------------------- objectives


def grid_objective(ctx: Context) -> Callable[[optuna.Trial], float]:
    """Objective of a grid or robustness study: one cell (variant × dataset × seed) per trial."""
    variants = {v.label: v for v in ctx.variants}

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("owner", _owner())
        label = trial.suggest_categorical("variant", list(variants))
        dataset = trial.suggest_categorical("dataset", list(ctx.spec.datasets))
        # an int range, not a categorical of the seed list: adaptive seeds grow that list mid-study
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        variant: Variant = variants[label]
        levels = ctx.spec.degradations if ctx.spec.kind == "robustness" else ("none",)
        bases = [_row_base(ctx, label, variant.reference, dataset, seed, level) for level in levels]
        with _table_lock(ctx.results_path):  # a worker writing this cell right now holds it: wait, then see its row
            if _stored_elsewhere(trial, results.row_key(bases[0])):
                raise optuna.TrialPruned("another trial already finished this cell")
            done = _finished(ctx)
            if all(results.row_key(b) in done for b in bases):
                _store_rows(trial, [done[results.row_key(b)] for b in bases])
                return _objective_value(done[results.row_key(bases[0])])
        if _duplicate_running(trial, trial.params):
            raise optuna.TrialPruned("another worker holds this cell")
        resolved = ctx.resolved(label)
        row = _reused_row(ctx, resolved.network, bases[0]) if len(levels) == 1 else None
        if row is None:
            row = _train_row(ctx, trial, bases[0], resolved, extra_tests=tuple(levels[1:]))
        rows = [row] + [{**row, **base, "test_accuracy": row.get("extra_tests", {}).get(base["degradation"], {}).get("accuracy"),
                         "test_loss": row.get("extra_tests", {}).get(base["degradation"], {}).get("loss"),
                         "test_degraded_only": True} for base in bases[1:]]
        if not _write_cell(ctx, trial, rows):
            raise optuna.TrialPruned("another worker finished this cell first")
        return _objective_value(row)

    return objective


def sample_network(trial: optuna.Trial, ctx: Context) -> tuple[NetworkSpec, dict[str, Any]]:
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
    return variant_network(ctx.spec, variant, ctx.profile_spec.width), {"lr": lr, "label": variant.label}


def search_objective(ctx: Context) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """Objective of a search study: sample a spec, reject it outside the FLOPs/params bands, train it."""
    space = ctx.spec.search
    multi = len(space.objectives) > 1

    def objective(trial: optuna.Trial):
        trial.set_user_attr("owner", _owner())
        network, extra = sample_network(trial, ctx)
        model = MKNet(network)
        counts = {**count_params(model), "flops": count_flops(model)["flops"]}
        trial.set_user_attr("flops", counts["flops"])
        trial.set_user_attr("params", counts["params"])
        for key, band in (("flops", space.flops_band), ("params", space.params_band)):
            if not band[0] <= counts[key] <= band[1]:
                trial.set_user_attr("rejected", f"{key} {counts[key]:,} outside [{band[0]:g}, {band[1]:g}]")
                raise optuna.TrialPruned(trial.user_attrs["rejected"])
        base = _row_base(ctx, extra["label"], False, ctx.spec.datasets[0], ctx.seeds[0])
        done = _finished(ctx)
        if results.row_key(base) in done:
            row = done[results.row_key(base)]
        else:
            try:
                row = _train_row(ctx, trial, base, network, cfg=dataclasses.replace(ctx.cfg, lr=extra["lr"]))
            except optuna.TrialPruned:
                # one row per trial, pruned ones included, so the table shows what the pruner cut
                last = max(trial.storage.get_trial(trial._trial_id).intermediate_values.items(), default=(0, None))
                _write(ctx, {**base, **counts, "model": network.name, "spec_hash": network.digest(), "status": "pruned",
                             "val_accuracy": last[1], "epochs": last[0], "trial_number": trial.number,
                             "search_params": json.dumps(trial.params), "git_commit": ctx.commit}, trial)
                raise
            row["search_params"] = json.dumps(trial.params)
            _write(ctx, row, trial)
        accuracy = _objective_value(row)
        return (accuracy, float(row["flops"])) if multi else accuracy

    return objective


# --------------------------------------------------------------------------- running


def make_study(ctx: Context, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the Optuna study with the sampler and pruner of its kind."""
    spec = ctx.spec
    if spec.kind == "search":
        multi = len(spec.search.objectives) > 1
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=max(2, min(10, spec.profiles[ctx.profile].n_trials // 3)))
        pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                  "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(ctx.cfg.epochs, 1)),
                  "none": optuna.pruners.NopPruner()}[spec.search.pruner]
        directions = ["maximize", "minimize"] if multi else ["maximize"]
        return optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                   directions=directions, load_if_exists=True)
    space = {"variant": [v.label for v in ctx.variants], "dataset": list(spec.datasets), "seed": list(ctx.seeds)}
    return optuna.create_study(study_name=spec.name, storage=storage, sampler=_QueuedGridSampler(space, seed=0),
                               pruner=optuna.pruners.NopPruner(), direction="maximize", load_if_exists=True)


class _QueuedGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, tolerant of the seed-major queue: an enqueued trial carries no grid id, and
    GridSampler's end-of-grid bookkeeping (which would fail on it) has nothing to do for it; the runner
    stops by the results table's missing cells, not by the grid."""

    def after_trial(self, study, trial, state, values) -> None:
        if "grid_id" in study._storage.get_trial_system_attrs(trial._trial_id):
            super().after_trial(study, trial, state, values)


def expected_rows(ctx: Context) -> int:
    """How many result rows a finished study has (search: its trial budget, as an upper bound)."""
    if ctx.spec.kind == "search":
        return ctx.spec.profiles[ctx.profile].n_trials
    levels = len(ctx.spec.degradations) if ctx.spec.kind == "robustness" else 1
    return len(ctx.variants) * len(ctx.spec.datasets) * len(ctx.seeds) * levels


def missing_cells(ctx: Context) -> int:
    """Grid cells (or search trials) still to run, judged from the results table."""
    rows = [r for r in results.load_rows(ctx.results_path) if r.get("profile") == ctx.profile and r.get("status") != "failed"]
    if ctx.spec.kind == "search":  # one row per trained trial, pruned ones included
        return max(0, expected_rows(ctx) - len(rows))
    done = {results.row_key(r) for r in rows}
    missing = 0
    for v in ctx.variants:
        for d in ctx.spec.datasets:
            for s in ctx.seeds:
                missing += results.row_key(_row_base(ctx, v.label, v.reference, d, s)) not in done
    return missing


def _others_running(study: optuna.Study) -> bool:
    """Whether a RUNNING trial belongs to another process (this one runs none between its trials)."""
    me = _owner()
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
               deadline: float = 0.0) -> None:
    """Work on one study until every cell has a row (or the search budget is spent)."""
    storage = open_storage(ctx.run_dir, ctx.spec.name, storage_url)
    study = make_study(ctx, storage)
    shared = isinstance(storage, optuna.storages.RDBStorage)
    if not shared:
        # on an RDB the heartbeat does this; a host:pid check there could fail a live worker's trial
        # in another container that shares the host name
        reclaim_dead_trials(study)
    objective = _recording_errors(search_objective(ctx) if ctx.spec.kind == "search" else grid_objective(ctx))
    objective = logged_trials(ctx.spec.name, objective)  # a log line per trial start/finish/failure
    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial()
        if deadline and time.time() > deadline:
            study.stop()  # the run's wall-clock guard: finish this trial, start no other

    callbacks = [after_trial]
    stalled, before = 0, None
    while True:
        if shared:
            import_rows(study, ctx.results_path)  # rows finished on machines that share only the storage
        missing = missing_cells(ctx)
        if missing == 0 or (deadline and time.time() > deadline):
            return
        if before is not None and missing >= before:
            states = {t.state for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))}
            if states == {TrialState.RUNNING} and _others_running(study):
                # the cells left run on other workers: wait until they finish, or until a dead worker's
                # trial is failed and re-queued (then run it here): by heartbeat on an RDB, by host:pid
                # on the local journal
                _wait_for_others(study, heartbeat_s())
                if shared:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                else:
                    reclaim_dead_trials(study)
                continue
            if TrialState.WAITING not in states:
                stalled += 1
                if stalled >= 3:
                    raise _incomplete(ctx, study)
        else:
            stalled = 0
        before = missing
        if ctx.spec.kind != "search":
            _enqueue_missing(ctx, study)
        # a failed trial is caught (recorded by Optuna) so one bad cell cannot end the study
        study.optimize(objective, n_trials=missing, callbacks=callbacks, catch=(RuntimeError, ValueError))


def enqueue_missing(ctx: Context, storage_url: str | None = None) -> None:
    """Queue a grid study's missing cells seed-major before workers start (see `_enqueue_missing`)."""
    if ctx.spec.kind != "search":
        _enqueue_missing(ctx, make_study(ctx, open_storage(ctx.run_dir, ctx.spec.name, storage_url)))


def _enqueue_missing(ctx: Context, study: optuna.Study) -> None:
    """Queue the missing cells seed-major (every variant of seed 0, then of seed 1, …): within a seed
    the variants are paired, so a run stopped by its time guard leaves complete seeds, not stray cells."""
    done = {results.row_key(r) for r in results.load_rows(ctx.results_path) if r.get("status") != "failed"}
    held = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
        params = t.system_attrs.get("fixed_params") or t.params
        held.add((params.get("variant"), params.get("dataset"), params.get("seed")))
    for seed in ctx.seeds:
        for dataset in ctx.spec.datasets:
            for v in ctx.variants:
                cell = (v.label, dataset, seed)
                if cell not in held and results.row_key(_row_base(ctx, v.label, v.reference, dataset, seed)) not in done:
                    study.enqueue_trial({"variant": v.label, "dataset": dataset, "seed": seed})


def _recording_errors(objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
    """The objective, recording a failure's first line on the trial (Optuna only logs it)."""

    def wrapped(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:300])
            raise

    return wrapped


def _incomplete(ctx: Context, study: optuna.Study) -> KitError:
    """The one-line error of a study whose cells keep failing (or whose search keeps being rejected)."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    rejected = sum(1 for t in trials if "rejected" in t.user_attrs)
    last = failed[-1].user_attrs.get("error", "none recorded") if failed else "none recorded"
    hint = f"; {rejected} sampled specs fell outside the FLOPs/params bands (widen [search] bands)" if rejected else ""
    return KitError(f"study {ctx.spec.name}: {missing_cells(ctx)} cells not completed after retries ({len(failed)} failed "
                    f"trials, last error: {last}{hint}); finished rows are kept in {ctx.results_path}; fix and re-run")


def write_study_json(ctx: Context, **extra: Any) -> None:
    """Provenance of a study run beside its results (read by the report)."""
    import platform

    import torch

    path = ctx.run_dir / ctx.spec.name / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.exists() else {}
    sources = {}
    for d in ctx.spec.datasets:
        try:
            files = locate(d, "test", download=False)
            sources[d] = files.source
        except DataError as err:
            sources[d] = f"not found: {err}"
    doc = {**previous, "study": ctx.spec.name, "axis": ctx.spec.axis, "kind": ctx.spec.kind,
           "description": ctx.spec.description, "profile": ctx.profile,
           "protocol": ", ".join(sorted({resolve_protocol(d) for d in ctx.spec.datasets})), "datasets": sources,
           "device": ctx.device, "torch_version": torch.__version__, "python": platform.python_version(),
           "git_commit": ctx.commit, "started": previous.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
           "cells_total": expected_rows(ctx), "seeds": list(ctx.seeds), "train_config": dataclasses.asdict(ctx.cfg),
           "profile_description": ctx.profile_spec.describe(), "proxy": ctx.profile_spec.proxy,
           "profile_overrides": list(ctx.profile_spec.overrides), "equivalence_margin": ctx.spec.equivalence_margin,
           "variants": {v.label: _variant_summary(ctx.resolved(v.label)) for v in ctx.variants} if ctx.spec.kind != "search" else {},
           "spec_file": ctx.spec.path, **extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)


def _variant_summary(resolved: ResolvedVariant) -> dict[str, Any]:
    network = resolved.network
    return {"network": network.name if isinstance(network, NetworkSpec) else network, "match": resolved.variant.match,
            "width_multiplier": network.blocks[0].width_multiplier if isinstance(network, NetworkSpec) else None,
            "flops": resolved.flops, "params": resolved.params, "raw_flops": resolved.raw_flops,
            "raw_params": resolved.raw_params}


def check_profile(spec: StudySpec, profile: str) -> None:
    """A profile the study does not define is a one-line error."""
    if profile not in spec.profiles:
        raise KitError(f"{spec.path}: profile {profile!r} is not defined; use one of: {', '.join(spec.profiles)}")
