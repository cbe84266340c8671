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

The measurements run most wanted first (`plan`: LR-Net's throughput, its first time-to-accuracy seed, the
baselines, its other seeds, then the other batches), and the JSON is rewritten after each one, so a check
killed at its command's time limit keeps what it measured. A measurement that fails (a compile error, say)
is recorded in `errors` and the others still run. `--budget-min` (default 6) starts no measurement after that many minutes;
the JSON lists what was skipped. The clock decides what is measured, never a measured number.

`--tiny` runs the same code on the CPU in seconds (two models, batch 4, one seed of a 256-image
subset), so a broken GPU check is found before a GPU is lent. A tiny run's numbers mean nothing.
`--bundle .gpu` writes what a lent machine needs beside the repo (docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.errors import KitError
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
#: What `study gpu` imports that the lent machines' image lacks (it has PyTorch, torchvision, numpy, pandas,
#: tqdm, PyYAML, portalocker and tabulate; optuna is never imported by the check): carried as wheels.
CARRIED = ("fvcore", "iopath", "yacs", "termcolor")


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
    tiny: bool = False  # a CPU rehearsal: its numbers mean nothing, and the report never shows them


TINY = CheckSettings(models=("lrnet_paper", "resnet18_scratch"), batches=(4,), repeats=1, seeds=1, width=0.25, tiny=True,
                     tta=TrainConfig(epochs=1, batch_size=32, patience=1, train_subset=256, val_subset=64, test_subset=200,
                                     precision="fp32", eval_batch_size=100, profile="gpu-check-tiny"))


def measure_throughput(model: str, batch: int, settings: CheckSettings, device: str) -> dict[str, Any]:
    """Train and inference img/s of one model at one batch (the kit's fast setting for the device)."""
    r = profile_model(model, batch=batch, device=device, fast=True, repeats=settings.repeats)
    return {"model": model, "batch": r["train"]["batch"], "params": r["params"], "flops": r["flops"],
            "train_img_per_s": r["train_img_per_s"], "infer_img_per_s": r["infer_img_per_s"],
            "peak_mem_mb": r["peak_mem_mb"], "setting": r["setting"]}


def plan(settings: CheckSettings) -> list[tuple[str, str, int]]:
    """The check's measurements, most wanted first: LR-Net's throughput at the first batch, its first
    time-to-accuracy seed, the baselines at that batch, its other seeds, then every other batch.
    Each is ("throughput", model, batch) or ("time to accuracy", model, seed)."""
    first, *rest = settings.batches
    lrnet, *baselines = settings.models
    jobs = [("throughput", lrnet, first), ("time to accuracy", lrnet, 0)]
    jobs += [("throughput", m, first) for m in baselines]
    jobs += [("time to accuracy", lrnet, seed) for seed in range(1, settings.seeds)]
    return jobs + [("throughput", m, b) for b in rest for m in settings.models]


def tta_seed(settings: CheckSettings, device: str, data_root: str | None, seed: int) -> dict[str, Any]:
    """One seed of LR-Net on Fashion-MNIST (validation carved from train): its test accuracy and training seconds."""
    from study.capacity import scaled, width_named
    from study.models import PAPER, resolve_model

    model = resolve_model(width_named(scaled(PAPER, settings.width), "lrnet_paper") if settings.width != 1.0 else "lrnet_paper")
    r = train(model, Task("fashion-mnist", protocol="val-split", data_root=data_root), cfg=settings.tta, seed=seed, device=device)
    return {"model": model.name, "seed": seed, "test_accuracy": r.get("test_accuracy", float("nan")),
            "train_seconds": r["train_size"] * r["epochs"] / r["train_img_per_s"], "epochs": r["epochs"]}


def tta_summary(settings: CheckSettings, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds measured so far: mean test accuracy and training seconds per seed, against the target."""
    accuracies, seconds = [r["test_accuracy"] for r in runs], [r["train_seconds"] for r in runs]
    mean = statistics.fmean(accuracies)
    return {"model": runs[0]["model"], "schedule": dataclasses.asdict(settings.tta), "seeds": len(runs),
            "seeds_planned": settings.seeds, "test_accuracy": accuracies, "mean_test_accuracy": mean,
            "train_seconds_per_seed": seconds, "mean_train_seconds": statistics.fmean(seconds), "target": TARGET,
            "reached": mean >= TARGET}


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


def run_check(settings: CheckSettings, device: str, out_dir: Path, data_root: str | None = None,
              deadline: float | None = None, say=print) -> Path:
    """Measure everything `plan` lists, saving the JSON after each measurement (a killed check keeps what it
    measured); returns its path. Past `deadline` (a `time.time()`) no further measurement starts: the clock
    decides what is measured, never a measured number. `say` reports each measurement as it ends."""
    begin = time.time()
    path = out_dir / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S', time.localtime(begin))}.json"
    doc = {"tiny": settings.tiny, "device": device, "provenance": {**provenance(device, "bf16"), "git_commit": git_commit()},
           "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(begin)), "throughput": [],
           "time_to_accuracy": None, "paper_study": paper_study_estimate([]), "skipped": [], "errors": [], "complete": False,
           "wall_s": 0.0, "quick_profile": PROFILES["quick"].describe()}
    seeds: list[dict[str, Any]] = []
    for kind, model, arg in plan(settings):
        label = f"{kind} {model} " + (f"batch {arg}" if kind == "throughput" else f"seed {arg}")
        if deadline is not None and time.time() > deadline:
            doc["skipped"].append(label)
            continue
        try:
            if kind == "throughput":
                doc["throughput"].append(measure_throughput(model, arg, settings, device))
                doc["paper_study"] = paper_study_estimate(doc["throughput"])
            else:
                seeds.append(tta_seed(settings, device, data_root, arg))
                doc["time_to_accuracy"] = tta_summary(settings, seeds)
        except Exception as err:  # noqa: BLE001 -- one broken measurement must not cost a lease the others
            doc["errors"].append(_failure(label, err))
            say(f"[{time.time() - begin:6.0f} s] FAILED {doc['errors'][-1]}")
            continue
        doc["wall_s"] = time.time() - begin
        write_text_atomic(path, json.dumps(doc, indent=2, default=str))
        say(f"[{doc['wall_s']:6.0f} s] measured {label}")
    doc["complete"] = not doc["skipped"] and not doc["errors"]
    doc["wall_s"] = time.time() - begin
    write_text_atomic(path, json.dumps(doc, indent=2, default=str))
    return path


def _failure(label: str, err: Exception) -> str:
    """One line for a failed measurement: what, the exception's type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{label}: {type(err).__name__}" + (f": {lines[0]}" if lines else "")


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """What a reader needs from a check, one line each."""
    lines = [f"{'TINY (numbers mean nothing) ' if doc['tiny'] else ''}check on {doc['provenance']['device_name']}"]
    for r in doc["throughput"]:
        lines.append(f"  {r['model']:<20} batch {r['batch']:>5}: train {r['train_img_per_s']:>9.0f} img/s, "
                     f"infer {r['infer_img_per_s']:>9.0f} img/s, peak {r['peak_mem_mb']:.0f} MiB")
    t = doc["time_to_accuracy"]
    if t:
        lines.append(f"  time to accuracy: {t['model']} mean test {100 * t['mean_test_accuracy']:.2f}% over {t['seeds']} "
                     f"of {t['seeds_planned']} seeds, {t['mean_train_seconds']:.1f} s of training per seed ({'reached' if t['reached'] else 'missed'} "
                     f"{100 * t['target']:.1f}%)")
    p = doc["paper_study"]
    if p["hours_per_model"]:
        lines.append(f"  paper study here: ~{p['hours_total']:.1f} h ({p['note']})")
    if doc["skipped"]:
        lines.append(f"  not measured (the budget ran out first): {', '.join(doc['skipped'])}")
    for error in doc["errors"]:
        lines.append(f"  FAILED {error}")
    return lines


def bundle(dest: Path, data_root: str | None = None) -> str:
    """Write what a lent GPU machine needs beside the repo into `dest` (git-ignored when it is `.gpu`):
    `wheels/` (CARRIED, at this environment's versions, as pure-Python wheels) and `data/fashion-mnist/` (the
    IDX files the kit reads here). Returns the command to run there from the repo root, `dest` carried."""
    from importlib import metadata

    from study.data.sources import locate

    pins = [f"{name}=={metadata.version(name)}" for name in CARRIED]
    wheels, data = dest / "wheels", dest / "data" / "fashion-mnist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), *pins],
                           capture_output=True, text=True)
    if built.returncode:
        raise KitError(f"--bundle: pip could not build wheels of {' '.join(pins)} (it needs the package index once): "
                       f"{(built.stderr.strip().splitlines() or ['no message'])[-1]}")
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        files = locate("fashion-mnist", split, data_root)
        for path in (files.images_path, files.labels_path):
            shutil.copyfile(path, data / path.name)
    return (f"python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site {dest}/wheels/*.whl && "
            f"PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 python3 -m study gpu --data-root {dest}/data --out $OUT")
