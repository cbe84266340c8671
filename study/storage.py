"""Where a study's trials live: Optuna storage (a local journal file, or an RDB with heartbeats),
reclaiming dead workers' trials, and the copy of each trial's rows kept in the storage.

The journal backend has no heartbeat, so a local re-run fails and retries trials whose owning
process (host:pid recorded on the trial) is gone. Each trial also keeps its rows in the storage
(user attr "rows"); on an RDB every worker copies the rows it lacks into its own table
(`import_rows`), so machines need share only the database, not the run directory (docs/scale-out.md).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from study import results
from study.errors import KitError

log = logging.getLogger(__name__)
HEARTBEAT_S = 20
MAX_RETRY = 2


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
    repaired = repair_journal(path)
    if repaired:
        log.warning(repaired)
    return JournalStorage(JournalFileBackend(str(path)))


def repair_journal(path: Path) -> str | None:
    """Cut a torn Optuna journal (a kill or a full disk mid-write) back to its last complete record, under the
    journal's own lock, keeping the original beside it; returns the one line that says so (None: nothing to do).

    Optuna reads past a torn *last* record, but the next append lands after it and every later read fails. The
    records cut hold trial states only: every finished row is in results.jsonl, and a lost trial's cell is queued
    again from the table."""
    if not path.exists() or not path.stat().st_size:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no line end")
                json.loads(line)
            except ValueError:
                break
            good += len(line)
        if good == len(data):
            return None
        backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        backup.write_bytes(data)
        with open(path, "r+b") as fh:
            fh.truncate(good)
            os.fsync(fh.fileno())
    finally:
        lock.release()
    return (f"{path}: repaired a torn Optuna journal: cut {len(data) - good} bytes after its last complete record "
            f"(the original is kept as {backup.name}); finished rows are safe in results.jsonl")


def owner() -> str:
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


def stored_elsewhere(trial: optuna.Trial, key: tuple, current=lambda row: True) -> bool:
    """Whether another trial (finished or still running, on any machine) already stored a `current` row of this
    cell (a row of what the cell trained before its study file was edited does not count)."""
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number != trial.number and any(results.row_key(r) == key and current(r)
                                                for r in other.user_attrs.get("rows", [])):
            return True
    return False


def store_rows(trial: optuna.Trial, rows: list[dict[str, Any]]) -> None:
    """Keep a trial's rows in the Optuna storage too (user attr "rows", after the table has them), so
    machines that share only the storage can rebuild the results table (`import_rows`)."""
    stored = trial.user_attrs.get("rows", [])
    trial.set_user_attr("rows", stored + json.loads(json.dumps(rows, default=results.jsonable)))


def stored_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The rows that finished trials keep in the storage (rows other machines ran, when workers share
    the storage but not the run directory). A row reaches the storage only after its worker wrote its
    table, so reading the storage first and the table second never loses one."""
    return [row for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            for row in t.user_attrs.get("rows", [])]


def import_rows(study: optuna.Study, path: Path) -> int:
    """Append to a results table the stored rows it lacks; returns how many."""
    return results.ResultsTable(path).import_rows(stored_rows(study))


def export_rows(storage: str, study_name: str, run_dir: Path) -> int:
    """Rebuild `<run_dir>/<study>/results.jsonl` from a shared storage URL alone; returns rows added."""
    opened = open_storage(run_dir, study_name, storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(opened)
        raise KitError(f"no study {study_name!r} in the storage; it holds: {', '.join(names) or 'none'}") from None
    return import_rows(study, results.results_path(run_dir, study_name))
