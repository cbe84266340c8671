"""Logging of the kit: stderr at a level set by -v/-q, a log file per study run, Optuna's lines routed through both.

The kit logs under the `study` logger (`study.trials` for trial start/finish/failure). On stderr the
default level is INFO (-q: warnings only; -v: debug); while a live progress bar runs, lines are written
through tqdm (`redirect_to_bar`) so the bar stays intact. While a study runs, `runs/<study>/run.log` receives INFO and above from every process
of the run (the parent and each worker append to it), each line with its time and process id.
Optuna's own logger is left alone at import; the CLI sets it to WARNING (INFO with -vv).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

KIT_LOGGER = "study"
FILE_FORMAT = "%(asctime)s %(levelname)s pid %(process)d %(name)s: %(message)s"
_ROUTED = (KIT_LOGGER, "optuna")  # loggers whose records reach our handlers


class _StderrHandler(logging.StreamHandler):
    """The kit's stderr handler (a plain one, recognised on reconfiguration); while a live bar runs,
    `tqdm.contrib.logging.logging_redirect_tqdm` (`redirect_to_bar`) writes its lines through `tqdm.write`."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)


def redirect_to_bar() -> contextlib.AbstractContextManager:
    """While a live progress bar is drawn, the kit's and Optuna's stderr lines go through `tqdm.write`, so the bar is
    redrawn below them (tqdm's own `logging_redirect_tqdm`)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=[logging.getLogger(name) for name in _ROUTED])


def level_of(verbosity: int) -> int:
    """The stderr level of a verbosity (-q = -1, default 0, -v = 1)."""
    return logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG


def configure(verbosity: int = 0) -> None:
    """Set up stderr logging once per process; 0 inherits STUDY_VERBOSITY (set for worker processes)."""
    if verbosity == 0:
        verbosity = int(os.environ.get("STUDY_VERBOSITY") or 0)
    os.environ["STUDY_VERBOSITY"] = str(verbosity)
    kit = logging.getLogger(KIT_LOGGER)
    kit.setLevel(logging.DEBUG)
    kit.propagate = False
    for name in _ROUTED:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setLevel(level_of(verbosity))
    handler.setFormatter(logging.Formatter("%(message)s" if verbosity <= 0 else "%(levelname)s %(name)s: %(message)s"))
    kit.addHandler(handler)
    _configure_optuna(verbosity, handler)


def _configure_optuna(verbosity: int, handler: logging.Handler) -> None:
    """Route Optuna's records through our handlers (not its own stderr handler), WARNING unless -vv."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbosity >= 2 else optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    logging.getLogger("optuna").addHandler(handler)


@contextlib.contextmanager
def study_log(run_dir: Path, study: str) -> Iterator[Path]:
    """Append INFO+ lines of the kit and Optuna to `run_dir/study/run.log` while the block runs."""
    path = Path(run_dir) / study / "run.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    loggers = [logging.getLogger(name) for name in _ROUTED]
    kit = loggers[0]
    if kit.level == logging.NOTSET or kit.level > logging.INFO:
        kit.setLevel(logging.INFO)  # library use without configure(): the file still gets info lines
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
