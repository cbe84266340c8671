"""The training engine: one seeded run of one model on one dataset, with the data resident on the
device, early stopping on validation loss with best-weights restore, and one final test evaluation.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from study import data as datasets
from study.errors import KitError
from study.measure import autocast, count_flops, count_params, peak_memory_mb, provenance
from study.models import build_model, in_channels, input_size
from study.spec import NetworkSpec


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a run trains; saved with every result row.

    Its length is work, never time: `epochs` over `train_subset` images (or the whole split), and
    early stopping by `patience`. The same seed gives the same row on an idle or a busy machine.
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"
    batch_size: int = 128
    epochs: int = 1000  # cap; early stopping usually ends the run first
    patience: int = 30  # epochs without a val-loss improvement before stopping
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global grad norm (0 = off)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    fast: bool = False  # train the `study.fast` rewrite of the model (same function)
    fast_eval: bool = False  # evaluate with the frozen `study.fast` inference rewrite (same function); implied by `fast`
    augment: str = ""  # e.g. "crop:2"
    train_subset: int = 0  # 0 = all training samples
    val_subset: int = 0
    test_subset: int = 0  # 0 = the whole test split (the paper's comparison needs it whole)
    eval_batch_size: int = 500
    val_fraction: float = 0.1
    profile: str = "custom"  # the name of the profile this config came from (`study.profiles`)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so the same seed gives the same run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Diverged(Exception):
    """A NaN or infinite loss: the run ends as `diverged`."""


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, cfg.lr, weight_decay=cfg.weight_decay)


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
    loss_sum, correct, count = 0.0, 0, 0
    begin = time.perf_counter()
    for x, y in loader:
        with autocast(device, cfg.precision):
            logits = model(_layout(x, cfg))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    seconds = time.perf_counter() - begin
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "img_per_s": count / max(seconds, 1e-9)}


_FLOPS: dict[tuple, int] = {}


def _flops(model_name: str | Path | NetworkSpec, model: nn.Module, shape: tuple[int, ...]) -> int:
    """fvcore FLOPs, cached per network and input shape: a trace costs seconds, a study trains a network many times."""
    key = (model_name.digest() if isinstance(model_name, NetworkSpec) else str(model_name), shape)
    if key not in _FLOPS:
        _FLOPS[key] = count_flops(model, shape)["flops"]
    return _FLOPS[key]


def _evaluator(model: nn.Module, runner: nn.Module, cfg: TrainConfig) -> nn.Module:
    """What evaluation runs: with `fast`, the frozen inference rewrite of the current weights (same function)."""
    if not (cfg.fast or cfg.fast_eval):
        return runner
    from study.fast import optimize

    return optimize(model, "infer", precision=cfg.precision)


def _layout(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


EpochCallback = Callable[[int, dict[str, float]], None]


def train(model_name: str | Path | NetworkSpec, dataset: str, *, cfg: TrainConfig, seed: int = 0, device: str = "cpu",
          degrade: str | None = None, protocol: str = "auto", fold: int = 0, data_root: str | None = None,
          history_path: str | Path | None = None, on_epoch: EpochCallback | None = None,
          extra_test_degradations: tuple[str, ...] = (), progress: bool = False) -> dict[str, Any]:
    """Train one model on one dataset and evaluate the test split once, on the best-val weights.

    Args:
        model_name: registry name, `.toml` spec path or NetworkSpec.
        dataset: registered dataset name.
        cfg: the training configuration (a profile's `train`, see `study.profiles`).
        seed: seeds init, data split, order, dropout and degradations; the same seed on CPU gives identical metrics.
        device: "cpu" or "cuda[:i]".
        degrade: degradation applied to train, val and test (e.g. "blur:1.0").
        protocol: "auto", "val-split" or "kfold-test" (see `study.data.make_splits`).
        fold: the test fold of a k-fold protocol.
        data_root: explicit data folder.
        history_path: where to write the per-epoch history CSV.
        on_epoch: called after each epoch with (epoch, metrics); may raise to stop (e.g. optuna.TrialPruned).
        extra_test_degradations: further degradations of the test split to evaluate the final model on
            (trained as is, tested degraded); results land in `extra_tests`.
        progress: show a progress bar on stderr (epoch, loss, accuracy, img/s, ETA).

    Returns:
        A dict with the result-row fields (see `study.results.COLUMNS`) plus `stop_reason`, `config`, `extra_tests`.
    """
    wall_begin = time.perf_counter()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise KitError("--device cuda: no CUDA device is visible; use --device cpu")
    seed_everything(seed)
    splits = datasets.make_splits(dataset, seed=seed, val_fraction=cfg.val_fraction, protocol=protocol, fold=fold,
                                  subset=cfg.train_subset or None, val_subset=cfg.val_subset or None,
                                  degrade=degrade, data_root=data_root)
    test_x, test_y = splits.test
    if cfg.test_subset and cfg.test_subset < len(test_y):
        keep = datasets.stratified_split(test_y, cfg.test_subset, seed=datasets.derive_seed(seed, "test_subset"))[1]
        test_x, test_y = test_x[keep], test_y[keep]
    size = input_size(model_name)
    if size != test_x.shape[-1]:
        raise KitError(f"model {model_name} expects {size}×{size} inputs but {dataset} has {test_x.shape[-1]}×{test_x.shape[-1]}")
    num_classes = len(datasets.get_dataset(dataset).classes)
    seed_everything(seed)  # the same init whatever the data code drew
    model = build_model(model_name, num_classes=num_classes)
    counts = {**count_params(model), "flops": _flops(model_name, model, (1, in_channels(model_name), size, size))}
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    runner = model
    if cfg.fast:
        from study.fast import optimize, tune_allocator

        tune_allocator()
        runner = optimize(model, "train")
    if cfg.compile:
        runner = torch.compile(runner)
    train_loader = datasets.DeviceLoader(*splits.train, batch_size=cfg.batch_size, shuffle=True, seed=seed, device=device,
                                         augment=cfg.augment or None, drop_last=len(splits.train[1]) > cfg.batch_size)
    val_loader = datasets.DeviceLoader(*splits.val, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
    optimizer = _optimizer(model, cfg)
    scheduler = _scheduler(optimizer, cfg, max(1, cfg.epochs * len(train_loader)))
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and str(device).startswith("cuda") else None

    history: list[dict[str, float]] = []
    best = {"val_loss": math.inf, "epoch": 0, "state": None}
    status, stop_reason = "ok", f"epoch cap ({cfg.epochs})"
    train_seconds, train_images = 0.0, 0
    bar = tqdm(total=cfg.epochs * len(train_loader), disable=not progress, file=sys.stderr, unit="batch",
               desc=f"{model_name if not isinstance(model_name, NetworkSpec) else model_name.name} on {dataset}", leave=False)
    try:
        for epoch in range(1, cfg.epochs + 1):
            runner.train()
            epoch_begin = time.perf_counter()
            loss_sum, correct, count = 0.0, 0, 0
            for x, y in train_loader:
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, cfg.precision):
                    logits = runner(_layout(x, cfg))
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise Diverged(f"loss {loss.item()} at epoch {epoch}")
                if scaler:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler:
                    scheduler.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                count += len(y)
                bar.update()
                if bar.n % 10 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}",
                                    img_s=f"{count / (time.perf_counter() - epoch_begin):.0f}")
            epoch_s = time.perf_counter() - epoch_begin
            train_seconds += epoch_s
            train_images += count
            val = evaluate(_evaluator(model, runner, cfg), val_loader, cfg, device)
            if not math.isfinite(val["loss"]):
                raise Diverged(f"validation loss {val['loss']} at epoch {epoch}")
            row = {"epoch": epoch, "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
                   "val_loss": val["loss"], "val_acc": val["accuracy"], "lr": optimizer.param_groups[0]["lr"],
                   "epoch_s": epoch_s, "img_per_s": count / max(epoch_s, 1e-9)}
            history.append(row)
            if val["loss"] < best["val_loss"]:
                best = {"val_loss": val["loss"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            if on_epoch:
                on_epoch(epoch, row)
            if epoch - best["epoch"] >= cfg.patience:
                stop_reason = f"early stopping: no val-loss improvement for {cfg.patience} epochs"
                break
    except Diverged as err:
        status, stop_reason = "diverged", f"diverged: {err}"
    finally:
        bar.close()
        _write_history(history_path, history)

    result: dict[str, Any] = {
        "model": str(model_name.name if isinstance(model_name, NetworkSpec) else model_name), "dataset": dataset,
        "degradation": splits.degradation, "protocol": splits.protocol, "fold": fold, "seed": seed,
        "profile": cfg.profile, "status": status, "stop_reason": stop_reason, "epochs": len(history),
        "best_epoch": best["epoch"], **counts,
        "train_img_per_s": train_images / train_seconds if train_seconds else float("nan"),
        "data_source": splits.source, "train_size": len(splits.train[1]), "val_size": len(splits.val[1]),
        "test_size": len(test_y), "history_path": str(history_path) if history_path else "",
        "config": dataclasses.asdict(cfg), **{k: v for k, v in provenance(device, cfg.precision).items()},
    }
    if status == "ok" and best["state"] is not None:
        model.load_state_dict(best["state"])
        best_val = history[best["epoch"] - 1]
        test_loader = datasets.DeviceLoader(test_x, test_y, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
        evaluator = _evaluator(model, runner, cfg)
        test = evaluate(evaluator, test_loader, cfg, device)
        result.update(val_accuracy=best_val["val_acc"], val_loss=best_val["val_loss"], test_accuracy=test["accuracy"],
                      test_loss=test["loss"], infer_img_per_s=test["img_per_s"])
        extra = {}
        for text in extra_test_degradations:
            degraded = datasets.apply_degradation(test_x, text, datasets.derive_seed(seed, f"degrade:test:{text}"))
            loader = datasets.DeviceLoader(degraded, test_y, batch_size=cfg.eval_batch_size, shuffle=False, seed=seed, device=device)
            extra[text] = evaluate(evaluator, loader, cfg, device)
        result["extra_tests"] = extra
    result["peak_mem_mb"] = peak_memory_mb(device)
    result["wall_s"] = time.perf_counter() - wall_begin
    if str(device).startswith("cuda"):
        del model, runner, optimizer
        torch.cuda.empty_cache()  # release memory between runs of a study
    return result


def _write_history(path: str | Path | None, history: list[dict[str, float]]) -> None:
    """Write the per-epoch history CSV atomically (temp file + rename)."""
    if not path or not history:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Save a state dict atomically; it loads back with `torch.load(path, weights_only=True)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by `save_checkpoint` (weights_only=True: no pickled code runs)."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
