"""Opt-in per-epoch trackers (`study run --track tensorboard`): each trial's epoch-end history rows as
scalars in `runs/<study>/tensorboard/<cell>/`, written live from the epoch callback of `study.train.train`.

`study run --track` / `study worker --track` set it in the environment (`STUDY_TRACK`), where the trial
code reads it; a run passes `--track` on to its worker processes. TensorBoard is an optional extra: `pip install 'lrnet-study-kit[tensorboard]'`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from study.errors import KitError

TRACKERS = ("tensorboard",)
ENV = "STUDY_TRACK"

EpochCallback = Callable[[int, dict[str, float]], None]


def enable(track: str | None) -> None:
    """Check a `--track` choice (its package importable) and set it for this process's trials (none: unset)."""
    if not track:
        os.environ.pop(ENV, None)
        return
    if track not in TRACKERS:
        raise KitError(f"--track {track}: unknown tracker; allowed: {', '.join(TRACKERS)}")
    if importlib.util.find_spec(track) is None:
        raise KitError(f"--track {track}: the {track} package is not installed: pip install 'lrnet-study-kit[{track}]'")
    os.environ[ENV] = track


@contextlib.contextmanager
def epoch_tracker(folder: Path) -> Iterator[EpochCallback | None]:
    """A callback writing each epoch's metrics under `folder` (None when no tracker is enabled); closed on exit."""
    if os.environ.get(ENV) != "tensorboard":
        yield None
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise KitError("--track tensorboard: the tensorboard package is not installed: "
                       "pip install 'lrnet-study-kit[tensorboard]'") from None
    writer = SummaryWriter(str(folder))

    def write(epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if name not in ("epoch", "epoch_end"):
                writer.add_scalar(name, value, epoch)
        writer.flush()  # live: `tensorboard --logdir runs/<study>/tensorboard` shows the epoch now

    try:
        yield write
    finally:
        writer.close()


def chained(*callbacks: EpochCallback | None) -> EpochCallback | None:
    """One epoch callback calling each given one in order (None when none is given)."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def call(epoch: int, metrics: dict[str, float]) -> None:
        for callback in present:
            callback(epoch, metrics)

    return call
