"""Profiles: the one owner of "how much work a run does".

A profile is a training config (`study.train.TrainConfig`), the seed count and trial budget of a
study, the proxy width every MK network is scaled to, and the run's time guard. `study train
--profile X` and a study run under `X` train the same way; a study file may override a profile's
fields in its `[profiles.X]` table, and every override is listed in the profile's description,
which is generated from the fields (no hand-written restatement of the numbers).

Budgets are work (optimizer steps, epochs, images), never seconds: the time guard only stops a
study from *starting* a new trial, so a trial's result never depends on machine load.

The quick profile's numbers come from measured calibrations on 2 CPU cores (docs/calibration.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from study.errors import KitError, SpecError
from study.schema import Doc, MinLen, NonEmpty, Noun, Range, fields_of, file_keys
from study.train import TrainConfig


@dataclass(frozen=True)
class Profile:
    """Everything a profile decides: training, seeds, search trials, proxy width and time guard."""

    name: str
    train: TrainConfig
    seeds: int = 1  # seeds per grid cell (seeds 0 … seeds-1)
    n_trials: int = 10  # trials of a search study
    width: float = 1.0  # width multiplier applied to every MK network (1.0 = the paper's widths)
    guard_min: float = 0.0  # stop *starting* trials after this many minutes (0 = never); never cuts a trial
    workers: int = 1  # worker processes a study run starts on one machine, each with cores // workers threads
    keep_weights: bool = True  # save each trial's best-validation weights beside its row (`checkpoints/`)
    cost_batch: int = 128  # the one batch Table II profiles every model at (`study.costs`)
    datasets: tuple[str, ...] = ()  # the study's datasets this profile runs (empty = all of them)
    overrides: tuple[str, ...] = ()  # "key=value" set by a study file, shown wherever the profile is described
    rungs: tuple[Profile, ...] = ()  # a ladder: the same cells at each of these budgets/widths (`rungs = [...]`)
    rung: str = ""  # this profile's rung label when it is one rung of a ladder, else ""

    @property
    def proxy(self) -> bool:
        """Whether rows of this profile are a proxy of the paper's protocol (narrow widths or subsets)."""
        t = self.train
        return self.width != 1.0 or bool(t.train_subset) or bool(t.test_subset) or t.epochs < 100

    def steps(self, train_size: int | None = None) -> int:
        """Optimizer steps per trial at the epoch cap (on `train_size` images when no subset is set)."""
        images = self.train.train_subset or train_size or 0
        return self.train.epochs * max(1, images // self.train.batch_size) if images else 0

    @property
    def scale(self) -> str:
        """Where a verdict of this profile was measured, as it is spoken: "450 steps, width ×0.25"."""
        t = self.train
        epochs = f"{t.epochs:,} epoch{'s' if t.epochs != 1 else ''}"
        budget = (f"{self.steps():,} step{'s' if self.steps() != 1 else ''}" if t.train_subset else
                  f"≤ {epochs} (early stopping)" if t.patience < t.epochs else epochs)
        return budget + (f", width ×{self.width:g}" if self.width != 1.0 else ", full width")

    @property
    def budget_images(self) -> int:
        """Training images the budget allows (the epoch cap × the subset or an assumed 54k split): a rung's size."""
        return self.train.epochs * (self.train.train_subset or ASSUMED_TRAIN_IMAGES)

    def ladder(self) -> tuple[Profile, ...]:
        """The rungs a study under this profile trains: its ladder, or itself as the one rung."""
        return self.rungs or (self,)

    def at(self, rung: str) -> Profile:
        """The rung of this profile's ladder labelled `rung` ("" = the profile itself)."""
        if not rung:
            return self
        for profile in self.rungs:
            if profile.rung == rung:
                return profile
        raise KitError(f"profile {self.name} has no rung {rung!r}; its rungs: {', '.join(r.rung for r in self.rungs) or 'none'}")

    def describe(self) -> str:
        """One line a reader needs beside every number of this profile, generated from the fields."""
        t = self.train
        parts = [f"{self.name} profile" + (f", rung {self.rung}" if self.rung else "")]
        if self.proxy:
            parts.append("PROXY")
        if self.width != 1.0:
            parts.append(f"MK networks at width ×{self.width:g}")
        if t.train_subset:
            parts.append(f"{self.steps():,} steps ({t.train_subset:,}-image stratified train subset × {t.epochs} epoch"
                         f"{'s' if t.epochs != 1 else ''}, batch {t.batch_size})")
        else:
            parts.append(f"full train split, ≤ {t.epochs} epochs, batch {t.batch_size}")
        if t.patience < t.epochs:
            parts.append(f"early stopping (patience {t.patience})")
        parts.append(f"{t.optimizer} lr {t.lr:g}" + (f" wd {t.weight_decay:g}" if t.weight_decay else "")
                     + (f", {t.schedule} schedule" if t.schedule != "constant" else ""))
        parts.append(t.precision + (" fast path" if t.fast else " fast inference path" if t.fast_eval else ""))
        if t.bn_recalibrate:
            parts.append(f"batch-norm statistics recomputed on {t.bn_recalibrate} training batches before each evaluation")
        parts.append(f"val {t.val_subset:,}" if t.val_subset else f"val {t.val_fraction:.0%} of train")
        parts.append(f"test subset {t.test_subset:,}" if t.test_subset else "full test split")
        parts.append(f"{self.seeds} seed{'s' if self.seeds != 1 else ''}")
        if self.datasets:
            parts.append(f"datasets {', '.join(self.datasets)} only")
        if self.workers > 1:
            parts.append(f"{self.workers} workers per machine")
        if self.overrides:
            parts.append("study overrides: " + ", ".join(self.overrides))
        if self.rungs:
            parts.append("ladder: " + " → ".join(r.rung for r in self.rungs))
        return "; ".join(parts)


PROFILES: dict[str, Profile] = {
    # The authors' protocol (val carved from train): GPU-scale. bf16 autocast on the `study.fast` rewrite (the
    # same function; on a GPU bf16 runs on the tensor cores, the authors' Keras trained fp32) and evaluation in
    # batches of 2,000 (evaluation in eval mode is per-image: its batch changes speed, not accuracy).
    "paper": Profile("paper", TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=1000, patience=30,
                                          precision="bf16", fast=True, eval_batch_size=2000, profile="paper"),
                     seeds=5, n_trials=100),
    # A powered proxy for 2 CPU cores, sized from measured paired spread (docs/calibration.md). It trains the
    # `study.fast` rewrite (the same function as plain bf16 autocast, tests/test_fast.py; faster, docs/performance.md).
    "quick": Profile("quick", TrainConfig(optimizer="adam", lr=2e-3, schedule="onecycle", batch_size=32, epochs=1,
                                          patience=1, precision="bf16", fast=True, train_subset=14_400, val_subset=500,
                                          eval_batch_size=500, profile="quick"),
                     seeds=5, n_trials=4, width=0.25, guard_min=13.0, workers=2, cost_batch=32),
}

ASSUMED_TRAIN_IMAGES = 54_000  # a 60k train split less the 10 % validation carve-out, when no subset is set


_THE_PROFILES = "the profile's"
_WIDTH = Range(0, 1e6, low_open=True, high_open=True)


@dataclass(frozen=True)
class Rung:
    """One rung of a ladder (`rungs = [{ steps = 450 }, { steps = 1800 }]`): the profile with its training budget
    and/or its width changed; every other setting is the profile's."""

    steps: Annotated[int | None, Range(1), Doc("the rung's budget in optimizer steps (as `steps` of the profile)",
                                               default=_THE_PROFILES)] = None
    epochs: Annotated[int | None, Range(1), Doc("the rung's epoch cap (`train.epochs`)", default=_THE_PROFILES)] = None
    train_subset: Annotated[int | None, Range(0), Doc("the rung's training subset (`train.train_subset`)",
                                                      default=_THE_PROFILES)] = None
    width: Annotated[float | None, _WIDTH, Doc("the rung's width multiplier", default=_THE_PROFILES)] = None


@dataclass(frozen=True)
class ProfileTable:
    """A study file's `[profiles.<name>]` table: what it changes of the registered profile `<name>`. A key left out
    keeps the profile's value; every change is listed in the profile's description (`Profile.overrides`)."""

    seeds: Annotated[int | None, Range(1), Doc("seeds per grid cell (seeds 0 … seeds-1; the older list form "
                                               "[0, 1, …] reads as its length)", default=_THE_PROFILES)] = None
    n_trials: Annotated[int | None, Range(1), Doc("trials of a search study", default=_THE_PROFILES)] = None
    workers: Annotated[int | None, Range(1), Doc("worker processes a study run starts on one machine, each with "
                                                 "cores // workers threads", default=_THE_PROFILES)] = None
    cost_batch: Annotated[int | None, Range(1), Doc("the one batch Table II profiles every model at (`study.costs`)",
                                                    default=_THE_PROFILES)] = None
    width: Annotated[float | None, _WIDTH, Doc("the width multiplier applied to every MK network (1.0 = the paper's "
                                               "widths)", default=_THE_PROFILES)] = None
    guard_min: Annotated[float | None, Range(0, 1e6, high_open=True), Doc(
        "stop *starting* trials after this many minutes (0 = never); never cuts a trial", default=_THE_PROFILES)] = None
    keep_weights: Annotated[bool | None, Doc("save each trial's best-validation weights beside its row "
                                             "(`checkpoints/`)", default=_THE_PROFILES)] = None
    datasets: Annotated[tuple[str, ...] | None, NonEmpty, Noun("a dataset name"), Doc(
        "the study's datasets this profile runs (a subset of `study.datasets`)", default="all of the study's")] = None
    train: Annotated[Mapping[str, Any] | None, Doc(
        "training settings laid over the profile's: keys of `TrainConfig`, listed below", default=_THE_PROFILES)] = None
    steps: Annotated[int | None, Range(1), Doc(
        "the budget as it is spoken: this many optimizer steps of the profile's batch over its epochs, on a stratified "
        "subset of steps × batch / epochs images (it sets `train.train_subset`)", default=_THE_PROFILES)] = None
    rungs: Annotated[tuple[Annotated[Rung, NonEmpty], ...] | None, MinLen(2), Doc(
        "a ladder: the same cells trained at each of these budgets and/or widths, smallest first (tables below)",
        default="no ladder")] = None


#: The `[profiles.<name>]` keys that set a `Profile` field as they are (the rest build its training config and ladder).
_AS_IS = tuple(k for k in file_keys(ProfileTable) if k not in ("train", "steps", "rungs"))


def get_profile(name: str) -> Profile:
    """A registered profile; an unknown name is a one-line error naming the known ones."""
    if name not in PROFILES:
        raise KitError(f"unknown profile {name!r}; use one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def with_training(profile: Profile, **changes: Any) -> Profile:
    """The profile with non-None training-config changes applied (e.g. a CLI's --lr), listed as overrides."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return profile
    return dataclasses.replace(profile, train=dataclasses.replace(profile.train, **changes),
                               overrides=(*profile.overrides, *(f"train.{k}={v}" for k, v in changes.items())))


def override(profile: Profile, table: Mapping[str, Any], where: str) -> Profile:
    """A profile with a study file's `[profiles.<name>]` table (`ProfileTable`) laid over it; every problem is one
    SpecError line."""
    prefix = f"profiles.{profile.name}"
    seeds = table.get("seeds") if isinstance(table, Mapping) else None
    if isinstance(seeds, list) and seeds == list(range(len(seeds))):
        table = {**table, "seeds": len(seeds)}  # the old "seeds = [0, 1, 2]" form
    given = fields_of(ProfileTable, table, where, prefix + ".")
    changes = {k: given[k] for k in _AS_IS if k in given}
    listed = [f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in changes.items()]
    train = profile.train
    if "train" in given:
        fields_of(TrainConfig, given["train"], where, f"{prefix}.train.")
        # laid over as written, not as converted: a whole-number lr stays an int, as in the `config` text of the
        # rows it trained (equal text = equal training)
        train = dataclasses.replace(train, **given["train"])
        listed += [f"train.{k}={v}" for k, v in given["train"].items()]
    if "steps" in given:
        train = _steps(train, given["steps"], where, prefix)
        listed.append(f"steps={given['steps']}")
    changed = dataclasses.replace(profile, train=train, overrides=(*profile.overrides, *listed), **changes)
    if "rungs" in given:
        changed = dataclasses.replace(changed, rungs=_rungs(changed, given["rungs"], where, prefix))
    return changed


def _steps(train: TrainConfig, steps: int, where: str, prefix: str) -> TrainConfig:
    """A budget written as it is spoken: `steps` optimizer steps of the profile's batch, over its epochs, on a
    stratified subset of steps × batch / epochs images (450 steps of batch 32 = one epoch of 14,400 images)."""
    images, rest = divmod(steps * train.batch_size, train.epochs)
    if rest:
        raise SpecError.at(where, f"{prefix}.steps", f"{steps} steps of batch {train.batch_size} do not split into "
                           f"{train.epochs} equal epochs", f"a multiple of {train.epochs // math.gcd(train.epochs, train.batch_size)}")
    return dataclasses.replace(train, train_subset=images)


def _rungs(profile: Profile, rungs: tuple[Rung, ...], where: str, prefix: str) -> tuple[Profile, ...]:
    """A ladder: each rung is the profile with its budget and/or width changed, labelled by its scale ("1,800 steps,
    width ×0.25"); distinct rungs, smallest first."""
    built = []
    for rung in rungs:
        given = {k: v for k, v in dataclasses.asdict(rung).items() if v is not None}
        train = {k: given.pop(k) for k in ("epochs", "train_subset") if k in given}
        changed = override(dataclasses.replace(profile, rungs=(), overrides=()), given | ({"train": train} if train else {}),
                           where)
        built.append(dataclasses.replace(changed, rung=changed.scale, overrides=profile.overrides))
    labels = [r.rung for r in built]
    if len(set(labels)) != len(labels):
        raise SpecError.at(where, f"{prefix}.rungs", f"two rungs have the same scale ({labels})", "distinct budgets or widths")
    sizes = [r.budget_images * r.width ** 2 for r in built]
    if sizes != sorted(sizes):
        raise SpecError.at(where, f"{prefix}.rungs", f"rungs {labels} are not in order of size", "the smallest rung first")
    return tuple(built)
