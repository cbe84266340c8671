"""One log line per trial event of a worker: start (with its cell when queued), finish, prune or failure, with duration."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import optuna

log = logging.getLogger("study.trials")

_GRID_KEYS = ("variant", "dataset", "seed", "rung")


def describe_cell(params: dict[str, Any]) -> str:
    """A trial's cell in words: `variant=… dataset=… seed=…` for a grid, its sampled parameters for a search."""
    if not params:
        return "cell not chosen yet"
    keys = [k for k in _GRID_KEYS if k in params] or sorted(params)
    return " ".join(f"{k}={_short(params[k])}" for k in keys)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _queued_params(trial: optuna.Trial) -> dict[str, Any]:
    """The parameters an enqueued trial will take (a grid cell), read before the objective suggests them."""
    attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return dict(attrs.get("fixed_params") or {})


def _result(value: Any) -> str:
    values = value if isinstance(value, (tuple, list)) else (value,)
    shown = [f"{100 * v:.1f}%" if i == 0 and isinstance(v, float) and not math.isnan(v) and v <= 1 else _short(v)
             for i, v in enumerate(values)]
    return "val " + ", ".join(shown)


def logged_trials(study_name: str, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
    """The objective, logging each trial's start, finish (or prune) and failure with its cell and duration."""

    def wrapped(trial: optuna.Trial) -> Any:
        began = time.time()
        log.info("%s trial %d start: %s", study_name, trial.number, describe_cell(_queued_params(trial)))
        try:
            value = objective(trial)
        except optuna.TrialPruned as err:
            log.info("%s trial %d pruned after %.1f s: %s: %s", study_name, trial.number, time.time() - began,
                     describe_cell(trial.params), str(err) or "pruned")
            raise
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0]
            log.warning("%s trial %d failed after %.1f s: %s: %s: %s", study_name, trial.number, time.time() - began,
                        describe_cell(trial.params), type(err).__name__, first)
            raise
        log.info("%s trial %d done in %.1f s: %s: %s", study_name, trial.number, time.time() - began,
                 describe_cell(trial.params), _result(value))
        return value

    return wrapped
