"""The training engine: one seeded run of one model on one dataset, with the data resident on the
device, early stopping on validation loss with best-weights restore, and one final test evaluation.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from study import data as datasets
from study.errors import KitError
from study.fast import optimize, tune_allocator
from study.files import atomic_path
from study.measure import autocast, count_flops, count_params, peak_memory_mb, provenance
from study.models import ResolvedModel, resolve_model
from study.schema import Doc, Internal, Range
from study.spec import NetworkSpec


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a run trains; saved with every result row.

    Its length is work, never time: `epochs` over `train_subset` images (or the whole split), and
    early stopping by `patience`. The same seed gives the same row on an idle or a busy machine.
    """

    optimizer: Annotated[Literal["adam", "adamw", "sgd"], Doc("the optimizer (SGD with Nesterov momentum)")] = "adam"
    lr: Annotated[float, Range(0, low_open=True), Doc("the learning rate (the peak rate of a one-cycle schedule)")] = 1e-3
    weight_decay: Annotated[float, Range(0), Doc("the optimizer's weight decay")] = 0.0
    adam_eps: Annotated[float, Range(0, low_open=True), Doc("Adam/AdamW ε; the authors' Keras default is 1e-7")] = 1e-8
    momentum: Annotated[float, Range(0, 1, high_open=True), Doc("SGD only: the momentum")] = 0.9
    schedule: Annotated[Literal["constant", "cosine", "onecycle"], Doc(
        "the learning-rate schedule over the run's optimizer steps")] = "constant"
    batch_size: Annotated[int, Range(1), Doc("training images per optimizer step")] = 128
    epochs: Annotated[int, Range(1), Doc("the epoch cap; early stopping usually ends the run first")] = 1000
    patience: Annotated[int, Range(1), Doc("epochs without a val-loss improvement before stopping")] = 30
    label_smoothing: Annotated[float, Range(0, 1, high_open=True), Doc("the cross-entropy's label smoothing")] = 0.0
    grad_clip: Annotated[float, Range(0), Doc("the largest global gradient norm (0 = no clipping)")] = 0.0
    precision: Annotated[Literal["fp32", "bf16", "fp16"], Doc("the training precision (bf16/fp16: autocast)")] = "fp32"
    channels_last: Annotated[bool, Doc("train in the channels-last memory format")] = False
    compile: Annotated[bool, Doc("train the `torch.compile`d model")] = False
    fast: Annotated[bool, Doc("train the `study.fast` rewrite of the model (the same function)")] = False
    fast_eval: Annotated[bool, Doc("evaluate with the frozen `study.fast` inference rewrite (the same function); "
                                   "implied by `fast`")] = False
    augment: Annotated[str, Doc("training-time augmentation, e.g. \"crop:2\" (\"\" = none)")] = ""
    train_subset: Annotated[int, Range(0), Doc("a stratified subset of this many training images (0 = all)")] = 0
    val_subset: Annotated[int, Range(0), Doc("a subset of this many validation images (0 = all)")] = 0
    test_subset: Annotated[int, Range(0), Doc("a subset of this many test images (0 = the whole test split, as the "
                                               "paper's comparison needs)")] = 0
    eval_batch_size: Annotated[int, Range(1), Doc("images per evaluation batch (speed only: evaluation is per "
                                                  "image)")] = 500
    val_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True), Doc(
        "the share of the train split carved out for validation")] = 0.1
    profile: Annotated[str, Internal, Doc("the name of the profile this config came from (`study.profiles`)")] = "custom"
    # before each evaluation, reset the batch-norm running statistics and recompute them as a plain average over
    # this many training batches (fixed order, `torch.optim.swa_utils.update_bn`); 0 = off. A short budget can
    # leave them far from the batch statistics (momentum 0.99 keeps 0.99^100 = 37 % of the initial ones after
    # 100 steps): eval mode then tests another function than the one trained.
    bn_recalibrate: Annotated[int, Range(0), Doc(
        "before each evaluation, recompute the batch-norm statistics as a plain average over this many training "
        "batches (0 = off): after a short budget they can be far from the batch statistics")] = 0


#: Fields added to `TrainConfig` after rows were first written, left out of `config` at their default, so a row
#: of an older kit still matches a config that trains the same way (done-ness and reuse compare the text).
_LATER_FIELDS = {"bn_recalibrate": 0}


def same_training(recorded: str, current: str) -> bool:
    """Whether a row's `config` text trains what `current` (`config_json`) trains: equal fields, a field the row
    lacks counting at its default (an older kit wrote fewer) and a field the kit no longer has ignored."""
    if recorded == current:
        return True
    try:
        old, new = json.loads(recorded), json.loads(current)
    except (TypeError, ValueError):
        return False
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return all(old.get(key, defaults.get(key)) == value for key, value in new.items()) and \
        all(old[key] == defaults[key] for key in defaults if key not in new and key in old)


def config_json(cfg: TrainConfig) -> str:
    """A training config as a row's `config` column stores it (equal text = equal training)."""
    fields = dataclasses.asdict(cfg)
    return json.dumps({k: v for k, v in fields.items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]})


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so the same seed gives the same run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_device(device: str) -> None:
    """Raise a one-line KitError unless `device` is "cpu" or a visible "cuda[:i]"."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise KitError(f"--device {device}: not a device the kit trains on; use cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA device is visible; use --device cpu")


class Diverged(Exception):
    """A NaN or infinite loss: the run ends as `diverged`."""


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    if cfg.schedule == "onecycle" and steps >= 8:  # fewer steps leave a warm-up phase of zero length
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=steps, pct_start=0.25)
    return None


@torch.no_grad()
def evaluate(model: nn.Module, loader: datasets.DeviceLoader, cfg: TrainConfig, device: str) -> dict[str, float]:
    """Mean loss, accuracy and img/s of `model` over a loader (eval mode)."""
    model.eval()
    window = _Window(device, time.perf_counter())  # summed on the device, read once at the end
    for x, y in loader:
        with autocast(device, cfg.precision):
            logits = model(_layout(x, cfg))
        window.add(F.cross_entropy(logits.float(), y, reduction="sum").double(), (logits.argmax(1) == y).sum(), len(y))
    loss, accuracy = window.means()
    return {"loss": loss, "accuracy": accuracy, "img_per_s": window.count / max(time.perf_counter() - window.start, 1e-9)}




def _evaluator(model: nn.Module, runner: nn.Module, cfg: TrainConfig) -> nn.Module:
    """What evaluation runs: with `fast`, the frozen inference rewrite of the current weights (same function)."""
    if not (cfg.fast or cfg.fast_eval):
        return runner

    return optimize(model, "infer", precision=cfg.precision)


def _layout(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


@dataclass(frozen=True)
class Task:
    """What a run trains and tests on: a dataset under a protocol (and fold), optionally degraded."""

    dataset: str
    protocol: str = "auto"  # "auto", "val-split" or "kfold-test" (see `study.data.make_splits`)
    fold: int = 0  # the test fold of a k-fold protocol
    degrade: str | None = None  # applied to train, val and test (e.g. "blur:1.0")
    extra_tests: tuple[str, ...] = ()  # further degradations of the test split only, results in `extra_tests`
    data_root: str | None = None  # explicit data folder (else `$STUDY_DATA_ROOT`, the cache, system folders)
    test: bool = True  # False: select on validation only and never touch the test split (hyperparameter tuning)


EpochCallback = Callable[[int, dict[str, float]], None]
HISTORY_POINTS = 10  # a run of fewer epochs than this logs its history this many times (so short runs draw curves)


def train(model: str | Path | NetworkSpec | ResolvedModel, task: Task | str, *, cfg: TrainConfig, seed: int = 0,
          device: str = "cpu", history_path: str | Path | None = None, checkpoint_path: str | Path | None = None,
          on_epoch: EpochCallback | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one model on one task and evaluate the test split once, on the best-val weights.

    Args:
        model: a resolved model (or what `study.models.resolve_model` takes).
        task: the data (a bare dataset name means its default protocol, undegraded).
        cfg: the training configuration (a profile's `train`, see `study.profiles`).
        seed: seeds init, data split, order and degradations; the same seed on CPU gives identical metrics.
        device: "cpu" or "cuda[:i]".
        history_path: where to write the history CSV (a row every few steps and at every epoch end).
        checkpoint_path: where to save the best-validation weights (`torch.load(..., weights_only=True)`).
        on_epoch: called after each epoch with (epoch, metrics); may raise to stop (e.g. optuna.TrialPruned).
        progress: show a progress bar on stderr.

    Returns:
        The result-row fields this run knows (see `study.results.SCHEMA`) plus `config` and `extra_tests`.
    """
    wall_begin = time.perf_counter()
    check_device(device)
    task = Task(task) if isinstance(task, str) else task
    resolved = resolve_model(model)
    if str(device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels once
        torch.cuda.reset_peak_memory_stats(device)  # peak_mem_mb is this run's, not the process's
    data = _prepare_data(resolved, task, cfg, seed)
    net = _build(resolved, data, cfg, seed, device)
    fit = _fit(net, data, cfg, seed, device, on_epoch, progress, f"{resolved.name} on {task.dataset}")
    _write_history(history_path, fit.history)
    result = _row(resolved, task, data, net, fit, cfg, seed, device, history_path)
    result.update(_restored(net, data, fit, task, cfg, seed, device, checkpoint_path))
    result["peak_mem_mb"] = peak_memory_mb(device)
    result["wall_s"] = time.perf_counter() - wall_begin
    if str(device).startswith("cuda"):
        del net
        torch.cuda.empty_cache()  # release memory between runs of a study
    return result


@dataclass
class _Data:
    splits: datasets.Splits
    test: tuple[torch.Tensor, torch.Tensor]
    num_classes: int


def _prepare_data(resolved: ResolvedModel, task: Task, cfg: TrainConfig, seed: int) -> _Data:
    """The seeded splits (subsets as the config says) and the test split, checked against the model's input."""
    seed_everything(seed)
    splits = datasets.make_splits(task.dataset, seed=seed, val_fraction=cfg.val_fraction, protocol=task.protocol,
                                  fold=task.fold, subset=cfg.train_subset or None, val_subset=cfg.val_subset or None,
                                  degrade=task.degrade, data_root=task.data_root)
    test_x, test_y = splits.test
    if cfg.test_subset and cfg.test_subset < len(test_y):
        keep = datasets.stratified_split(test_y, cfg.test_subset, seed=datasets.derive_seed(seed, "test_subset"))[1]
        test_x, test_y = test_x[keep], test_y[keep]
    size = resolved.input_size
    if size != test_x.shape[-1]:
        raise KitError(f"model {resolved.name} expects {size}×{size} inputs but {task.dataset} has "
                       f"{test_x.shape[-1]}×{test_x.shape[-1]}")
    return _Data(splits, (test_x, test_y), len(datasets.get_dataset(task.dataset).classes))


@dataclass
class _Net:
    model: nn.Module  # the weights
    runner: nn.Module  # what the training loop calls (the fast rewrite or a compiled module of the same weights)
    counts: dict[str, int]


_FLOPS: dict[tuple, tuple[int, str]] = {}


def _build(resolved: ResolvedModel, data: _Data, cfg: TrainConfig, seed: int, device: str) -> _Net:
    """The seeded model, its counts (fvcore FLOPs cached per network: a trace costs seconds) and its runner."""
    seed_everything(seed)  # the same init whatever the data code drew
    model = resolved.build(data.num_classes)
    key = (resolved.digest, resolved.input_shape)
    if key not in _FLOPS:
        counted = count_flops(model, resolved.input_shape)
        _FLOPS[key] = (counted["flops"], counted["flops_counter"])
    counts = {**count_params(model), "flops": _FLOPS[key][0], "flops_counter": _FLOPS[key][1]}
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    runner = model
    if cfg.fast or cfg.fast_eval:
        tune_allocator()  # process-wide: speed only
        runner = optimize(model, "train") if cfg.fast else model
    if cfg.compile:
        runner = torch.compile(runner)
    return _Net(model, runner, counts)


@dataclass
class _Fit:
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    status: str = "ok"
    stop_reason: str = ""
    train_seconds: float = 0.0
    train_images: int = 0

    @property
    def epoch_ends(self) -> list[dict[str, float]]:
        """The history rows logged at an epoch's end (epoch e is `epoch_ends[e - 1]`)."""
        return [h for h in self.history if h["epoch_end"]]


def _fit(net: _Net, data: _Data, cfg: TrainConfig, seed: int, device: str, on_epoch: EpochCallback | None,
         progress: bool, label: str) -> _Fit:
    """Epochs until the cap, early stopping or divergence; keeps the best-val-loss weights."""
    train_loader, val_loader = _loaders(data, cfg, seed, device)
    loop = _Loop(net, cfg, device, train_loader, val_loader)
    loop.bn_loader = _bn_loader(data, cfg, seed, device)
    fit = _Fit(stop_reason=f"epoch cap ({cfg.epochs})")
    bar = _progress_bar(cfg.epochs * len(train_loader), label, progress)
    try:
        for epoch in range(1, cfg.epochs + 1):
            row = loop.epoch(epoch, fit, bar)
            if row["val_loss"] < fit.best_val_loss:
                fit.best_val_loss, fit.best_epoch = row["val_loss"], epoch
                fit.best_state = copy.deepcopy(net.model.state_dict())
            if on_epoch:
                on_epoch(epoch, row)
            if epoch - fit.best_epoch >= cfg.patience:
                fit.stop_reason = f"early stopping: no val-loss improvement for {cfg.patience} epochs"
                break
    except Diverged as err:
        fit.status, fit.stop_reason = "diverged", f"diverged: {err}"
    finally:
        bar.close()
    return fit


def _loaders(data: _Data, cfg: TrainConfig, seed: int, device: str) -> tuple[datasets.DeviceLoader, datasets.DeviceLoader]:
    """The training loader (a new seeded order every epoch, augmented as the config says, no short last batch
    unless the split is a single batch) and the validation loader (fixed order)."""
    train_x, train_y = data.splits.train
    train_loader = datasets.DeviceLoader(train_x, train_y, batch_size=cfg.batch_size, shuffle=True, seed=seed,
                                         device=device, augment=cfg.augment or None, drop_last=len(train_y) > cfg.batch_size)
    val_loader = datasets.DeviceLoader(*data.splits.val, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
    return train_loader, val_loader


def _bn_loader(data: _Data, cfg: TrainConfig, seed: int, device: str) -> datasets.DeviceLoader | None:
    """The batches `bn_recalibrate` averages batch-norm statistics over: the first ones of the training split, in a
    fixed order (its own loader, so the training order never changes)."""
    if not cfg.bn_recalibrate:
        return None
    train_x, train_y = data.splits.train
    keep = cfg.bn_recalibrate * cfg.batch_size
    return datasets.DeviceLoader(train_x[:keep], train_y[:keep], batch_size=cfg.batch_size, shuffle=False, seed=seed,
                                 device=device)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: datasets.DeviceLoader | None, cfg: TrainConfig, device: str) -> None:
    """Recompute the batch-norm running statistics of `model` as a plain average over `loader` (no-op without one
    or without batch norm); the weights are untouched, so training goes on as before."""
    if loader is None:
        return
    cuda = [torch.device(device)] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda), autocast(device, cfg.precision):  # train-mode dropout draws no training RNG
        torch.optim.swa_utils.update_bn(((_layout(x, cfg), y) for x, y in loader), model)


def _progress_bar(total: int, label: str, progress: bool) -> tqdm:
    """A progress bar of `total` batches on stderr (a silent one unless `progress`)."""
    return tqdm(total=total, disable=not progress, file=sys.stderr, unit="batch", desc=label, leave=False)


def _progress_note(bar: tqdm, epoch: int, row: dict[str, float]) -> None:
    """The progress bar's note after a history row (display only)."""
    bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_acc']:.3f}")


class _Loop:
    """The optimisation loop of one run: optimizer, schedule, scaler, and the history rows it logs."""

    def __init__(self, net: _Net, cfg: TrainConfig, device: str, train_loader, val_loader):
        self.net, self.cfg, self.device = net, cfg, device
        self.train_loader, self.val_loader = train_loader, val_loader
        self.bn_loader = None  # the fixed batches `bn_recalibrate` averages over (`_bn_loader`), set by `_fit`
        self.optimizer = _optimizer(net.model, cfg)
        total = max(1, cfg.epochs * len(train_loader))
        self.scheduler = _scheduler(self.optimizer, cfg, total)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and str(device).startswith("cuda") else None
        self.log_every = math.ceil(total / HISTORY_POINTS) if cfg.epochs < HISTORY_POINTS else 0
        self.step = 0
        self.eval_seconds = 0.0  # validation inside an epoch, kept out of the training throughput

    def epoch(self, epoch: int, fit: _Fit, bar) -> dict[str, float]:
        """One pass over the training split; returns the epoch-end history row (also appended to `fit.history`).

        The steps never wait for the device: their losses and correct counts are summed where they were
        computed and read back once per history row (on a GPU a per-step `.item()` stalls the queue of kernels
        every step). A non-finite loss is therefore found at the next row, not at its step."""
        self.net.runner.train()
        begin, eval_before = time.perf_counter(), self.eval_seconds
        window = _Window(self.device, begin)
        count = 0
        for i, (x, y) in enumerate(self.train_loader, 1):
            loss, correct = self._step(x, y)
            window.add(loss.double() * len(y), correct, len(y))
            count += len(y)
            bar.update()
            last = i == len(self.train_loader)
            if last or (self.log_every and self.step % self.log_every == 0):
                fit.history.append(self._log(epoch, i, window, end=last))
                _progress_note(bar, epoch, fit.history[-1])
                window = _Window(self.device, time.perf_counter())
        fit.train_seconds += time.perf_counter() - begin - (self.eval_seconds - eval_before)
        fit.train_images += count
        return fit.history[-1]

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns its (loss, correct count) as device tensors, without a host sync."""
        cfg, optimizer = self.cfg, self.optimizer
        optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, cfg.precision):
            logits = self.net.runner(_layout(x, cfg))
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.net.model.parameters(), cfg.grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        if self.scheduler:
            self.scheduler.step()
        self.step += 1
        return loss.detach(), (logits.argmax(1) == y).sum()

    def _log(self, epoch: int, batch: int, window: _Window, end: bool) -> dict[str, float]:
        """A history row: the training loss and accuracy since the last row, and the validation metrics now.
        Raises `Diverged` when a training loss since the last row was not finite."""
        train_loss, train_acc = window.means()  # the one host sync of the interval: the queued steps end here
        now = time.perf_counter()  # after it, or a GPU's queued training work would count as validation time
        if not math.isfinite(train_loss):
            raise Diverged(f"loss {train_loss} at epoch {epoch}")
        recalibrate_bn(self.net.model, self.bn_loader, self.cfg, self.device)  # kept with the best weights' snapshot
        val = evaluate(_evaluator(self.net.model, self.net.runner, self.cfg), self.val_loader, self.cfg, self.device)
        self.eval_seconds += time.perf_counter() - now
        self.net.runner.train()  # evaluation switched the runner (or the model it shares) to eval mode
        if not math.isfinite(val["loss"]):
            raise Diverged(f"validation loss {val['loss']} at epoch {epoch}")
        return {"step": self.step, "epoch": round(epoch - 1 + batch / len(self.train_loader), 4), "epoch_end": int(end),
                "train_loss": train_loss, "train_acc": train_acc, "val_loss": val["loss"],
                "val_acc": val["accuracy"], "lr": self.optimizer.param_groups[0]["lr"],
                "img_per_s": window.count / max(now - window.start, 1e-9)}


class _Window:
    """Losses and correct counts summed on the device (float64: the same sums as adding each batch's `.item()`
    in Python), read back once: between two history rows of training, or over one evaluation."""

    def __init__(self, device: str, start: float):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count, self.start = 0, start

    def add(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        self.loss += loss_sum
        self.correct += correct
        self.count += count

    def means(self) -> tuple[float, float]:
        """(mean loss, accuracy): reads the device once (and so waits for its queued work)."""
        count = max(self.count, 1)
        return self.loss.item() / count, self.correct.item() / count


def _row(resolved: ResolvedModel, task: Task, data: _Data, net: _Net, fit: _Fit, cfg: TrainConfig, seed: int,
         device: str, history_path: str | Path | None) -> dict[str, Any]:
    """The fields of the result row this run knows before its final evaluation."""
    return {
        "model": resolved.name, "spec_hash": resolved.digest, "dataset": task.dataset,
        "degradation": data.splits.degradation, "protocol": data.splits.protocol, "fold": task.fold, "seed": seed,
        "profile": cfg.profile, "status": fit.status, "stop_reason": fit.stop_reason, "epochs": len(fit.epoch_ends),
        "best_epoch": fit.best_epoch, **net.counts,
        "train_img_per_s": fit.train_images / fit.train_seconds if fit.train_seconds else float("nan"),
        "data_source": data.splits.source, "train_size": len(data.splits.train[1]), "val_size": len(data.splits.val[1]),
        "test_size": len(data.test[1]), "history_path": str(history_path) if history_path else "",
        "config": dataclasses.asdict(cfg), **provenance(device, cfg.precision),
    }


def _restored(net: _Net, data: _Data, fit: _Fit, task: Task, cfg: TrainConfig, seed: int, device: str,
              checkpoint_path: str | Path | None) -> dict[str, Any]:
    """Restore (and save) the best epoch's weights, then its metrics: the one test evaluation on them, or
    validation only (`Task.test` False). A diverged run is neither restored nor tested."""
    if fit.status != "ok" or fit.best_state is None:
        return {}
    net.model.load_state_dict(fit.best_state)
    if checkpoint_path:
        save_checkpoint(net.model, checkpoint_path)
    return _final_evaluation(net, data, fit, task, cfg, seed, device) if task.test else _best_val(fit)


def _best_val(fit: _Fit) -> dict[str, float]:
    """Validation metrics of the best epoch."""
    best = fit.epoch_ends[fit.best_epoch - 1]
    return {"val_accuracy": best["val_acc"], "val_loss": best["val_loss"]}


def _final_evaluation(net: _Net, data: _Data, fit: _Fit, task: Task, cfg: TrainConfig, seed: int, device: str) -> dict[str, Any]:
    """Validation metrics of the best epoch, and the one test evaluation (plus degraded test copies) on its weights."""
    evaluator = _evaluator(net.model, net.runner, cfg)
    test_x, test_y = data.test
    test = evaluate(evaluator, datasets.DeviceLoader(test_x, test_y, batch_size=cfg.eval_batch_size, shuffle=False,
                                                     seed=seed, device=device), cfg, device)
    extra = {}
    for text in task.extra_tests:
        degraded = datasets.apply_degradation(test_x, text, datasets.derive_seed(seed, f"degrade:test:{text}"))
        loader = datasets.DeviceLoader(degraded, test_y, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
        extra[text] = evaluate(evaluator, loader, cfg, device)
    return {**_best_val(fit), "test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "infer_img_per_s": test["img_per_s"], "extra_tests": extra}


def _write_history(path: str | Path | None, history: list[dict[str, float]]) -> None:
    """Write the history CSV atomically."""
    if not path or not history:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Save a state dict atomically; it loads back with `torch.load(path, weights_only=True)`."""
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by `save_checkpoint` (weights_only=True: no pickled code runs)."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
