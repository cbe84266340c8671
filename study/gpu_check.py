"""The one-command check of a GPU machine (`nox -s gpu`, or `python3 -m study gpu` where nox is absent).

It measures three things and saves them as one JSON file with provenance (`runs/gpu/<time>.json`):

1. Throughput. `study.measure.profile_model` runs with `fast=True` for LR-Net and each baseline of
   the paper, at batch 128 (the paper's) and at every batch of `batches`. The best batch is the one
   with the highest training img/s.
2. Time to accuracy, in the airbench style. LR-Net trains on Fashion-MNIST with validation carved
   from train, over several seeds, under one schedule. The check reports the mean test accuracy, the
   seconds of training per seed, and whether the mean reached the target.
3. The paper study's expected wall time on this machine. Every model × dataset × seed of the paper's
   protocol takes `ASSUMED_EPOCHS` epochs, at the measured batch-128 training rate plus one
   validation pass per epoch at the inference rate.

`--tiny` runs the same code on the CPU in seconds (two models, batch 4, one seed of a 256-image
subset), so a broken GPU check is found before a GPU is lent. A tiny run's numbers mean nothing.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.files import write_text_atomic
from study.measure import git_commit, profile_model, provenance
from study.profiles import PROFILES
from study.train import Task, TrainConfig, train

PAPER_MODELS = ("lrnet_paper", "vgg16_paper", "inception_v3_paper", "resnet50_paper")
#: Early stopping with patience 30 ends a run about 30 epochs after its best epoch. The best epoch
#: is unknown until the GPU data exist, so an assumption stands in for it; the JSON says so.
ASSUMED_EPOCHS = 60
#: The paper's protocol: (dataset, training images per epoch, validation images), 5 seeds each.
PAPER_DATA = (("mnist", 54_000, 6_000), ("fashion-mnist", 54_000, 6_000), ("oracle-mnist", 24_300, 2_700))
PAPER_SEEDS = 5
TARGET = 0.95


@dataclass(frozen=True)
class CheckSettings:
    """How much a check measures: the full check for a GPU, or the tiny CPU rehearsal."""

    models: tuple[str, ...] = PAPER_MODELS
    batches: tuple[int, ...] = (128, 512, 2048)
    repeats: int = 5
    seeds: int = 5
    tta: TrainConfig = TrainConfig(optimizer="adam", lr=4e-3, schedule="onecycle", batch_size=512, epochs=10,
                                   patience=10, precision="bf16", fast=True, eval_batch_size=2000, profile="gpu-check")
    width: float = 1.0  # the width time-to-accuracy trains LR-Net at


TINY = CheckSettings(models=("lrnet_paper", "resnet18_scratch"), batches=(4,), repeats=1, seeds=1, width=0.25,
                     tta=TrainConfig(epochs=1, batch_size=32, patience=1, train_subset=256, val_subset=64, test_subset=200,
                                     precision="fp32", eval_batch_size=100, profile="gpu-check-tiny"))


def throughput(settings: CheckSettings, device: str) -> list[dict[str, Any]]:
    """Train and inference img/s of each model at each batch (the kit's fast setting for the device)."""
    rows = []
    for model in settings.models:
        for batch in settings.batches:
            r = profile_model(model, batch=batch, device=device, fast=True, repeats=settings.repeats)
            rows.append({"model": model, "batch": r["train"]["batch"], "params": r["params"], "flops": r["flops"],
                         "train_img_per_s": r["train_img_per_s"], "infer_img_per_s": r["infer_img_per_s"],
                         "peak_mem_mb": r["peak_mem_mb"], "setting": r["setting"]})
    return rows


def time_to_accuracy(settings: CheckSettings, device: str, data_root: str | None) -> dict[str, Any]:
    """LR-Net on Fashion-MNIST over `settings.seeds` seeds: mean test accuracy and training seconds per seed."""
    from study.capacity import scaled, width_named
    from study.models import PAPER, resolve_model

    model = resolve_model(width_named(scaled(PAPER, settings.width), "lrnet_paper") if settings.width != 1.0 else "lrnet_paper")
    task = Task("fashion-mnist", protocol="val-split", data_root=data_root)
    runs = [train(model, task, cfg=settings.tta, seed=seed, device=device) for seed in range(settings.seeds)]
    accuracies = [r.get("test_accuracy", float("nan")) for r in runs]
    seconds = [r["train_size"] * r["epochs"] / r["train_img_per_s"] for r in runs]
    mean = statistics.fmean(accuracies)
    return {"model": model.name, "schedule": dataclasses.asdict(settings.tta), "seeds": settings.seeds,
            "test_accuracy": accuracies, "mean_test_accuracy": mean, "train_seconds_per_seed": seconds,
            "mean_train_seconds": statistics.fmean(seconds), "target": TARGET, "reached": mean >= TARGET}


def paper_study_estimate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Hours the paper's full protocol takes here, from the batch-128 rates (see ASSUMED_EPOCHS)."""
    per_model, batches = {}, {}
    for row in sorted(rows, key=lambda r: r["batch"] != 128):  # batch 128 first; else the first batch measured
        if row["model"] in per_model:
            continue
        epoch_s = sum(train_n / row["train_img_per_s"] + val_n / row["infer_img_per_s"] for _, train_n, val_n in PAPER_DATA)
        per_model[row["model"]], batches[row["model"]] = epoch_s * ASSUMED_EPOCHS * PAPER_SEEDS / 3600, row["batch"]
    return {"assumed_epochs": ASSUMED_EPOCHS, "seeds": PAPER_SEEDS, "datasets": [d for d, _, _ in PAPER_DATA],
            "hours_per_model": per_model, "batch_per_model": batches, "hours_total": sum(per_model.values()),
            "note": f"every run assumed to take {ASSUMED_EPOCHS} epochs (patience 30 after an unknown best epoch), "
                    "at the measured training rate (batch 128 where measured) plus one validation pass per epoch"}


def run_check(settings: CheckSettings, device: str, out_dir: Path, data_root: str | None = None) -> Path:
    """Measure everything, print a summary, and save the JSON; returns its path."""
    begin = time.time()
    rows = throughput(settings, device)
    tta = time_to_accuracy(settings, device, data_root)
    doc = {"tiny": settings is TINY, "device": device, "provenance": {**provenance(device, "bf16"), "git_commit": git_commit()},
           "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(begin)), "throughput": rows,
           "time_to_accuracy": tta, "paper_study": paper_study_estimate(rows), "wall_s": time.time() - begin,
           "quick_profile": PROFILES["quick"].describe()}
    path = out_dir / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S', time.localtime(begin))}.json"
    write_text_atomic(path, json.dumps(doc, indent=2, default=str))
    return path


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """What a reader needs from a check, one line each."""
    lines = [f"{'TINY (numbers mean nothing) ' if doc['tiny'] else ''}check on {doc['provenance']['device_name']}"]
    for r in doc["throughput"]:
        lines.append(f"  {r['model']:<20} batch {r['batch']:>5}: train {r['train_img_per_s']:>9.0f} img/s, "
                     f"infer {r['infer_img_per_s']:>9.0f} img/s, peak {r['peak_mem_mb']:.0f} MiB")
    t = doc["time_to_accuracy"]
    lines.append(f"  time to accuracy: {t['model']} mean test {100 * t['mean_test_accuracy']:.2f}% over {t['seeds']} "
                 f"seeds, {t['mean_train_seconds']:.1f} s of training per seed ({'reached' if t['reached'] else 'missed'} "
                 f"{100 * t['target']:.1f}%)")
    p = doc["paper_study"]
    if p["hours_per_model"]:
        lines.append(f"  paper study here: ~{p['hours_total']:.1f} h ({p['note']})")
    return lines
