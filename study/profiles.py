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
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from study.errors import KitError, SpecError
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

_PROFILE_KEYS = ("seeds", "n_trials", "width", "guard_min", "workers", "keep_weights", "cost_batch", "datasets", "train",
                 "steps", "rungs")
#: What a rung of a ladder may change: its training budget and its width (everything else is the profile's).
RUNG_KEYS = ("steps", "epochs", "train_subset", "width")
ASSUMED_TRAIN_IMAGES = 54_000  # a 60k train split less the 10 % validation carve-out, when no subset is set


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
    """A profile with a study file's `[profiles.<name>]` table laid over it; every problem is one SpecError line."""
    prefix = f"profiles.{profile.name}"
    unknown = sorted(set(table) - set(_PROFILE_KEYS))
    if unknown:
        raise SpecError.at(where, f"{prefix}.{unknown[0]}", "unknown key", ', '.join(_PROFILE_KEYS))
    changes: dict[str, Any] = {}
    for key in ("seeds", "n_trials", "workers", "cost_batch"):
        if key in table:
            value = table[key]
            if isinstance(value, list) and key == "seeds" and value == list(range(len(value))):
                value = len(value)  # the old "seeds = [0, 1, 2]" form
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError.at(where, f"{prefix}.{key}", f"got {json.dumps(value)}", "an integer ≥ 1")
            changes[key] = value
    for key in ("width", "guard_min"):
        if key in table:
            value = table[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1e6 or (key == "width" and value <= 0):
                raise SpecError.at(where, f"{prefix}.{key}", f"got {json.dumps(value)}", "a positive number")
            changes[key] = float(value)
    if "keep_weights" in table:
        if not isinstance(table["keep_weights"], bool):
            raise SpecError.at(where, f"{prefix}.keep_weights", f"got {json.dumps(table['keep_weights'])}", "true or false")
        changes["keep_weights"] = table["keep_weights"]
    if "datasets" in table:
        value = table["datasets"]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise SpecError.at(where, f"{prefix}.datasets", f"got {json.dumps(value, default=str)}", "a list of the study's dataset names")
        changes["datasets"] = tuple(value)
    train = profile.train
    if "train" in table:
        train = _train_override(train, table["train"], where, prefix)
    listed = [f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in changes.items()] + [f"train.{k}={v}" for k, v in dict(table.get("train", {})).items()]
    if "steps" in table:
        train = _steps(train, table["steps"], where, prefix)
        listed.append(f"steps={table['steps']}")
    changed = dataclasses.replace(profile, train=train, overrides=(*profile.overrides, *listed), **changes)
    if "rungs" in table:
        changed = dataclasses.replace(changed, rungs=_rungs(changed, table["rungs"], where, prefix))
    return changed


def _steps(train: TrainConfig, value: Any, where: str, prefix: str) -> TrainConfig:
    """A budget written as it is spoken: `steps` optimizer steps of the profile's batch, over its epochs, on a
    stratified subset of steps × batch / epochs images (450 steps of batch 32 = one epoch of 14,400 images)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError.at(where, f"{prefix}.steps", f"got {json.dumps(value, default=str)}", "an integer ≥ 1")
    images, rest = divmod(value * train.batch_size, train.epochs)
    if rest:
        raise SpecError.at(where, f"{prefix}.steps", f"{value} steps of batch {train.batch_size} do not split into "
                           f"{train.epochs} equal epochs", f"a multiple of {train.epochs // math.gcd(train.epochs, train.batch_size)}")
    return dataclasses.replace(train, train_subset=images)


def _rungs(profile: Profile, value: Any, where: str, prefix: str) -> tuple[Profile, ...]:
    """A ladder: each rung is the profile with its budget (`steps`, `epochs`, `train_subset`) and/or `width`
    changed, labelled by its scale ("1,800 steps, width ×0.25"); at least two distinct rungs, smallest first."""
    allowed = f"a list of at least two tables with keys from {', '.join(RUNG_KEYS)}, e.g. [{{ steps = 450 }}, {{ steps = 1800 }}]"
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(r, dict) and r for r in value):
        raise SpecError.at(where, f"{prefix}.rungs", f"got {json.dumps(value, default=str)}", allowed)
    rungs = []
    for i, table in enumerate(value):
        unknown = sorted(set(table) - set(RUNG_KEYS))
        if unknown:
            raise SpecError.at(where, f"{prefix}.rungs[{i}].{unknown[0]}", "unknown key", ", ".join(RUNG_KEYS))
        train = {k: table[k] for k in ("epochs", "train_subset") if k in table}
        rung_table = {k: v for k, v in table.items() if k in ("steps", "width")} | ({"train": train} if train else {})
        rung = override(dataclasses.replace(profile, rungs=(), overrides=()), rung_table, where)
        rungs.append(dataclasses.replace(rung, rung=rung.scale, overrides=profile.overrides))
    labels = [r.rung for r in rungs]
    if len(set(labels)) != len(labels):
        raise SpecError.at(where, f"{prefix}.rungs", f"two rungs have the same scale ({labels})", "distinct budgets or widths")
    sizes = [r.budget_images * r.width ** 2 for r in rungs]
    if sizes != sorted(sizes):
        raise SpecError.at(where, f"{prefix}.rungs", f"rungs {labels} are not in order of size", "the smallest rung first")
    return tuple(rungs)


def _train_override(train: TrainConfig, table: Any, where: str, prefix: str) -> TrainConfig:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    if not isinstance(table, dict):
        raise SpecError.at(where, f"{prefix}.train", f"got {json.dumps(table, default=str)}", "a table of TrainConfig fields")
    for key, value in table.items():
        if key not in fields or key == "profile":
            allowed = ", ".join(k for k in fields if k != "profile")
            raise SpecError.at(where, f"{prefix}.train.{key}", "unknown key", allowed)
        default = fields[key].default
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))) or (
                isinstance(default, str) and not isinstance(value, str)):
            raise SpecError(f"{where}: {prefix}.train.{key}: got {json.dumps(value, default=str)}; "
                            f"allowed: a {type(default).__name__} like the default {json.dumps(default)}")
        if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
            raise SpecError.at(where, f"{prefix}.train.{key}", f"got {json.dumps(value)}", "an integer")
        choices = typing.get_args(hints[key])
        if choices and value not in choices:
            raise SpecError.at(where, f"{prefix}.train.{key}", f"got {json.dumps(value)}", ', '.join(choices))
    return dataclasses.replace(train, **table)
