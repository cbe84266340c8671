"""The Optuna search of a search study, read from its journal or its `--storage` URL: a summary line, the trials and the importances.

Only the searched parameters count: a trial's cell names (variant, dataset, seed: `CELL_PARAMS`)
are never reported as searched, ranked or plotted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd

from study.errors import KitError
from study.storage import sqlalchemy_url

#: Parameters a grid study's trials carry to name their cell: never searched, never plotted.
CELL_PARAMS = ("variant", "dataset", "seed")


def searched_params(study) -> list[str]:
    """The parameters a search sampled, in first-seen order: every trial parameter except the cell names (seed...)."""
    names = dict.fromkeys(name for trial in study.trials for name in trial.distributions)
    return [name for name in names if name not in CELL_PARAMS]


def summary_line(search, params: list[str]) -> str:
    """What the search did in one paragraph: trials by state, searched parameters, best trial or Pareto set."""
    states = pd.Series([t.state.name for t in search.trials]).value_counts()
    text = f"Optuna study {search.study_name}: {len(search.trials)} trials (" + ", ".join(
        f"{s.lower()} {n}" for s, n in states.items()) + f"), searching {', '.join(params) or 'no parameter'}."
    directions = [d.name.lower() for d in search.directions]
    if len(directions) == 1 and states.get("COMPLETE", 0):
        best = search.best_trial
        values = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                           for k, v in best.params.items() if k in params)
        text += f" Best value {best.value:.4g} ({directions[0]}) at trial {best.number}: {values}."
    elif len(directions) > 1 and states.get("COMPLETE", 0):
        text += f" {len(search.best_trials)} Pareto-optimal trials for objectives {', '.join(directions)}."
    return text


def trials_frame(search, params: list[str]) -> pd.DataFrame:
    """One row per trial: number, state, objective value(s) and the searched parameters (the data behind the plots)."""
    records = []
    for t in search.trials:
        values = t.values or []
        record = {"number": t.number, "state": t.state.name.lower()}
        record.update({f"value_{i}": v for i, v in enumerate(values)} if len(values) > 1 else
                      {"value": values[0] if values else None})
        record.update({p: t.params.get(p) for p in params})
        records.append(record)
    return pd.DataFrame(records)


def importances(search, params: list[str]) -> tuple[pd.DataFrame, str | None]:
    """PED-ANOVA importances (Optuna's default) of the searched parameters, or why they mean nothing here."""
    import optuna

    empty = pd.DataFrame(columns=["parameter", "importance"])
    target = (lambda t: t.values[0]) if len(search.directions) > 1 else None
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in search.trials)
    if complete < 2 or not params:
        return empty, None  # optuna_figures notes it
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = optuna.importance.get_param_importances(search, params=params, target=target)
    except Exception as err:  # noqa: BLE001  (a constant parameter, say: a note, not a crash)
        return empty, f"Parameter importances could not be computed: {type(err).__name__}: {err}".splitlines()[0]
    if any("too small" in str(w.message) for w in caught):
        return empty, (f"Parameter importances are not shown: {complete} completed trials are too few for "
                       "Optuna to tell the parameters apart (it would report them all equal).")
    return pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())}), None


def load(study):
    """The study's Optuna study (named like the study, or the storage's only study): from its `--storage` URL
    when one is given and holds it, else from its journal."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted = [str(study.provenance.get("study", study.name)), study.name]
    looked = []
    for where, opener in _sources(study):
        storage = opener()
        names = optuna.get_all_study_names(storage)
        name = next((n for n in wanted if n in names), names[0] if len(names) == 1 else None)
        if name is not None:
            return optuna.load_study(study_name=name, storage=storage)
        looked.append(f"{where} (holds {names})")
    raise KitError(f"no Optuna study named {study.name!r} in {' or '.join(looked) or 'any storage: no journal, no --storage'}")


def _sources(study) -> list[tuple[str, Callable[[], Any]]]:
    """Where the study's trials may be, each opened only when reached: the storage URL first, then the journal."""
    import optuna

    sources: list[tuple[str, Callable[[], Any]]] = []
    url = getattr(study, "storage_url", None)
    if url:
        shown = url.rpartition("@")[2]  # no credentials in a report
        sources.append((f"storage {shown}", lambda: optuna.storages.RDBStorage(sqlalchemy_url(url))))
    if study.journal is not None:
        sources.append(("the journal", lambda: optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(study.journal)))))
    return sources
